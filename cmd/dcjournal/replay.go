package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/internal/term"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	"github.com/distcompute/distcompute-go/session"
)

const replayHelp = `Usage: dcjournal replay JOURNAL [--tracker URL] [--release | --resume] [flags]

Runs the worker's recovery from the command line, without the worker program,
against the tracker recorded in the journal (or --tracker URL), for every slot
with an open session or a pending completion:
  - a pending bye is resent;
  - the worker's liveness is checked; if the tracker forgot it, the session is
    recorded as lost and a pending completion's output kept as an orphan
    (export it with "dcjournal export --orphans");
  - a pending completion is resent (the tracker's 403 means an earlier attempt
    was applied, which is recorded as such);
  - a pending flag is resent;
  - a held job is released (--release, the default here: the tracker re-opens it
    for another worker and forgets this one), or left held for the worker to resume
    at its next start (--resume, also --keep).
It prints what it did, and records it in the journal (inspect shows it as the last
recovery). It writes to the journal, so it needs the lock: stop the worker first.
It never claims a job. What it could not settle stays pending; run it again.

The slots are replayed at once; --timeout bounds the whole replay, and stderr says
what each slot did as it finishes (and every 10 s which are still waiting).

It first verifies the journal (as "dcjournal verify") and refuses one that does not
verify (exit 3): a damaged state could resend a wrong output or release the wrong
job. --force replays anyway.

Exit status 0 when every slot was settled; 5 when the tracker could not be reached
within --timeout; 3 when the journal cannot be opened or does not verify; 1 for
any other failure.
`

func runReplay(env *cmdEnv, args []string) error {
	fs := newFlags("replay", replayHelp)
	tracker := fs.String("tracker", "", "talk to the tracker at `URL` instead of the one recorded in the journal")
	release := fs.Bool("release", false, "release held jobs to the tracker (the default)")
	resume := fs.Bool("resume", false, "leave held jobs held, for the worker to resume at its next start")
	keep := fs.Bool("keep", false, "same as --resume")
	slot := fs.String("slot", "", "replay only slot `S`")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up on an unreachable tracker after this long (retries with backoff until then)")
	jsonOut := fs.Bool("json", false, "write the reports as a JSON array (replay.Report objects) instead of text")
	verbose := fs.Bool("v", false, "log each step to stderr")
	force := fs.Bool("force", false, "replay a journal that does not verify (a damaged state may resend a wrong output or release the wrong job)")
	path, err := fs.parseJournal(env, args)
	if err != nil {
		return err
	}
	if *release && (*resume || *keep) {
		return usageErrorf("replay: --release and --resume contradict each other")
	}
	if *timeout <= 0 {
		return usageErrorf("replay: --timeout must be positive")
	}
	opts := replay.Options{Mode: replay.Release, URL: *tracker}
	if *resume || *keep {
		opts.Mode = replay.Resume
	}
	if *tracker != "" {
		if _, err := session.New(*tracker, nil); err != nil {
			return usageErrorf("replay: --tracker: %v", err)
		}
	}
	policy := session.DefaultRetryPolicy()
	policy.MaxElapsedTime = *timeout
	if policy.AttemptTimeout > *timeout {
		policy.AttemptTimeout = *timeout
	}
	opts.Retry = &policy
	if *verbose {
		opts.Logger = slog.New(term.Handler(env.stderr, slog.LevelInfo, os.Getenv))
	}

	db, err := fs.open(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := refuseDamaged(env, db, path, "replay", "acts on damaged states: it may resend a wrong output or release the wrong job", *force); err != nil {
		return err
	}

	var slots []string
	if *slot != "" {
		known, err := db.Slots()
		if err != nil {
			return readError(path, err)
		}
		name := resolveSlot(known, *slot)
		if !contains(known, name) {
			return fmt.Errorf("%w %q in %s (slots: %s)", postmortem.ErrNoSuchSlot, *slot, path, strings.Join(known, ", "))
		}
		slots = []string{name}
	} else {
		states, err := db.States()
		if err != nil {
			return readError(path, err)
		}
		for _, st := range states {
			if replay.NeedsReplay(st) {
				slots = append(slots, st.Slot)
			}
		}
	}
	// --timeout bounds the whole replay: the slots are replayed at once, each
	// with its own retries, all under one deadline.
	ctx, cancel := context.WithTimeout(env.ctx, *timeout)
	defer cancel()
	reports, err := replaySlots(ctx, env.stderr, db, slots, opts, *timeout)
	return replayDone(env, reports, err, *jsonOut, *tracker)
}

// replaySlots replays the slots in parallel and says on progress what each did
// as it finishes, and every 10 s how many are still waiting for the tracker.
// Reports come back in the slots' order; empty ones (nothing to do) are left out.
func replaySlots(ctx context.Context, progress io.Writer, db *journal.DB, slots []string, opts replay.Options, timeout time.Duration) ([]replay.Report, error) {
	if len(slots) == 0 {
		return nil, nil
	}
	start := time.Now()
	fmt.Fprintf(progress, "replaying %d slot(s) (giving up after %s)\n", len(slots), timeout)
	type result struct {
		i   int
		rep replay.Report
		err error
	}
	results := make(chan result, len(slots))
	for i, s := range slots {
		go func() {
			rep, err := replay.Slot(ctx, db, s, opts)
			results <- result{i, rep, err}
		}()
	}
	reps := make([]replay.Report, len(slots))
	errs := make([]error, len(slots))
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for done := 0; done < len(slots); {
		select {
		case r := <-results:
			done++
			reps[r.i], errs[r.i] = r.rep, r.err
			what := r.rep.String()
			if r.err != nil {
				what = "not settled: " + term.ErrorLine("dcjournal", rootCause(r.err))
			}
			fmt.Fprintf(progress, "  [%d/%d] slot %s: %s\n", done, len(slots), slots[r.i], what)
		case <-tick.C:
			fmt.Fprintf(progress, "  %d of %d slot(s) still waiting for the tracker (%s of %s)\n",
				len(slots)-done, len(slots), time.Since(start).Round(time.Second), timeout)
		}
	}
	var out []replay.Report
	for i, rep := range reps {
		if errs[i] != nil || !rep.Empty() {
			out = append(out, rep)
		}
	}
	return out, errors.Join(errs...)
}

// resolveSlot accepts a slot's number for a pool's slot name: "1" means "slot-1"
// when the journal has no slot "1".
func resolveSlot(known []string, s string) string {
	if contains(known, s) || !contains(known, "slot-"+s) {
		return s
	}
	return "slot-" + s
}

func replayDone(env *cmdEnv, reports []replay.Report, err error, jsonOut bool, tracker string) error {
	var perr error
	if jsonOut {
		if reports == nil {
			reports = []replay.Report{}
		}
		perr = postmortem.WriteJSON(env.stdout, reports)
	} else {
		perr = postmortem.PrintReplay(env.stdout, reports)
	}
	switch {
	case err == nil:
		return perr
	case env.ctx.Err() != nil:
		return fmt.Errorf("interrupted; what was settled is recorded, the rest stays pending: run replay again")
	case unreachable(err):
		where, hint := "the tracker recorded in the journal", ", or give --tracker URL"
		if tracker != "" {
			where, hint = tracker, ""
		}
		return withCode(exitTracker, fmt.Errorf("cannot reach %s (%v); nothing is lost, what was not settled stays pending in the journal: run replay again when the tracker is up%s", where, rootCause(err), hint))
	default:
		return fmt.Errorf("replay: %v; what was not settled stays pending in the journal", err)
	}
}

// unreachable reports whether err means the tracker could not be talked to: a
// network error, a timeout, or 5xx/429 answers until the retries gave up.
func unreachable(err error) bool {
	var ne net.Error
	var ue *url.Error
	var se *session.ServerError
	switch {
	case errors.As(err, &ue), errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &se):
		return se.Status >= 500 || se.Status == 429
	}
	return false
}

// rootCause is the innermost error, the one that says what the network did.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
