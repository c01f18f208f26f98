package postmortem

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/journal"
)

// ReportJournal is one journal of a report: usually one machine of a fleet.
type ReportJournal struct {
	// Name labels the journal's lanes; empty means the file's base name.
	Name string
	DB   *journal.DB
}

// ReportOptions configures [Report].
type ReportOptions struct {
	// Title heads the page; empty means "Post-mortem of N journals".
	Title string
	// ShowSecrets shows whole tokens and tracker passwords (never by default: the
	// page is meant to be passed around).
	ShowSecrets bool
	// Now is the time printed as "generated"; zero means time.Now().
	Now time.Time
}

// ReportStats says what a report holds.
type ReportStats struct {
	Journals, Lanes, Jobs, Events, Orphans int
}

// reportTime is how the page prints a time (UTC, to the millisecond).
const reportTime = "2006-01-02 15:04:05.000"

// Outcomes of a job bar in a report, in legend order.
const (
	barAccepted       = "accepted"        // completion accepted
	barAppliedEarlier = "applied-earlier" // resent completion answered 403: an earlier attempt was applied
	barOrphaned       = "orphaned"        // the worker was gone when the output was ready: kept as an orphan
	barReleased       = "released"        // handed back to the tracker (bye, a new claim, release on restart)
	barFlagged        = "flagged"         // input flagged invalid
	barFailed         = "failed"          // the command failed on every attempt, then released
	barLost           = "lost"            // the tracker took the job back (worker timed out), no output
	barPending        = "pending"         // output journaled, the answer never recorded (journal ends)
	barHeld           = "held"            // still held when the journal ends
)

var barOutcomes = []string{barAccepted, barAppliedEarlier, barOrphaned, barReleased, barFlagged, barFailed, barLost, barPending, barHeld}

// Per-job limits that keep a report of 10,000 jobs small: the page keeps every
// event except progress lines, of which it keeps the first and the last few (and
// all their times, as ticks, up to maxTicks).
const (
	keepProgressHead = 1
	keepProgressTail = 2
	maxTicks         = 200
	maxDetail        = 160 // characters of an event's one-line detail
)

// reportData is the model the page's script draws. Times are milliseconds after T0.
type reportData struct {
	Title     string          `json:"title"`
	Generated string          `json:"generated"`
	T0        int64           `json:"t0"` // Unix ms of the first event
	Span      int64           `json:"span"`
	Outcomes  []string        `json:"outcomes"`
	Kinds     []string        `json:"kinds"`
	Journals  []reportJournal `json:"journals"`
	Lanes     []reportLane    `json:"lanes"`
	// Jobs: [lane, start, end, outcome index, job number, first event index, event
	// count, progress ticks, checkpoint ticks, stage]
	Jobs []any `json:"jobs"`
	// Ev: [time, kind index, detail]
	Ev [][3]any `json:"ev"`
	// Marks: [lane, time, type, text]: recovery, registered, lost, drained, failed, closed
	Marks [][4]any `json:"marks"`
	// Gaps: [journal, start, end, kind ("dead"|"stopped"|"silent"), label]
	Gaps    [][5]any       `json:"gaps"`
	Orphans []reportOrphan `json:"orphans"`
	Counts  map[string]int `json:"counts"`
}

type reportJournal struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Events int    `json:"events"`
	First  string `json:"first"`
	Last   string `json:"last"`
	Ending string `json:"ending"` // how the journal ends, for people
}

type reportLane struct {
	Journal int    `json:"j"`
	Slot    string `json:"slot"`
	Worker  string `json:"worker"`
	Stage   string `json:"stage"`
}

type reportOrphan struct {
	Journal string `json:"journal"`
	Slot    string `json:"slot"`
	Stage   string `json:"stage"`
	Job     int    `json:"job"`
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Reason  string `json:"reason"`
	Output  string `json:"output"`
	Lane    int    `json:"lane"`
	T       int64  `json:"t"`
}

// bar is a job from its claim to its settling, while the model is built.
type bar struct {
	lane, job     int
	stage         string
	start, end    time.Time
	outcome       string
	failed        bool
	pending       bool
	events        []journal.Event
	progress      []journal.Event // all progress events, thinned when written
	ticksP        []time.Time
	ticksC        []time.Time
	closed        bool
	partialHist   bool // the claim was pruned from the journal
	settledDetail string
}

// Report writes one self-contained HTML page (inline CSS, script and SVG; no
// network) showing the journals on one time axis: a lane per slot, a bar per job
// from claim to settling coloured by outcome, progress and checkpoints as ticks,
// the silences where a worker was dead shaded, each recovery marked with what it
// did, and the orphaned outputs listed. Hovering a bar shows its events; bars too
// thin to see are drawn as aggregates that say what they hold.
//
// It only reads the journals. Tokens and tracker passwords are redacted unless
// opts.ShowSecrets. A journal whose history cannot be read is an error wrapping
// journal.ErrCorrupt.
func Report(w io.Writer, journals []ReportJournal, opts ReportOptions) (ReportStats, error) {
	if len(journals) == 0 {
		return ReportStats{}, errors.New("postmortem: report of no journal")
	}
	m, err := buildReport(journals, opts)
	if err != nil {
		return ReportStats{}, err
	}
	st := ReportStats{Journals: len(m.Journals), Lanes: len(m.Lanes), Jobs: len(m.Jobs), Orphans: len(m.Orphans)}
	for _, j := range m.Journals {
		st.Events += j.Events
	}
	return st, writeReportHTML(w, m)
}

type laneKey struct {
	j    int
	slot string
}

// builder gathers the report's model across journals.
type builder struct {
	opts   ReportOptions
	t0, t1 time.Time
	lanes  []reportLane
	laneOf map[laneKey]int
	bars   []*bar
	marks  []mark
	gaps   []gap
	orph   []reportOrphan
	kinds  map[string]int
	kindL  []string
}

type mark struct {
	lane int
	t    time.Time
	typ  string
	text string
}

type gap struct {
	j          int
	start, end time.Time
	kind       string
	label      string
}

func buildReport(journals []ReportJournal, opts ReportOptions) (*reportData, error) {
	b := &builder{opts: opts, laneOf: map[laneKey]int{}, kinds: map[string]int{}}
	var js []reportJournal
	for i, rj := range journals {
		name := rj.Name
		if name == "" {
			name = filepath.Base(rj.DB.Path())
		}
		nOrph := len(b.orph)
		info, err := b.readJournal(i, rj.DB)
		if err != nil {
			return nil, fmt.Errorf("postmortem: report: %s: %w", rj.DB.Path(), err)
		}
		info.Name, info.Path = name, rj.DB.Path()
		for k := nOrph; k < len(b.orph); k++ {
			b.orph[k].Journal = name
		}
		js = append(js, info)
	}
	if b.t0.IsZero() {
		b.t0 = time.Now()
		b.t1 = b.t0
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	title := opts.Title
	if title == "" {
		if len(js) == 1 {
			title = "Post-mortem of " + js[0].Name
		} else {
			title = fmt.Sprintf("Post-mortem of %d journals", len(js))
		}
	}
	m := &reportData{
		Title: title, Generated: now.UTC().Format("2006-01-02 15:04:05 UTC"),
		T0: b.t0.UnixMilli(), Span: max(b.t1.Sub(b.t0).Milliseconds(), 1),
		Outcomes: barOutcomes, Journals: js, Lanes: b.lanes, Counts: map[string]int{},
		Jobs: []any{}, Ev: [][3]any{}, Marks: [][4]any{}, Gaps: [][5]any{}, Orphans: b.orph,
	}
	if m.Orphans == nil {
		m.Orphans = []reportOrphan{}
	}
	rel := func(t time.Time) int64 { return t.Sub(b.t0).Milliseconds() }
	outIdx := map[string]int{}
	for i, o := range barOutcomes {
		outIdx[o] = i
	}
	// Lanes in journal, then slot order; bars in lane, then time order.
	sort.SliceStable(b.bars, func(i, k int) bool {
		if b.bars[i].lane != b.bars[k].lane {
			return b.bars[i].lane < b.bars[k].lane
		}
		return b.bars[i].start.Before(b.bars[k].start)
	})
	for _, br := range b.bars {
		first := len(m.Ev)
		for _, e := range thinEvents(br) {
			m.Ev = append(m.Ev, [3]any{rel(e.Time), b.kind(string(e.Kind)), clip(eventDetail(e, opts.ShowSecrets))})
		}
		if n := len(br.progress) - keepProgressHead - keepProgressTail; n > 0 {
			// Say how many progress lines the page left out, where they were.
			at := br.progress[keepProgressHead].Time
			m.Ev = append(m.Ev, [3]any{rel(at), b.kind("progress"), fmt.Sprintf("… %d more progress lines (ticks on the bar)", n)})
			sortEv(m.Ev[first:])
		}
		m.Jobs = append(m.Jobs, []any{br.lane, rel(br.start), rel(br.end), outIdx[br.outcome], br.job,
			first, len(m.Ev) - first, relTicks(br.ticksP, rel), relTicks(br.ticksC, rel), br.stage})
		m.Counts[br.outcome]++
	}
	for _, mk := range b.marks {
		m.Marks = append(m.Marks, [4]any{mk.lane, rel(mk.t), mk.typ, clip(mk.text)})
	}
	for _, g := range b.gaps {
		m.Gaps = append(m.Gaps, [5]any{g.j, rel(g.start), rel(g.end), g.kind, g.label})
	}
	for i := range m.Orphans {
		m.Orphans[i].T = m.Orphans[i].T - b.t0.UnixMilli()
	}
	m.Kinds = b.kindL
	return m, nil
}

func sortEv(ev [][3]any) {
	sort.SliceStable(ev, func(i, k int) bool { return ev[i][0].(int64) < ev[k][0].(int64) })
}

func relTicks(ts []time.Time, rel func(time.Time) int64) []int64 {
	out := make([]int64, 0, min(len(ts), maxTicks))
	step := 1
	if len(ts) > maxTicks {
		step = (len(ts) + maxTicks - 1) / maxTicks
	}
	for i := 0; i < len(ts); i += step {
		out = append(out, rel(ts[i]))
	}
	return out
}

// thinEvents is a bar's events with its progress lines cut to the first and last few.
func thinEvents(br *bar) []journal.Event {
	keep := map[uint64]bool{}
	for i, p := range br.progress {
		if i < keepProgressHead || i >= len(br.progress)-keepProgressTail {
			keep[p.Seq] = true
		}
	}
	var out []journal.Event
	for _, e := range br.events {
		if e.Kind != journal.KindProgress || keep[e.Seq] {
			out = append(out, e)
		}
	}
	return out
}

func clip(s string) string {
	r := []rune(s)
	if len(r) > maxDetail {
		return string(r[:maxDetail]) + "…"
	}
	return s
}

func (b *builder) kind(k string) int {
	if i, ok := b.kinds[k]; ok {
		return i
	}
	b.kinds[k] = len(b.kindL)
	b.kindL = append(b.kindL, k)
	return b.kinds[k]
}

func (b *builder) lane(j int, slot string) int {
	k := laneKey{j, slot}
	if i, ok := b.laneOf[k]; ok {
		return i
	}
	b.laneOf[k] = len(b.lanes)
	b.lanes = append(b.lanes, reportLane{Journal: j, Slot: slot})
	return b.laneOf[k]
}

// slotTrack follows one slot through a journal's history.
type slotTrack struct {
	lane    int
	stage   string
	open    map[int]*bar // unsettled bars by job number
	last    map[int]*bar // the latest bar of each job, for settles that come late
	lastEvt time.Time
	drained bool
}

// recoveryKinds are what recovery writes for a slot before its replayed event.
var recoveryKinds = map[journal.Kind]bool{
	journal.KindCompletionSettled: true, journal.KindFlagSettled: true, journal.KindClosed: true,
	journal.KindSessionLost: true, journal.KindRegistered: true, journal.KindReleased: true,
	journal.KindOrphanResolved: true, journal.KindByePending: true,
}

// readJournal adds journal j's slots, bars, marks, gaps and orphans to the model.
func (b *builder) readJournal(j int, db *journal.DB) (reportJournal, error) {
	var info reportJournal
	var events []journal.Event
	err := db.Events(journal.Filter{}, func(e journal.Event) error {
		events = append(events, e)
		return nil
	})
	if err != nil {
		return info, err
	}
	// Lanes in slot order, whatever order the slots first wrote in.
	var slots []string
	seen := map[string]bool{}
	for _, e := range events {
		if !seen[e.Slot] {
			seen[e.Slot] = true
			slots = append(slots, e.Slot)
		}
	}
	sort.Slice(slots, func(i, k int) bool { return lessSlot(slotNumber(slots[i]), slotNumber(slots[k])) })
	tracks := map[string]*slotTrack{}
	for _, s := range slots {
		tracks[s] = &slotTrack{lane: b.lane(j, s), open: map[int]*bar{}, last: map[int]*bar{}}
	}
	info.Events = len(events)
	if len(events) == 0 {
		info.Ending = "empty journal"
		return info, nil
	}
	first, last := events[0].Time, events[0].Time
	for _, e := range events {
		if e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	info.First = first.UTC().Format(reportTime)
	info.Last = last.UTC().Format(reportTime)
	if b.t0.IsZero() || first.Before(b.t0) {
		b.t0 = first
	}
	if last.After(b.t1) {
		b.t1 = last
	}

	var drainReason string
	for i, e := range events {
		tr := tracks[e.Slot]
		b.event(tr, e)
		tr.lastEvt = e.Time
		if e.Kind == journal.KindDrained {
			drainReason = e.Reason
		} else if e.Kind == journal.KindClaimed {
			drainReason = ""
		}
		if e.Kind == journal.KindReplayed && startsRecovery(events, i) {
			b.addRestartGap(j, events, i)
		}
	}
	// Bars still open when the journal ends.
	unfinished := 0
	for _, s := range slots {
		for _, br := range tracks[s].open {
			br.end = last
			if br.pending {
				br.outcome = barPending
			} else {
				br.outcome = barHeld
			}
			unfinished++
		}
	}
	switch {
	case drainReason != "":
		info.Ending = "drained (" + drainReason + ")"
		if unfinished > 0 {
			info.Ending += fmt.Sprintf(", %d job(s) left held for a resume", unfinished)
		}
	case unfinished > 0:
		info.Ending = fmt.Sprintf("stopped writing with %d job(s) unfinished: crashed, killed, or still running when copied", unfinished)
		b.gaps = append(b.gaps, gap{j: j, start: last, kind: "silent", label: "no event after this: the worker died here (or the copy was taken)"})
	default:
		info.Ending = "nothing unfinished"
	}

	orphans, err := db.Orphans()
	if err != nil {
		return info, err
	}
	done := completedElsewhere(orphans, events)
	for _, o := range orphans {
		if done[o.Seq] {
			continue // another slot completed the same job since: nothing was lost
		}
		b.orph = append(b.orph, reportOrphan{
			Slot: o.Slot, Stage: o.Stage, Job: o.Job, Seq: o.Seq, Time: o.Time.UTC().Format(reportTime),
			Reason: o.Reason, Output: payloadSize(&o.Output), Lane: b.lane(j, o.Slot), T: o.Time.UnixMilli(),
		})
	}
	return info, nil
}

// slotNumber is "3" for "slot-3", so that slot-10 sorts after slot-9.
func slotNumber(s string) string {
	if n, ok := strings.CutPrefix(s, "slot-"); ok && isDigits(n) {
		return n
	}
	return s
}

// startsRecovery reports whether events[i], a replayed event, is the first of a
// process start (not one slot of a recovery already under way): no normal work
// (a claim, progress, a checkpoint, a pending completion) lies between it and the
// previous replayed event.
func startsRecovery(events []journal.Event, i int) bool {
	for k := i - 1; k >= 0; k-- {
		switch events[k].Kind {
		case journal.KindReplayed:
			return false
		case journal.KindClaimed, journal.KindProgress, journal.KindCheckpoint, journal.KindCompletionPending, journal.KindFlagPending:
			return true
		}
	}
	return true
}

// addRestartGap shades the silence before the recovery whose replayed event is
// events[i]: from the last event written before the process stopped to the first
// one the recovery wrote (walking back over the recovery's own events).
func (b *builder) addRestartGap(j int, events []journal.Event, i int) {
	start := i
	for start > 0 && events[start-1].Slot == events[i].Slot && recoveryKinds[events[start-1].Kind] {
		start--
	}
	if start == 0 {
		return
	}
	before, after := events[start-1], events[start]
	kind, label := "dead", "dead: no event from "+before.Time.UTC().Format("15:04:05.000")+" to the recovery"
	if before.Kind == journal.KindDrained {
		kind, label = "stopped", "stopped after a drain ("+before.Reason+") until the restart"
	}
	label += fmt.Sprintf(" (%s)", after.Time.Sub(before.Time).Round(time.Millisecond))
	b.gaps = append(b.gaps, gap{j: j, start: before.Time, end: after.Time, kind: kind, label: label})
}

// event folds one event into its slot's bars and marks.
func (b *builder) event(tr *slotTrack, e journal.Event) {
	closeBar := func(br *bar, outcome string) {
		br.end, br.outcome, br.closed = e.Time, outcome, true
		delete(tr.open, br.job)
	}
	// barFor is the bar an event about job n belongs to, opening one when its
	// claim was pruned from the history.
	barFor := func(n int) *bar {
		if br := tr.open[n]; br != nil {
			return br
		}
		if n == 0 {
			return nil
		}
		br := &bar{lane: tr.lane, job: n, stage: tr.stage, start: e.Time, partialHist: true}
		b.bars = append(b.bars, br)
		tr.open[n], tr.last[n] = br, br
		return br
	}
	add := func(br *bar) {
		br.events = append(br.events, e)
	}
	switch e.Kind {
	case journal.KindRegistered:
		tr.stage = e.Stage
		ln := &b.lanes[tr.lane]
		ln.Worker, ln.Stage = e.DisplayName, stageLabel(e.Stage, e.StageName)
		b.marks = append(b.marks, mark{tr.lane, e.Time, "registered", "registered: " + eventDetail(e, b.opts.ShowSecrets)})
	case journal.KindClaimed:
		for _, br := range tr.open { // a claim releases what the worker held
			add(br)
			closeBar(br, barReleased)
		}
		br := &bar{lane: tr.lane, job: e.Job, stage: tr.stage, start: e.Time}
		b.bars = append(b.bars, br)
		tr.open[e.Job], tr.last[e.Job] = br, br
		add(br)
	case journal.KindProgress, journal.KindCheckpoint:
		br := tr.open[e.Job]
		if br == nil && e.Job != 0 {
			br = barFor(e.Job)
		}
		if br == nil {
			return // progress between jobs
		}
		if e.Kind == journal.KindProgress {
			br.progress = append(br.progress, e)
			br.ticksP = append(br.ticksP, e.Time)
		} else {
			br.ticksC = append(br.ticksC, e.Time)
		}
		add(br)
	case journal.KindCompletionPending:
		if br := barFor(e.Job); br != nil {
			br.pending = true
			add(br)
		}
	case journal.KindCompletionSettled:
		br := tr.open[e.Job]
		if br == nil {
			br = tr.last[e.Job]
		}
		if br == nil {
			br = barFor(e.Job)
		}
		if br == nil {
			return
		}
		add(br)
		outcome := map[string]string{journal.OutcomeAccepted: barAccepted, journal.OutcomeAppliedEarlier: barAppliedEarlier, journal.OutcomeOrphaned: barOrphaned}[e.Outcome]
		if outcome == "" {
			outcome = barReleased
		}
		br.pending = false
		if br.closed {
			br.end, br.outcome = e.Time, outcome
			return
		}
		closeBar(br, outcome)
	case journal.KindFlagPending:
		if br := barFor(e.Job); br != nil {
			add(br)
		}
	case journal.KindFlagSettled:
		br := barFor(e.Job)
		if br == nil {
			return
		}
		add(br)
		switch e.Outcome {
		case journal.OutcomeFailed: // the tracker refused the flag: still held
		case journal.OutcomeOrphaned:
			closeBar(br, barLost)
		default:
			closeBar(br, barFlagged)
		}
	case journal.KindReleased:
		br := barFor(e.Job)
		if br == nil {
			return
		}
		add(br)
		if br.failed {
			closeBar(br, barFailed)
		} else {
			closeBar(br, barReleased)
		}
	case journal.KindFailed:
		if br := barFor(e.Job); br != nil {
			br.failed = true
			add(br)
		}
		b.marks = append(b.marks, mark{tr.lane, e.Time, "failed", fmt.Sprintf("job %d: command failed: %s", e.Job, e.Reason)})
	case journal.KindSessionLost:
		for _, br := range tr.open {
			add(br)
			if br.pending {
				closeBar(br, barOrphaned)
			} else {
				closeBar(br, barLost)
			}
		}
		b.marks = append(b.marks, mark{tr.lane, e.Time, "lost", "session lost: " + e.Reason})
	case journal.KindClosed:
		for _, br := range tr.open {
			add(br)
			closeBar(br, barReleased)
		}
		b.marks = append(b.marks, mark{tr.lane, e.Time, "closed", "session closed (bye)"})
	case journal.KindReplayed:
		b.marks = append(b.marks, mark{tr.lane, e.Time, "recovery", "recovery: " + reportLine(e.Report)})
	case journal.KindDrained:
		tr.drained = true
		b.marks = append(b.marks, mark{tr.lane, e.Time, "drained", "drained: " + orDash(e.Reason)})
	case journal.KindOrphanResolved:
		b.marks = append(b.marks, mark{tr.lane, e.Time, "orphan", eventDetail(e, b.opts.ShowSecrets)})
	case journal.KindByePending:
		for _, br := range tr.open {
			add(br)
		}
	}
}

// completedElsewhere says which orphans were made moot by a later accepted
// completion of the same job at the same stage (by any slot of the journal): the
// work the orphan holds reached the tracker another way.
func completedElsewhere(orphans []journal.Orphan, events []journal.Event) map[uint64]bool {
	if len(orphans) == 0 {
		return nil
	}
	type key struct {
		stage string
		job   int
	}
	latest := map[key]time.Time{} // last accepted completion of each job
	stage := map[string]string{}  // each slot's stage, from its registration
	for _, e := range events {
		switch e.Kind {
		case journal.KindRegistered:
			stage[e.Slot] = e.Stage
		case journal.KindCompletionSettled:
			if e.Outcome == journal.OutcomeAccepted || e.Outcome == journal.OutcomeAppliedEarlier {
				k := key{stage[e.Slot], e.Job}
				if e.Time.After(latest[k]) {
					latest[k] = e.Time
				}
			}
		}
	}
	done := map[uint64]bool{}
	for _, o := range orphans {
		if t, ok := latest[key{o.Stage, o.Job}]; ok && !t.Before(o.Time) {
			done[o.Seq] = true
		}
	}
	return done
}
