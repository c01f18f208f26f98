package worker

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// Pauses between the attempts to journal what a slot holds in memory while
// the journal cannot be written: the first pause, doubled after each failed
// attempt up to the last. A success anywhere (another slot's attempt, a
// claim) wakes every waiting slot at once, so the pauses bound the attempts
// (at most ~8 in the first minute, then 2 a minute per slot) without
// delaying the recovery.
const (
	JournalRetryMin = time.Second
	JournalRetryMax = 30 * time.Second
	// DefaultJournalDeadline is how long the journal may stay unwritable
	// before the worker drains and stops (ErrJournalUnwritable).
	DefaultJournalDeadline = 10 * time.Minute
)

// ErrJournalUnwritable reports that the journal stayed unwritable past
// Config.JournalDeadline: the worker drained and stopped (dcworker exits 4).
// What was held in memory then was never journaled; the jobs it belonged to
// are still held at the tracker by this worker and are run again after a
// restart with a writable journal (or re-opened by the tracker once the
// worker times out).
var ErrJournalUnwritable = errors.New("worker: the journal stayed unwritable")

// notRecorded reports an action the client refused because its record could
// not be made durable: nothing was recorded and nothing sent, so the caller
// still holds what it wanted recorded and may try again.
func notRecorded(err error) bool { return errors.Is(err, client.ErrNotRecorded) }

// journalRefused reports an error of a client call whose journal write was
// refused: an action not recorded, or a record made along the way, such as
// the tracker's answer to a completion resent before a claim (which the
// client returns without ErrNotRecorded: its action was recorded before).
// Either way the journal cannot be written now, and trying again at once
// would fail again.
func journalRefused(err error) bool {
	return notRecorded(err) || errors.Is(err, journal.ErrStopped) || errors.Is(err, journal.ErrFull)
}

// JournalStatus is the journal's writability as /status and the page show
// it.
type JournalStatus = statusserver.JournalStatus

// journalCause is the error to show for a journal write the client
// refused: the whole chain, which names the file, the operation and the
// system's error ("no space left on device").
func journalCause(err error) string { return err.Error() }

// holdRetry is called after slot i failed to journal what (err wraps
// client.ErrNotRecorded). It records the failure and waits *pause (then
// doubles it, up to JournalRetryMax), or less if the journal becomes
// writable meanwhile. It returns false when the slot must give up what it
// holds: a hard stop, or a drain whose grace period is over.
//
// ctx bounds the wait too: a slot that holds something passes e.runCtx, a
// claim (which holds nothing) its claim context, which ends with a drain.
func (e *engine) holdRetry(ctx context.Context, i int, what string, err error, pause *time.Duration, began time.Time) bool {
	woken := e.disk.Failed(i, what, err, *pause, began)
	wait := *pause
	*pause = min(2**pause, JournalRetryMax)
	if e.isDraining() {
		_, end := e.drainState()
		left := time.Until(end)
		if left <= 0 {
			return false
		}
		wait = min(wait, left)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-woken:
	}
	return true
}

// giveUp logs that slot i stops holding what it could not journal.
func (e *engine) giveUp(i int, what string, err error) {
	e.disk.Drop(i)
	e.log.Error("giving up what could not be journaled: it is lost, and the job is run again after a restart", "slot", e.clients[i].Slot(),
		"lost", what, "err", journalCause(err))
}

// journalExpired drains the worker and makes Run return ErrJournalUnwritable.
func (e *engine) journalExpired(since time.Time, err error) {
	e.fail(fmt.Errorf("%w since %s (%s, --journal-deadline %s): %w", ErrJournalUnwritable,
		since.UTC().Format(time.RFC3339), time.Since(since).Round(time.Second), e.cfg.JournalDeadline, err))
	e.log.Error("the journal stayed unwritable past the deadline: draining and stopping", "path", e.cfg.Journal,
		"since", since.UTC().Format(time.RFC3339), "deadline", e.cfg.JournalDeadline)
	e.drain(syscall.SIGTERM, fmt.Sprintf("the journal stayed unwritable for %s", e.cfg.JournalDeadline))
}

// waitClaim blocks slot i while the journal is unwritable: it waits for
// the slots that hold something to find it writable, or probes it itself
// (see statusserver.DiskState) with pause, the slot's claim schedule. It returns false
// when ctx ends.
func (e *engine) waitClaim(ctx context.Context, i int, pause *time.Duration) bool {
	for {
		claim, probe, ch := e.disk.MayClaim(i)
		switch {
		case claim:
			return true
		case probe:
			began := time.Now()
			err := e.clients[i].JournalHealth()
			if err == nil {
				e.disk.OK(i, began)
				return true
			}
			if !e.holdRetry(ctx, i, "", err, pause, began) {
				return false
			}
			continue
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// record runs one of slot i's journaled actions on job num (a completion,
// a flag) in state. While the client cannot record it (client.ErrNotRecorded:
// nothing recorded, nothing sent), the slot holds it in memory (what says
// what it is) and tries again (see holdRetry); the action itself holds what
// it records (the output), so trying again is calling it again. It returns
// the action's last error; a notRecorded one means the slot gave up on it
// (a hard stop, or the end of a drain's grace period), which it logged.
func (e *engine) record(i, num int, state, what string, act func(context.Context) error) error {
	st := e.slots[i]
	pause := JournalRetryMin
	for {
		st.set(e.m, state, num)
		began := time.Now()
		ctx, cancel := e.netCtx()
		err := act(ctx)
		cancel()
		if !notRecorded(err) {
			switch {
			case recorded(err) && journalRefused(err):
				// Recorded and sent, but the tracker's answer could not be
				// recorded (client.ErrUnconfirmed wrapping the journal's
				// refusal): the output is safe in the journal, nothing is
				// held in memory, and the journal is still unwritable: the
				// spell goes on (claims wait, the prober asks).
				e.disk.Failed(i, "", err, 0, began)
				e.disk.InJournal(i)
			case recorded(err):
				e.disk.OK(i, began)
			default:
				e.disk.Drop(i) // the caller logs what became of it
			}
			return err
		}
		st.set(e.m, stateHolding, num)
		if !e.holdRetry(e.runCtx, i, what, err, &pause, began) {
			e.giveUp(i, what, err)
			return err
		}
	}
}

// recorded reports an outcome of a completion or flag for which the client
// wrote its record: accepted, unconfirmed (pending in the journal) or
// orphaned.
func recorded(err error) bool {
	return err == nil || errors.Is(err, client.ErrUnconfirmed) || errors.Is(err, client.ErrOrphaned)
}

// openPool opens the journal and the slots' clients. A journal that cannot
// be written at the start (a full or read-only disk, a failed fsync while
// it is created or while a slot registers) is tried again on the same
// schedule as a held record, until Config.JournalDeadline: a worker started
// on a full disk waits for space rather than exit. Nothing is claimed
// meanwhile (there is no client yet).
func (e *engine) openPool(ctx context.Context, opts []client.Option) (*client.Pool, error) {
	pause := JournalRetryMin
	var since time.Time
	// While retrying, the journal's own line for each failure is quiet
	// (debug): the line above says it once.
	defer e.disk.Opening.Store(false)
	for {
		pool, err := client.OpenPool(ctx, e.cfg.TrackerURL, e.cfg.Stage, e.cfg.Slots, opts...)
		e.disk.Opening.Store(false)
		if err == nil {
			if !since.IsZero() {
				e.log.Info(fmt.Sprintf("journal %s writable again: starting", e.cfg.Journal), "down_for", time.Since(since).Round(time.Millisecond))
			}
			return pool, nil
		}
		if !unwritable(err) || ctx.Err() != nil {
			return nil, err
		}
		e.disk.Failures.Add(1)
		if since.IsZero() {
			since = time.Now()
			e.log.Error(fmt.Sprintf("journal %s cannot be written: not starting until it can", e.cfg.Journal),
				"err", journalCause(err), "retry_in", pause, "deadline", e.cfg.JournalDeadline)
		}
		e.disk.Opening.Store(true)
		if time.Since(since) >= e.cfg.JournalDeadline {
			return nil, fmt.Errorf("%w since %s (%s, --journal-deadline %s): %w", ErrJournalUnwritable,
				since.UTC().Format(time.RFC3339), time.Since(since).Round(time.Second), e.cfg.JournalDeadline, err)
		}
		if !sleepCtx(ctx, min(pause, time.Until(since.Add(e.cfg.JournalDeadline)))) {
			return nil, err
		}
		pause = min(2*pause, JournalRetryMax)
	}
}

// unwritable reports an error of opening the journal that says it cannot
// be written now (rather than that it is damaged, locked or of another
// format): an action not recorded, or the journal's own fail-stop or size
// refusal while it was opened.
func unwritable(err error) bool {
	return notRecorded(err) || errors.Is(err, journal.ErrStopped) || errors.Is(err, journal.ErrFull) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO)
}
