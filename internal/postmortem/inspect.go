package postmortem

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distcompute/distcompute-go/internal/termtext"
	"github.com/distcompute/distcompute-go/journal"
)

// InspectOptions chooses what [Inspect] shows. The zero value is the summary for
// people, tokens redacted.
type InspectOptions struct {
	// Timeline adds every event (of Slot, if set) in order, with readable times.
	Timeline bool
	// Job, if not 0, shows the whole history of that job number instead of the summary:
	// every event about it, its input and its outputs in full.
	Job int
	// Slot, if set, limits the summary and the timeline to that slot.
	Slot string
	// JSON writes the [Summary] as one JSON object (schema in the package doc) instead of text.
	JSON bool
	// ShowSecrets shows worker tokens and tracker passwords in full.
	ShowSecrets bool
	// Color uses ANSI colours for headings and warnings; set it only for a terminal
	// and when NO_COLOR is unset.
	Color bool
	// Now is the time "ago" is measured from; zero means time.Now().
	Now time.Time
	// Command is how the operator runs dcjournal in the "next steps" hints; "" means "dcjournal".
	Command string
	// Source, if set, is the URL of the live snapshot being inspected: it is shown
	// (and written as journal.path in JSON) instead of the temporary file's path, and
	// the "next steps" are left out, since the worker still runs.
	Source string
	// NoNextSteps leaves the "next steps" out: the journal is a copy about to be
	// deleted, and commands pointing at it would not work.
	NoNextSteps bool
}

// TimeLayout is how times are written for people: UTC, to the second.
const TimeLayout = "2006-01-02 15:04:05 UTC"

// eventTimeLayout is the timeline's time format: to the millisecond, since a worker
// writes several events a second.
const eventTimeLayout = "2006-01-02 15:04:05.000"

// Inspect writes to w what db says about the worker that wrote it: each slot, the job
// it held, pending completions, flags and byes, orphaned outputs, the last recovery
// report, and when the last event was written. It only reads db. Errors come from
// reading the journal or writing to w, or are [ErrNoSuchSlot] / [ErrNoSuchJob].
func Inspect(w io.Writer, db *journal.DB, opts InspectOptions) error {
	sum, damage := Summarize(db, opts.ShowSecrets)
	if sum == nil {
		return damage
	}
	if err := inspect(w, db, sum, opts); err != nil {
		return errors.Join(err, damage)
	}
	return damage
}

func inspect(w io.Writer, db *journal.DB, sum *Summary, opts InspectOptions) error {
	if opts.Source != "" {
		sum.Journal.Path = opts.Source
	}
	if opts.Slot != "" {
		var keep []SlotSummary
		for _, s := range sum.Slots {
			if s.Slot == opts.Slot {
				keep = append(keep, s)
			}
		}
		if keep == nil {
			return fmt.Errorf("%w %q (the journal has %s)", ErrNoSuchSlot, opts.Slot, slotList(sum.Slots))
		}
		sum.Slots = keep
		sum.Orphans = filter(sum.Orphans, func(o OrphanSummary) bool { return o.Slot == opts.Slot })
	}
	if opts.Job != 0 {
		return inspectJob(w, db, sum, opts)
	}
	var partial error // a damaged history: show what was read, then say so
	if opts.Timeline {
		err := db.Events(journal.Filter{Slot: opts.Slot}, func(e journal.Event) error {
			sum.Events = append(sum.Events, eventSummary(e, opts.ShowSecrets, false))
			return nil
		})
		if err != nil && len(sum.Warnings) == 0 {
			partial = fmt.Errorf("reading events: %w", err)
			sum.Warnings = append(sum.Warnings, fmt.Sprintf("the event history could not be read past seq %d (%s)", lastSeq(sum.Events), errText(err)))
		}
		if sum.Events == nil {
			sum.Events = []EventSummary{}
		}
	}
	if opts.JSON {
		return errors.Join(WriteJSON(w, sum), partial)
	}
	p := newPrinter(w, opts)
	if opts.Timeline {
		p.journal(sum.Journal)
		p.warnings(sum.Warnings)
		p.heading("Timeline (%d events)", len(sum.Events))
		p.events(sum.Events)
		return errors.Join(p.err, partial)
	}
	p.summary(sum)
	return p.err
}

func lastSeq(evs []EventSummary) uint64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// warnings says, right after the journal header, what could not be read.
func (p *printer) warnings(ws []string) {
	if len(ws) == 0 {
		return
	}
	p.headingWith(p.paint(ansiRed, "The journal is damaged: this is what could be read"), "")
	for _, w := range ws {
		p.printf("  - %s\n", oneLine(w))
	}
}

func inspectJob(w io.Writer, db *journal.DB, sum *Summary, opts InspectOptions) error {
	slots := map[string]bool{}
	err := db.Events(journal.Filter{Slot: opts.Slot, Job: opts.Job}, func(e journal.Event) error {
		if e.Job != opts.Job { // a journal may not index every kind by job
			return nil
		}
		sum.Events = append(sum.Events, eventSummary(e, opts.ShowSecrets, true))
		slots[e.Slot] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	sum.Orphans = filter(sum.Orphans, func(o OrphanSummary) bool { return o.Job == opts.Job })
	for _, o := range sum.Orphans {
		slots[o.Slot] = true
	}
	if len(sum.Events) == 0 && len(sum.Orphans) == 0 {
		return fmt.Errorf("%w: job %d", ErrNoSuchJob, opts.Job)
	}
	sum.Slots = filter(sum.Slots, func(s SlotSummary) bool { return slots[s.Slot] })
	if sum.Events == nil {
		sum.Events = []EventSummary{}
	}
	if opts.JSON {
		return WriteJSON(w, sum)
	}
	p := newPrinter(w, opts)
	p.job(opts.Job, sum)
	return p.err
}

// WriteJSON writes v to w as indented JSON, HTML characters left as they are.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func filter[T any](in []T, keep func(T) bool) []T {
	out := []T{}
	for _, x := range in {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

func slotList(slots []SlotSummary) string {
	if len(slots) == 0 {
		return "no slot"
	}
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = fmt.Sprintf("%q", s.Slot)
	}
	return "slots " + strings.Join(names, ", ")
}

// printer writes the text forms; it keeps the first write error.
type printer struct {
	w     io.Writer
	opts  InspectOptions
	err   error
	first bool
}

func newPrinter(w io.Writer, opts InspectOptions) *printer {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Command == "" {
		opts.Command = "dcjournal"
	}
	return &printer{w: w, opts: opts, first: true}
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

const (
	ansiBold   = "\x1b[1m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiReset  = "\x1b[0m"
)

func (p *printer) paint(code, s string) string {
	if !p.opts.Color {
		return s
	}
	return code + s + ansiReset
}

// heading starts a section, after a blank line unless it is the first. Its
// string arguments are made inert (oneLine): a worker's name comes from the
// tracker.
func (p *printer) heading(format string, args ...any) {
	p.headingWith("", format, args...)
}

// headingWith is heading followed by suffix, which is written as it is (a
// painted note of ours).
func (p *printer) headingWith(suffix, format string, args ...any) {
	if !p.first {
		p.printf("\n")
	}
	p.first = false
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = oneLine(s)
		}
	}
	p.printf("%s%s\n", p.paint(ansiBold, fmt.Sprintf(format, args...)), suffix)
}

// table writes rows aligned in columns; cells must not hold tabs or colours.
func (p *printer) table(indent string, rows [][]string) {
	if p.err != nil || len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = oneLine(c)
		}
		fmt.Fprintf(tw, "%s%s\n", indent, strings.TrimRight(strings.Join(cells, "\t"), "\t"))
	}
	p.err = tw.Flush()
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(TimeLayout)
}

// fmtDuration writes d for people, to the second: "5h02m", "11m05s", "42s".
func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60
	switch {
	case h >= 48:
		return fmt.Sprintf("%dd%02dh", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

func (p *printer) summary(s *Summary) {
	p.journal(s.Journal)
	p.warnings(s.Warnings)
	p.slots(s)
}

func (p *printer) journal(j JournalSummary) {
	if p.opts.Source != "" {
		p.heading("Journal %s (live snapshot)", p.opts.Source)
	} else {
		p.heading("Journal %s", j.Path)
	}
	rows := [][]string{{"size", fmt.Sprintf("%s, %d events (seq %d-%d)", byteSize(int(j.SizeBytes)), j.Events, j.FirstSeq, j.LastSeq)}}
	if j.LastEvent != nil {
		rows = append(rows,
			[]string{"first event", fmtTime(j.FirstEvent)},
			[]string{"last event", lastEventLine(j, p.opts.Now)})
	} else {
		rows = append(rows, []string{"last event", "none: the journal is empty"})
	}
	p.table("  ", rows)
}

// lastEventLine says when the journal was last written and what that was: when the
// worker stopped, unless a recovery (a "replayed" event) ran since.
func lastEventLine(j JournalSummary, now time.Time) string {
	line := fmt.Sprintf("%s, %s ago", fmtTime(j.LastEvent), fmtDuration(now.Sub(*j.LastEvent)))
	switch j.lastKind {
	case "":
	case journal.KindReplayed, journal.KindOrphanResolved:
		line += fmt.Sprintf(": %s in slot %s (a recovery or dcjournal wrote it, not the worker)", j.lastKind, j.lastSlot)
	default:
		line += fmt.Sprintf(": %s in slot %s, the worker's last write", j.lastKind, j.lastSlot)
	}
	return line
}

func (p *printer) slots(s *Summary) {
	p.heading("Slots (%d)", len(s.Slots))
	rows := [][]string{{"SLOT", "SESSION", "WORKER", "STAGE", "PROJECT", "JOB", "PENDING", "TRACKER"}}
	for _, sl := range s.Slots {
		job := "-"
		if sl.Job != nil {
			job = fmt.Sprint(sl.Job.Number)
		}
		rows = append(rows, []string{sl.Slot, sl.Session, orDash(sl.Worker), stageLabel(sl.Stage, sl.StageName),
			orDash(sl.Project), job, orDash(strings.Join(pendingList(sl), ", ")), orDash(sl.Tracker)})
	}
	p.table("  ", rows)

	for _, sl := range s.Slots {
		if sl.Session == SessionClosed && p.opts.Slot == "" {
			continue // nothing left to learn beyond the table
		}
		p.slot(sl)
	}

	if len(s.Orphans) > 0 {
		p.headingWith(p.paint(ansiYellow, fmt.Sprintf("Orphaned outputs (%d): finished work the tracker no longer takes from this worker", len(s.Orphans))), "")
		rows = [][]string{{"SEQ", "SLOT", "STAGE", "JOB", "ORPHANED", "OUTPUT", "REASON"}}
		for _, o := range s.Orphans {
			rows = append(rows, []string{fmt.Sprint(o.Seq), o.Slot, orDash(o.Stage), fmt.Sprint(o.Job), fmtTime(o.Time),
				o.OutputKind + ", " + byteSize(o.OutputBytes), orDash(o.Reason)})
		}
		p.table("  ", rows)
	}
	if p.opts.Source == "" && !p.opts.NoNextSteps {
		p.nextSteps(s)
	}
}

func pendingList(sl SlotSummary) []string {
	var out []string
	if c := sl.CompletionPending; c != nil {
		out = append(out, fmt.Sprintf("completion %d", c.Job))
	}
	if sl.FlagPending {
		out = append(out, "flag")
	}
	if sl.ByePending {
		out = append(out, "bye")
	}
	return out
}

func (p *printer) slot(sl SlotSummary) {
	suffix := ""
	if sl.Session == SessionLost {
		suffix = " " + p.paint(ansiRed, "(session lost)")
	}
	p.headingWith(suffix, "Slot %s: %s", sl.Slot, orDash(sl.Worker))
	var rows [][]string
	switch sl.Session {
	case SessionOpen:
		rows = append(rows, []string{"session", fmt.Sprintf("open since %s; nickname %s, token %s", fmtTime(sl.Registered), orDash(sl.Nickname), orDash(sl.Token))})
	case SessionLost:
		rows = append(rows, []string{"session", "lost: " + orDash(sl.LostReason)})
	case SessionClosed:
		rows = append(rows, []string{"session", "closed (bye applied)"})
	case SessionUnknown:
		rows = append(rows, []string{"session", "none now; lost or never registered (the history is damaged)"})
	default:
		rows = append(rows, []string{"session", "never registered"})
	}
	if sl.Tracker != "" {
		rows = append(rows, []string{"tracker", fmt.Sprintf("%s, project %s, stage %s", sl.Tracker, orDash(sl.Project), stageLabel(sl.Stage, sl.StageName))})
	}
	if j := sl.Job; j != nil {
		line := fmt.Sprintf("%d at stage %s, held since %s", j.Number, orDash(j.Stage), fmtTime(j.Since))
		if j.Since != nil && sl.LastEvent != nil {
			line += fmt.Sprintf(" (%s before its last event)", fmtDuration(sl.LastEvent.Sub(*j.Since)))
		}
		rows = append(rows, []string{"job", line}, []string{"input", withPreview(payloadKindSize(j.InputKind, j.InputBytes), j.preview)})
		if j.CheckpointBytes > 0 {
			rows = append(rows, []string{"checkpoint", fmt.Sprintf("%s at %s", byteSize(j.CheckpointBytes), fmtTime(j.CheckpointTime))})
		} else {
			rows = append(rows, []string{"checkpoint", "none"})
		}
	} else {
		rows = append(rows, []string{"job", "none held"})
	}
	if sl.Progress != "" {
		rows = append(rows, []string{"progress", fmt.Sprintf("%q at %s", sl.Progress, fmtTime(sl.ProgressTime))})
	}
	if c := sl.CompletionPending; c != nil {
		rows = append(rows, []string{"pending", fmt.Sprintf("completion of job %d written %s, answer never recorded",
			c.Job, fmtTime(c.Since))}, []string{"output", withPreview(payloadKindSize(c.OutputKind, c.OutputBytes), c.preview)})
	}
	if sl.FlagPending {
		rows = append(rows, []string{"pending", "flag of invalid data, answer never recorded"})
	}
	if sl.ByePending {
		rows = append(rows, []string{"pending", "bye, answer never recorded"})
	}
	if n := len(sl.Refused); n > 0 {
		r := sl.Refused[n-1]
		rows = append(rows, []string{"refused", fmt.Sprintf("%d job%s at claims (--timeline lists them); last: job %d %s at %s: %s",
			n, plural(n), r.Job, r.Action, fmtTime(r.Time), r.Reason)})
	}
	if r := sl.LastReport; r != nil {
		rows = append(rows, []string{"last recovery", fmt.Sprintf("%s: %s", fmtTime(r.Time), reportLine(r.Report))})
	}
	if d := sl.Drained; d != nil {
		rows = append(rows, []string{"drained", fmt.Sprintf("%s: %s (a clean stop, not a crash)", fmtTime(d.Time), orDash(d.Reason))})
	}
	rows = append(rows, []string{"last event", fmt.Sprintf("seq %d at %s", sl.LastSeq, fmtTime(sl.LastEvent))})
	p.table("  ", rows)
}

func withPreview(s, preview string) string {
	if preview == "" {
		return s
	}
	return s + ": " + preview
}

func payloadKindSize(kind string, n int) string {
	if kind == "null" {
		return "null"
	}
	return kind + ", " + byteSize(n)
}

// nextSteps tells the operator what the journal still holds and which command deals with it.
func (p *printer) nextSteps(s *Summary) {
	var completions, held, flags, byes, open int
	for _, sl := range s.Slots {
		if sl.CompletionPending != nil {
			completions++
		}
		if sl.Job != nil {
			held++
		}
		if sl.FlagPending {
			flags++
		}
		if sl.ByePending {
			byes++
		}
		if sl.Session == SessionOpen {
			open++
		}
	}
	cmd, path := p.opts.Command, shellQuote(s.Journal.Path)
	var rows [][]string
	if completions+held+flags+byes > 0 {
		var what []string
		if completions > 0 {
			what = append(what, fmt.Sprintf("resubmit %d pending completion%s", completions, plural(completions)))
		}
		if flags > 0 {
			what = append(what, fmt.Sprintf("resend %d flag%s", flags, plural(flags)))
		}
		if byes > 0 {
			what = append(what, fmt.Sprintf("resend %d bye%s", byes, plural(byes)))
		}
		if held > 0 {
			what = append(what, fmt.Sprintf("release %d held job%s", held, plural(held)))
		}
		rows = append(rows, []string{cmd + " replay " + path, "to " + strings.Join(what, ", ")})
	}
	if len(s.Orphans) > 0 {
		rows = append(rows, []string{cmd + " export " + path + " --orphans --out DIR", fmt.Sprintf("to save %d orphaned output%s as files", len(s.Orphans), plural(len(s.Orphans)))})
	}
	if len(rows) == 0 {
		if open > 0 {
			p.heading("Nothing pending: no completion, flag or bye waits for an answer, no job is held, no orphan.")
		}
		return
	}
	p.heading("Next steps")
	p.table("  ", rows)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r == '+' || r == '=' || r == ',' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (p *printer) events(evs []EventSummary) {
	rows := [][]string{{"SEQ", "TIME", "SLOT", "KIND", "JOB", "DETAIL"}}
	for _, e := range evs {
		job := ""
		if e.Job != 0 {
			job = fmt.Sprint(e.Job)
		}
		t := "-"
		if e.Time != nil {
			t = e.Time.UTC().Format(eventTimeLayout)
		}
		rows = append(rows, []string{fmt.Sprint(e.Seq), t, e.Slot, e.Kind, job, oneLine(e.Detail)})
	}
	p.table("  ", rows)
}

// oneLine keeps a table cell on one line, free of tabs and of control characters
// (text from the tracker or the worker must not drive the terminal).
func oneLine(s string) string { return termtext.Line(s) }

func (p *printer) job(n int, s *Summary) {
	p.heading("Job %d", n)
	var rows [][]string
	for _, sl := range s.Slots {
		if sl.Job != nil && sl.Job.Number == n {
			rows = append(rows, []string{"held", fmt.Sprintf("by slot %s (%s) since %s", sl.Slot, orDash(sl.Worker), fmtTime(sl.Job.Since))})
		}
		if c := sl.CompletionPending; c != nil && c.Job == n {
			rows = append(rows, []string{"pending", fmt.Sprintf("completion in slot %s since %s", sl.Slot, fmtTime(c.Since))})
		}
	}
	for _, o := range s.Orphans {
		rows = append(rows, []string{"orphan", fmt.Sprintf("output of slot %s written %s (seq %d): %s", o.Slot, fmtTime(o.Time), o.Seq, orDash(o.Reason))})
	}
	if len(rows) == 0 {
		rows = append(rows, []string{"now", "not held, nothing pending"})
	}
	p.table("  ", rows)
	p.heading("History (%d events)", len(s.Events))
	p.events(s.Events)
	for _, e := range s.Events {
		if e.Input != nil {
			p.heading("Input claimed at seq %d (%s)", e.Seq, wireKind(e.Input))
			p.payload(e.Input)
		}
		if e.Output != nil {
			p.heading("Output written at seq %d (%s)", e.Seq, wireKind(e.Output))
			p.payload(e.Output)
		}
	}
}

// payload writes a payload in full, JSON indented, every line indented by two spaces.
func (p *printer) payload(wire *string) {
	text := payloadText(wire)
	if wireKind(wire) == "json" {
		var b bytes.Buffer
		if err := json.Indent(&b, []byte(text), "", "  "); err == nil {
			text = b.String()
		}
	}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		p.printf("  %s\n", oneLine(line))
	}
}
