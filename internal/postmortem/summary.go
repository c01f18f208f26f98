package postmortem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/journal"
)

// SchemaVersion is the version of the JSON shape written by [Inspect] with
// InspectOptions.JSON. See the package documentation for the schema.
const SchemaVersion = 1

// jsonPrefix marks JSON payloads on the wire; it is session.JSONPrefix, kept here so
// that reading a journal needs nothing of the HTTP side.
const jsonPrefix = "<!json!>"

// Session states reported in SlotSummary.Session.
const (
	SessionOpen   = "open"   // registered, neither closed nor known lost: recovery still has work to do
	SessionClosed = "closed" // bye applied, nothing left to do
	SessionLost   = "lost"   // the tracker forgot the worker (timed out); its held job was re-opened
	SessionNone   = "none"   // never registered
	// SessionUnknown: closed-or-lost cannot be told because the history is damaged.
	SessionUnknown = "unknown"
)

// Summary is what [Inspect] shows, and the JSON object it writes (schema in the
// package documentation).
type Summary struct {
	SchemaVersion int             `json:"schema_version"`
	Journal       JournalSummary  `json:"journal"`
	Slots         []SlotSummary   `json:"slots"`
	Orphans       []OrphanSummary `json:"orphans"`
	Events        []EventSummary  `json:"events,omitempty"`
	// Warnings says which parts of a damaged journal could not be read: the rest of
	// the summary is what could.
	Warnings []string `json:"warnings,omitempty"`
}

// JournalSummary describes the journal file as a whole.
type JournalSummary struct {
	Path       string     `json:"path"`
	SizeBytes  int64      `json:"size_bytes"`
	Events     int        `json:"events"`
	FirstSeq   uint64     `json:"first_seq,omitempty"`
	LastSeq    uint64     `json:"last_seq,omitempty"`
	FirstEvent *time.Time `json:"first_event,omitempty"`
	LastEvent  *time.Time `json:"last_event,omitempty"`

	lastKind journal.Kind // what the last event read recorded, and in which slot
	lastSlot string
}

// SlotSummary is one worker identity of the journal.
type SlotSummary struct {
	Slot              string             `json:"slot"`
	Session           string             `json:"session"`
	Worker            string             `json:"worker,omitempty"`
	Nickname          string             `json:"nickname,omitempty"`
	Token             string             `json:"token,omitempty"`
	Tracker           string             `json:"tracker,omitempty"`
	Stage             string             `json:"stage,omitempty"`
	StageName         string             `json:"stage_name,omitempty"`
	Project           string             `json:"project,omitempty"`
	Registered        *time.Time         `json:"registered,omitempty"`
	LostReason        string             `json:"lost_reason,omitempty"`
	Job               *JobSummary        `json:"job,omitempty"`
	Progress          string             `json:"progress,omitempty"`
	ProgressTime      *time.Time         `json:"progress_time,omitempty"`
	CompletionPending *CompletionSummary `json:"completion_pending,omitempty"`
	FlagPending       bool               `json:"flag_pending"`
	ByePending        bool               `json:"bye_pending"`
	LastSeq           uint64             `json:"last_seq,omitempty"`
	LastEvent         *time.Time         `json:"last_event,omitempty"`
	LastReport        *ReportSummary     `json:"last_report,omitempty"`
	// Refused lists the jobs the worker could not take when it claimed
	// them (data that cannot be decoded, an answer over its size limit),
	// and what it did with each, oldest first.
	Refused []RefusedSummary `json:"refused,omitempty"`
	// Drained is the last drain recorded (a clean stop: signal, cloud notice),
	// absent when the slot's last life did not end with one.
	Drained *DrainSummary `json:"drained,omitempty"`
}

// DrainSummary is a drain the worker recorded: it stopped claiming on purpose.
type DrainSummary struct {
	Time   *time.Time `json:"time,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// Actions of a RefusedSummary.
const (
	RefusedFlagged  = "flagged"  // flagged as invalid data
	RefusedReleased = "released" // handed back unread, or after the tracker refused the flag
)

// RefusedSummary is a job a worker refused at a claim.
type RefusedSummary struct {
	Job    int        `json:"job"` // 0: the number could not be read from the tracker's answer
	Time   *time.Time `json:"time"`
	Action string     `json:"action"`
	Reason string     `json:"reason"`
}

// JobSummary is the job a slot held.
type JobSummary struct {
	Number          int        `json:"number"`
	Stage           string     `json:"stage,omitempty"`
	Since           *time.Time `json:"since,omitempty"`
	InputKind       string     `json:"input_kind"`
	InputBytes      int        `json:"input_bytes"`
	CheckpointBytes int        `json:"checkpoint_bytes"`
	CheckpointTime  *time.Time `json:"checkpoint_time,omitempty"`

	preview string // the start of the input, for people
}

// CompletionSummary is a completion written to the journal whose answer from the
// tracker was never recorded: recovery resubmits it.
type CompletionSummary struct {
	Job         int        `json:"job"`
	Stage       string     `json:"stage,omitempty"`
	Since       *time.Time `json:"since,omitempty"`
	OutputKind  string     `json:"output_kind"`
	OutputBytes int        `json:"output_bytes"`
	Seq         uint64     `json:"seq,omitempty"`

	preview string // the start of the output, for people
}

// ReportSummary is the last recovery report of a slot, as recovery wrote it.
type ReportSummary struct {
	Time   *time.Time      `json:"time,omitempty"`
	Report json.RawMessage `json:"report"`
}

// OrphanSummary is a finished output the tracker can no longer accept from this
// worker (its session was lost): it only lives in the journal until exported.
type OrphanSummary struct {
	Seq         uint64     `json:"seq"`
	Slot        string     `json:"slot"`
	Stage       string     `json:"stage,omitempty"`
	Job         int        `json:"job"`
	Time        *time.Time `json:"time,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	OutputKind  string     `json:"output_kind"`
	OutputBytes int        `json:"output_bytes"`
}

// EventSummary is one journal event, for timelines and job histories.
type EventSummary struct {
	Seq    uint64     `json:"seq"`
	Time   *time.Time `json:"time,omitempty"`
	Slot   string     `json:"slot"`
	Kind   string     `json:"kind"`
	Job    int        `json:"job,omitempty"`
	Detail string     `json:"detail,omitempty"`
	Input  *string    `json:"input,omitempty"`
	Output *string    `json:"output,omitempty"`
}

// slotScan gathers from the event history what the materialized state does not keep.
type slotScan struct {
	registration   *journal.Event // the last registered event: who the slot was, even after a bye or a loss
	lost           bool
	lostReason     string
	progressTime   time.Time
	progressJob    int // the job the last progress was about (0: none held)
	drained        *journal.Event
	claims         int // claims since the drain
	checkpointTime map[int]time.Time
	reportTime     time.Time
	refused        []RefusedSummary
}

// Summarize builds the [Summary] of db. It reads the whole event history once. Tokens
// are redacted unless showSecrets.
//
// A damaged journal still gives what can be read: when the history, the slot states
// or the orphans cannot be read, Summarize returns the rest with Summary.Warnings
// set, and an error wrapping journal.ErrCorrupt saying what failed. When everything
// could be read it runs db.Verify, and a journal that does not verify gets a warning
// and that error too. It returns a nil Summary only when nothing could be read.
func Summarize(db *journal.DB, showSecrets bool) (*Summary, error) {
	s := &Summary{SchemaVersion: SchemaVersion, Slots: []SlotSummary{}, Orphans: []OrphanSummary{}}
	s.Journal.Path = db.Path()
	if fi, err := os.Stat(db.Path()); err == nil {
		s.Journal.SizeBytes = fi.Size()
	}

	scans := map[string]*slotScan{}
	var history []journal.Event
	scan := func(slot string) *slotScan {
		sc := scans[slot]
		if sc == nil {
			sc = &slotScan{checkpointTime: map[int]time.Time{}}
			scans[slot] = sc
		}
		return sc
	}
	err := db.Events(journal.Filter{}, func(e journal.Event) error {
		j := &s.Journal
		j.Events++
		if j.FirstSeq == 0 {
			j.FirstSeq = e.Seq
			j.FirstEvent = timePtr(e.Time)
		}
		j.LastSeq, j.lastKind, j.lastSlot = e.Seq, e.Kind, e.Slot
		if j.LastEvent == nil || e.Time.After(*j.LastEvent) {
			j.LastEvent = timePtr(e.Time)
		}
		if e.Kind == journal.KindRegistered || e.Kind == journal.KindCompletionSettled {
			history = append(history, e) // what completedElsewhere needs, payloads left out
		}
		sc := scan(e.Slot)
		switch e.Kind {
		case journal.KindRegistered:
			sc.drained = nil // a new life: the drain was not its end
			sc.lost, sc.lostReason = false, ""
			reg := e
			sc.registration = &reg
		case journal.KindSessionLost:
			sc.lost, sc.lostReason = true, e.Reason
		case journal.KindProgress:
			sc.progressTime, sc.progressJob = e.Time, e.Job
		case journal.KindDrained:
			d := e
			sc.drained = &d
		case journal.KindClaimed:
			sc.drained = nil // a new life: the drain was not its end
		case journal.KindCheckpoint:
			sc.checkpointTime[e.Job] = e.Time
		case journal.KindRefused:
			sc.refused = append(sc.refused, RefusedSummary{Job: e.Job, Time: timePtr(e.Time), Action: RefusedReleased, Reason: e.Reason})
		case journal.KindFlagPending:
			if e.Reason != "" { // the client flagged data it could not decode
				sc.refused = append(sc.refused, RefusedSummary{Job: e.Job, Time: timePtr(e.Time), Action: RefusedFlagged, Reason: e.Reason})
			}
		case journal.KindReleased:
			if strings.Contains(e.Reason, "refused the flag") {
				sc.refused = append(sc.refused, RefusedSummary{Job: e.Job, Time: timePtr(e.Time), Action: RefusedReleased, Reason: e.Reason})
			}
		case journal.KindReplayed:
			sc.reportTime = e.Time
		}
		return nil
	})
	var damage []error
	if err != nil {
		damage = append(damage, fmt.Errorf("reading events: %w", err))
		s.Journal.lastKind = "" // the last event read is not the last written
		s.Warnings = append(s.Warnings, fmt.Sprintf("the event history is damaged (%s); %d events were read before the damage: times and names below may be missing", errText(err), s.Journal.Events))
	}

	states, err := db.States()
	if err != nil {
		damage = append(damage, fmt.Errorf("reading slot states: %w", err))
		s.Warnings = append(s.Warnings, fmt.Sprintf("the slots' states could not be read (%s)", errText(err)))
	}
	sort.Slice(states, func(i, k int) bool { return lessSlot(states[i].Slot, states[k].Slot) })
	historyOK := len(damage) == 0
	for _, st := range states {
		ss := slotSummary(st, scan(st.Slot), showSecrets)
		if !historyOK && ss.Session == SessionNone && st.LastSeq > 0 {
			ss.Session = SessionUnknown // lost or never registered: only the history says
		}
		s.Slots = append(s.Slots, ss)
		// The states know the last event even when the history cannot be read.
		if j := &s.Journal; st.LastSeq > j.LastSeq {
			j.LastSeq = st.LastSeq
		}
		if j := &s.Journal; !st.LastTime.IsZero() && (j.LastEvent == nil || st.LastTime.After(*j.LastEvent)) {
			j.LastEvent = timePtr(st.LastTime)
		}
	}

	orphans, err := db.Orphans()
	if err != nil {
		damage = append(damage, fmt.Errorf("reading orphans: %w", err))
		s.Warnings = append(s.Warnings, fmt.Sprintf("the orphaned outputs could not be read (%s)", errText(err)))
	}
	done := completedElsewhere(orphans, history)
	for _, o := range orphans {
		if done[o.Seq] {
			continue // the same job was completed since (by another slot): nothing was lost
		}
		s.Orphans = append(s.Orphans, OrphanSummary{
			Seq: o.Seq, Slot: o.Slot, Stage: o.Stage, Job: o.Job, Time: timePtr(o.Time), Reason: o.Reason,
			OutputKind: wireKind(&o.Output), OutputBytes: len(payloadText(&o.Output)),
		})
	}
	if len(damage) == len(s.Warnings) && len(damage) == 3 {
		return nil, errors.Join(damage...)
	}
	if len(damage) == 0 {
		// Everything read, but a damaged record or index can read as less
		// (a journal with no events, a slot without history): ask Verify,
		// whose cost is a read of the file, like the reads above.
		if problems := db.Verify(); len(problems) > 0 {
			more := ""
			if len(problems) > 1 {
				more = fmt.Sprintf(" and %d more", len(problems)-1)
			}
			s.Warnings = append(s.Warnings, fmt.Sprintf("verify finds the journal damaged: %s%s; what is shown may be incomplete or wrong", errText(problems[0]), more))
			damage = append(damage, problems[0])
		}
	}
	return s, errors.Join(damage...)
}

// errText is a journal error without the file name and operation the journal puts
// first, and for damage without "journal is corrupt": what is damaged.
func errText(err error) string {
	var damage *journal.CorruptError
	if errors.As(err, &damage) {
		return damage.Text()
	}
	var je *journal.Error
	if errors.As(err, &je) {
		return je.Err.Error()
	}
	return err.Error()
}

func slotSummary(st journal.State, sc *slotScan, showSecrets bool) SlotSummary {
	ss := SlotSummary{
		Slot:        st.Slot,
		Progress:    st.Progress,
		FlagPending: st.FlagPending,
		ByePending:  st.ByePending,
		LastSeq:     st.LastSeq,
		LastEvent:   timePtr(st.LastTime),
		Refused:     sc.refused,
	}
	switch {
	case st.Session != nil:
		ss.Session = SessionOpen
	case st.Closed:
		ss.Session = SessionClosed
	case sc.lost:
		ss.Session, ss.LostReason = SessionLost, sc.lostReason
	default:
		ss.Session = SessionNone
	}
	if se := st.Session; se != nil {
		ss.Worker, ss.Nickname, ss.Stage, ss.StageName, ss.Project = se.DisplayName, se.Nickname, se.Stage, se.StageName, se.Project
		ss.Tracker = redactURL(se.URL, showSecrets)
		ss.Token = redactToken(se.Token, showSecrets)
		ss.Registered = timePtr(se.Since)
	}
	if r := sc.registration; r != nil && st.Session == nil {
		ss.Worker, ss.Nickname, ss.Stage, ss.StageName, ss.Project = r.DisplayName, r.Nickname, r.Stage, r.StageName, r.Project
		ss.Tracker = redactURL(r.URL, showSecrets)
		ss.Token = redactToken(r.Token, showSecrets)
		ss.Registered = timePtr(r.Time)
	}
	// Progress is shown with the job it was about: not next to a job claimed since.
	if st.Progress != "" && (st.Job == nil || sc.progressJob == st.Job.Number) {
		ss.Progress = st.Progress
		ss.ProgressTime = timePtr(sc.progressTime)
	} else {
		ss.Progress = ""
	}
	if d := sc.drained; d != nil {
		ss.Drained = &DrainSummary{Time: timePtr(d.Time), Reason: d.Reason}
	}
	if j := st.Job; j != nil {
		ss.Job = &JobSummary{
			Number: j.Number, Stage: j.Stage, Since: timePtr(j.Since),
			InputKind: wireKind(j.Input), InputBytes: len(payloadText(j.Input)),
			CheckpointBytes: len(j.Checkpoint),
			preview:         preview(j.Input),
		}
		if len(j.Checkpoint) > 0 {
			ss.Job.CheckpointTime = timePtr(sc.checkpointTime[j.Number])
		}
	}
	if c := st.Completion; c != nil {
		ss.CompletionPending = &CompletionSummary{
			Job: c.Job.Number, Stage: c.Job.Stage, Since: timePtr(c.Since), Seq: c.Seq,
			OutputKind: wireKind(&c.Output), OutputBytes: len(payloadText(&c.Output)),
			preview: preview(&c.Output),
		}
	}
	if len(st.LastReport) > 0 {
		ss.LastReport = &ReportSummary{Time: timePtr(sc.reportTime), Report: append(json.RawMessage(nil), st.LastReport...)}
	}
	return ss
}

// lessSlot orders slot names numerically when both are numbers ("2" < "10").
func lessSlot(a, b string) bool {
	if len(a) != len(b) && isDigits(a) && isDigits(b) {
		return len(a) < len(b)
	}
	return a < b
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// wireKind names the kind of a payload in its wire form: "null", "json" or "text".
func wireKind(wire *string) string {
	switch {
	case wire == nil:
		return "null"
	case strings.HasPrefix(*wire, jsonPrefix):
		return "json"
	default:
		return "text"
	}
}

// payloadText is the payload without its wire marker: the JSON text, or the string.
func payloadText(wire *string) string {
	if wire == nil {
		return ""
	}
	return strings.TrimPrefix(*wire, jsonPrefix)
}

// redactToken keeps the first 8 characters of a token, enough to match it against
// tracker logs, unless show.
func redactToken(tok string, show bool) string {
	if show {
		return tok
	}
	return journal.RedactToken(tok)
}

// redactURL hides a password in the tracker URL unless show.
func redactURL(raw string, show bool) string {
	if show {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// previewLen is how many characters of a payload the summary shows.
const previewLen = 60

// preview is the start of a payload on one line: JSON as it is, text quoted; "" for
// null.
func preview(wire *string) string {
	if wire == nil {
		return ""
	}
	r := []rune(oneLine(payloadText(wire)))
	cut := ""
	if len(r) > previewLen {
		r, cut = r[:previewLen], "…"
	}
	if wireKind(wire) == "json" {
		return string(r) + cut
	}
	return strconv.Quote(string(r)) + cut
}
