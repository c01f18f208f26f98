// Package replay reconciles a journal with the tracker after a restart.
//
// A worker that crashed, was preempted or lost its network leaves its journal
// with unsettled work: a bye, completion or flag that was recorded and maybe
// never sent (or sent and its answer lost), and a job it held. Slot settles
// one slot, Run every slot, following docs/DESIGN.md "Recovery" step by step:
//
//  1. A pending bye is resent; 404 means it was applied. The session is then
//     over and nothing else is done.
//  2. validateWorker(token). False: the tracker deleted the worker and
//     re-opened its job; the session is recorded as lost (a pending
//     completion's output becomes an orphan, kept in the journal). True: the
//     worker is refreshed at once with updateProgress, because validateWorker
//     does not refresh it.
//  3. A pending completion is resent with the same token: 200 accepted; 403
//     applied by an earlier attempt whose answer was lost; 404 orphaned.
//  4. A pending flag is resent: 200 accepted; 403 applied earlier; 422 (the
//     upstream tracker's 5th-flag bug) failed, the job still held.
//  5. A job held and not completed is resumed (Resume, the default: the
//     program gets it back with its last checkpoint) or released (Release).
//     The tracker has no release endpoint: releasing means bye, which
//     re-opens the job and deletes the worker; a client that goes on
//     registers afresh.
//
// Replay never claims a job (newJob would release a job held by the token),
// and never registers: registering afresh is the client's business (package
// client does it after Slot when the session was lost, released or closed).
// Orphans are resolved later, when a claim returns the same job: see
// MatchOrphan.
//
// Every step's answer is recorded in the journal before the next step is
// taken, so replay itself can be interrupted and run again. The Report of
// each run is journaled (a replayed event) and logged.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// Mode says what replay does with a job the slot held and had not completed.
type Mode int

const (
	// Resume hands the job back to the program, with its last checkpoint.
	Resume Mode = iota
	// Release hands the job back to the tracker. The tracker has no release
	// endpoint, so this says bye: the job is re-opened and the worker
	// deleted; the client registers afresh if it goes on.
	Release
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Resume:
		return "resume"
	case Release:
		return "release"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Options configure a replay. The zero value resumes held jobs, logs nothing
// and talks to the tracker recorded in the journal.
type Options struct {
	// Mode: Resume (default) or Release held jobs.
	Mode Mode
	// Logger receives what replay does (nil: discard). Tokens are redacted.
	Logger *slog.Logger
	// Conn talks to the tracker. Nil: a Conn is built for each slot from URL,
	// or else from the URL recorded in the slot's registration (a journal
	// belongs to its tracker).
	Conn *session.Conn
	// URL overrides the recorded tracker URL when Conn is nil.
	URL string
	// HTTPClient and Retry configure the Conn built when Conn is nil.
	HTTPClient *http.Client
	Retry      *session.RetryPolicy
	// Bye ends the slot's session after settling it (client uses this when it
	// moves to another tracker or stage): a held job is released and the
	// worker deleted, whatever Mode says.
	Bye bool
	// Hook, if set, is called with point "after-send" and the operation
	// ("complete", "flag", "bye") when a resend's answer arrived and before
	// it is recorded. It exists for crash tests (see internal/hooks).
	Hook func(point, op string)
}

// Report says what a replay of one slot did. Job numbers are listed in the
// field saying what became of them; the report is journaled as JSON in a
// replayed event and is available from the journal's State.LastReport.
type Report struct {
	Slot string `json:"slot"`
	// Resubmitted: pending completions resent and accepted.
	Resubmitted []int `json:"resubmitted,omitempty"`
	// AppliedEarlier: pending completions the tracker had applied before
	// (the resend answered 403: the earlier attempt's answer was lost).
	AppliedEarlier []int `json:"applied_earlier,omitempty"`
	// Orphaned: pending completions whose worker was gone; the output is kept
	// in the journal as an orphan.
	Orphaned []int `json:"orphaned,omitempty"`
	// Resumed: held jobs handed back to the program.
	Resumed []int `json:"resumed,omitempty"`
	// Released: held jobs handed back to the tracker (bye).
	Released []int `json:"released,omitempty"`
	// Lost: held jobs the tracker had taken back because the worker timed
	// out while the process was down (no output to keep).
	Lost []int `json:"lost,omitempty"`
	// FlagsResent: jobs whose pending flag was resent and settled.
	FlagsResent []int `json:"flags_resent,omitempty"`
	// FlagsFailed: jobs whose resent flag the tracker refused (422); the job
	// is still held.
	FlagsFailed []int `json:"flags_failed,omitempty"`
	// ByeResent: a pending bye was resent and the session closed.
	ByeResent bool `json:"bye_resent,omitempty"`
	// SessionLost: the tracker no longer knew the worker.
	SessionLost bool `json:"session_lost,omitempty"`
	// Reregistered: a fresh registration followed (set by package client).
	Reregistered bool `json:"reregistered,omitempty"`
	// Closed: the session ended with a bye during this replay (Release or
	// Options.Bye).
	Closed bool `json:"closed,omitempty"`
	// Errors: what could not be settled (it stays pending in the journal).
	Errors []string `json:"errors,omitempty"`
}

// Empty reports whether the replay did nothing worth telling.
func (r Report) Empty() bool {
	return len(r.Resubmitted)+len(r.AppliedEarlier)+len(r.Orphaned)+len(r.Resumed)+
		len(r.Released)+len(r.Lost)+len(r.FlagsResent)+len(r.FlagsFailed)+len(r.Errors) == 0 &&
		!r.ByeResent && !r.SessionLost && !r.Reregistered && !r.Closed
}

// String summarises the report on one line.
func (r Report) String() string {
	var parts []string
	add := func(name string, jobs []int) {
		if len(jobs) > 0 {
			parts = append(parts, fmt.Sprintf("%s %v", name, jobs))
		}
	}
	add("resubmitted", r.Resubmitted)
	add("applied-earlier", r.AppliedEarlier)
	add("orphaned", r.Orphaned)
	add("resumed", r.Resumed)
	add("released", r.Released)
	add("lost", r.Lost)
	add("flags-resent", r.FlagsResent)
	add("flags-failed", r.FlagsFailed)
	for _, f := range []struct {
		name string
		on   bool
	}{{"bye-resent", r.ByeResent}, {"session-lost", r.SessionLost}, {"reregistered", r.Reregistered}, {"closed", r.Closed}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	if len(r.Errors) > 0 {
		parts = append(parts, fmt.Sprintf("errors %q", r.Errors))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("slot %q: nothing to do", r.Slot)
	}
	return fmt.Sprintf("slot %q: %s", r.Slot, strings.Join(parts, ", "))
}

// NeedsReplay reports whether a slot's state holds work to reconcile with
// the tracker: an open session (whose worker may have timed out and whose
// job, completion, flag or bye may be pending), or a completion left pending
// by a closed session.
func NeedsReplay(st journal.State) bool {
	return (st.Session != nil && !st.Closed) || st.Completion != nil
}

// Run replays every slot of db that needs it (see NeedsReplay), in the
// order of db.Slots. It returns the reports of the slots it replayed and the
// errors of those it could not settle, joined; a slot's error does not stop
// the others.
func Run(ctx context.Context, db *journal.DB, opts Options) ([]Report, error) {
	slots, err := db.Slots()
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	var reports []Report
	var errs []error
	for _, slot := range slots {
		st, err := db.State(slot)
		if err != nil {
			errs = append(errs, fmt.Errorf("replay: slot %q: %w", slot, err))
			continue
		}
		if !NeedsReplay(st) {
			continue
		}
		rep, err := Slot(ctx, db, slot, opts)
		reports = append(reports, rep)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return reports, errors.Join(errs...)
}

// Slot replays one slot (see the package documentation for the steps). It
// is a no-op returning an empty Report for a slot that does not need it. On
// an error (tracker unreachable after the retry policy gave up, ctx done,
// an answer the protocol does not foresee) it stops; what was settled is
// recorded, the rest stays pending, and Slot can be run again. The Report is
// journaled and logged in both cases.
func Slot(ctx context.Context, db *journal.DB, slot string, opts Options) (Report, error) {
	r := &run{db: db, slot: slot, opts: opts, rep: Report{Slot: slot}}
	r.log = opts.Logger
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With(slog.String("slot", slot))
	st, err := db.State(slot)
	if err != nil {
		return r.rep, fmt.Errorf("replay: slot %q: %w", slot, err)
	}
	if !NeedsReplay(st) {
		return r.rep, nil
	}
	err = r.do(ctx, st)
	if err != nil {
		r.rep.Errors = append(r.rep.Errors, err.Error())
		err = fmt.Errorf("replay: slot %q: %w", slot, err)
	}
	if jerr := Record(db, r.rep); jerr != nil && err == nil {
		err = fmt.Errorf("replay: slot %q: %w", slot, jerr)
	}
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	r.log.Log(ctx, lvl, "replayed journal", slog.String("report", r.rep.String()))
	return r.rep, err
}

// Record journals rep as a replayed event of its slot.
func Record(db *journal.DB, rep Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = db.Append(journal.Event{Slot: rep.Slot, Kind: journal.KindReplayed, Report: b})
	return err
}

type run struct {
	db   *journal.DB
	slot string
	opts Options
	log  *slog.Logger
	rep  Report
	conn *session.Conn
}

func (r *run) append(e journal.Event) error {
	e.Slot = r.slot
	_, err := r.db.Append(e)
	return err
}

func (r *run) hook(op string) {
	if r.opts.Hook != nil {
		r.opts.Hook("after-send", op)
	}
}

func (r *run) connect(st journal.State) error {
	if r.opts.Conn != nil {
		r.conn = r.opts.Conn
		return nil
	}
	url := r.opts.URL
	if url == "" && st.Session != nil {
		url = st.Session.URL
	}
	if url == "" {
		return fmt.Errorf("no tracker URL recorded or given")
	}
	c, err := session.New(url, &session.Options{HTTPClient: r.opts.HTTPClient, Logger: r.opts.Logger, Retry: r.opts.Retry})
	if err != nil {
		return err
	}
	r.conn = c
	return nil
}

// lost records that the tracker no longer knows the worker: the held job is
// gone (re-opened by the tracker) and a pending completion becomes an orphan.
func (r *run) lost(st journal.State, reason string) error {
	if err := r.append(journal.Event{Kind: journal.KindSessionLost, Reason: reason}); err != nil {
		return err
	}
	r.reportLost(st, reason)
	return nil
}

// reportLost adds a recorded session loss to the report.
func (r *run) reportLost(st journal.State, reason string) {
	r.rep.SessionLost = true
	if st.Completion != nil {
		r.rep.Orphaned = append(r.rep.Orphaned, st.Completion.Job.Number)
		r.log.Warn("worker gone: pending completion kept as an orphan", slog.Int("job", st.Completion.Job.Number), slog.String("reason", reason))
	}
	if st.Job != nil {
		r.rep.Lost = append(r.rep.Lost, st.Job.Number)
		r.log.Warn("worker gone: the tracker took back the held job", slog.Int("job", st.Job.Number), slog.String("reason", reason))
	}
}

func (r *run) state() (journal.State, error) { return r.db.State(r.slot) }

func (r *run) do(ctx context.Context, st journal.State) error {
	if st.Session == nil || st.Closed {
		// A completion left pending by a session that is over: nobody
		// can send it any more, keep it as an orphan.
		c := st.Completion
		if err := r.append(journal.Event{Kind: journal.KindCompletionSettled, Job: c.Job.Number,
			Outcome: journal.OutcomeOrphaned, Reason: "the session ended while the completion was pending"}); err != nil {
			return err
		}
		r.rep.Orphaned = append(r.rep.Orphaned, c.Job.Number)
		return nil
	}
	if err := r.connect(st); err != nil {
		return err
	}
	token := st.Session.Token
	r.log.Info("replaying journal", slog.String("url", r.conn.URL()), slog.String("token", session.Redact(token)))

	// 1. Pending bye.
	if st.ByePending {
		if err := r.bye(ctx, token); err != nil {
			return err
		}
		r.rep.ByeResent = true
		// A completion still pending (the client never says bye with one,
		// but a journal may come from elsewhere) can no longer be sent.
		if st.Completion != nil {
			return r.do(ctx, journal.State{Slot: r.slot, Completion: st.Completion})
		}
		return nil
	}

	// 2. Is the worker still known?
	alive, err := r.conn.IsAlive(ctx, token)
	if err != nil {
		return err
	}
	if !alive {
		return r.lost(st, "validateWorker answered False on replay: the tracker deleted the worker")
	}
	if err := r.conn.UpdateProgress(ctx, token, st.Progress); err != nil {
		return err
	}

	// 3. Pending completion, 4. pending flag. Every send here is a resend:
	// the process that recorded them may have sent them.
	if st.Completion != nil {
		if st, err = r.settle(ctx, st, OpComplete); err != nil || st.Session == nil {
			return err
		}
	}
	if st.FlagPending && st.Job != nil {
		if st, err = r.settle(ctx, st, OpFlag); err != nil || st.Session == nil {
			return err
		}
	}

	// 5. Held job.
	release := r.opts.Mode == Release || r.opts.Bye
	if st.Job != nil {
		if !release {
			r.rep.Resumed = append(r.rep.Resumed, st.Job.Number)
			r.log.Info("job resumed", slog.Int("job", st.Job.Number), slog.Int("checkpoint_bytes", len(st.Job.Checkpoint)))
			return nil
		}
		n := st.Job.Number
		if err := r.append(journal.Event{Kind: journal.KindByePending}); err != nil {
			return err
		}
		if err := r.bye(ctx, token); err != nil {
			return err
		}
		r.rep.Released = append(r.rep.Released, n)
		r.rep.Closed = true
		return nil
	}
	if r.opts.Bye {
		if err := r.append(journal.Event{Kind: journal.KindByePending}); err != nil {
			return err
		}
		if err := r.bye(ctx, token); err != nil {
			return err
		}
		r.rep.Closed = true
	}
	return nil
}

// bye sends a bye that is recorded pending and records the session closed
// (after recording the held job released). 404 means the worker is gone
// either way: an earlier bye was applied, or it timed out.
func (r *run) bye(ctx context.Context, token string) error {
	res, err := Settle(ctx, r.db, r.conn, r.slot, OpBye, true, r.hook)
	if err != nil {
		return err
	}
	if !res.Outcome.Settled() {
		return res.Err
	}
	return nil
}

// settle resends the pending op of the slot whose state is st, adds what
// became of it to the report, and returns the slot's new state. An
// unsettled op is an error: it stays pending and replay stops.
func (r *run) settle(ctx context.Context, st journal.State, op Op) (journal.State, error) {
	res, err := Settle(ctx, r.db, r.conn, r.slot, op, true, r.hook)
	if err != nil {
		return st, err
	}
	switch res.Outcome {
	case Unsettled:
		return st, res.Err
	case WorkerGone:
		r.reportLost(st, op404(op)+" on replay")
	case Accepted:
		if op == OpComplete {
			r.rep.Resubmitted = append(r.rep.Resubmitted, res.Job)
		} else {
			r.rep.FlagsResent = append(r.rep.FlagsResent, res.Job)
		}
	case AppliedEarlier:
		if op == OpComplete {
			r.rep.AppliedEarlier = append(r.rep.AppliedEarlier, res.Job)
		} else {
			r.rep.FlagsResent = append(r.rep.FlagsResent, res.Job)
		}
	case Orphaned:
		if op == OpComplete {
			r.rep.Orphaned = append(r.rep.Orphaned, res.Job)
			r.log.Warn("the tracker refused the pending completion: output kept as an orphan", slog.Int("job", res.Job), slog.String("answer", res.Err.Error()))
		} else {
			r.rep.FlagsResent = append(r.rep.FlagsResent, res.Job)
		}
	case Refused:
		r.rep.FlagsFailed = append(r.rep.FlagsFailed, res.Job)
	}
	return r.state()
}

// MatchOrphan returns the oldest of orphans that completes the job just
// claimed: same stage, job number and input (wire form; nil for null data).
// A client that finds one submits its output instead of redoing the work.
func MatchOrphan(orphans []journal.Orphan, stage string, job int, input *string) (journal.Orphan, bool) {
	for _, o := range orphans {
		if o.Stage == stage && o.Job == job && sameInput(o.Input, input) {
			return o, true
		}
	}
	return journal.Orphan{}, false
}

func sameInput(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}
