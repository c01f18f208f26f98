package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
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

// diskState follows whether the journal can be written, from the outcome of
// the journal writes the engine asks the clients for. It says so in one log
// line per change (the journal became unwritable; a slot holds one more
// thing in memory; writable again), and /status, the page and /metrics show
// it. While the journal is unwritable no slot claims a job. The slots that
// hold something find out that it is writable again by trying again; when
// none holds anything (a claim or a checkpoint was refused), one waiting
// slot, the prober, asks client.Client.JournalHealth on the same schedule,
// which reopens a stopped journal and writes nothing else.
type diskState struct {
	path     string
	log      *slog.Logger
	deadline time.Duration
	expired  func(since time.Time, err error) // the deadline passed while unwritable

	failures atomic.Int64 // journal writes refused (each attempt)
	opening  atomic.Bool  // openPool retries a journal it cannot write

	mu       sync.Mutex
	err      error             // nil while writable
	since    time.Time         // start of the current unwritable spell
	up       time.Time         // end of the last spell (zero before the first)
	held     map[int]string    // slot index -> what it holds in memory
	retryAt  map[int]time.Time // slot index -> its next attempt
	prober   int               // the slot allowed a probe claim, -1 for none
	writable chan struct{}     // closed when the journal is writable again
	progress chan struct{}     // closed (and replaced) when a held record is journaled during a spell
	timer    *time.Timer       // the deadline of the current spell
}

func newDiskState(path string, log *slog.Logger, deadline time.Duration, expired func(time.Time, error)) *diskState {
	d := &diskState{path: path, log: log, deadline: deadline, expired: expired,
		held: map[int]string{}, retryAt: map[int]time.Time{}, prober: -1, writable: make(chan struct{}), progress: make(chan struct{})}
	close(d.writable)
	return d
}

// failed records that slot's journal write failed with err (a
// client.ErrNotRecorded error). what, if not empty, is what the slot now
// holds in memory; it tries again after retry. The channel returned is
// closed when another slot's held record is journaled afterwards: the
// caller then tries again at once.
//
// began is when the failed attempt began. One that began before the last
// spell ended (it failed then, and is reported after another slot found
// the journal writable) does not start a new spell: the slot tries again
// after retry, and that attempt tells. See ok for the other way round.
func (d *diskState) failed(slot int, what string, err error, retry time.Duration, began time.Time) <-chan struct{} {
	d.failures.Add(1)
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if retry > 0 {
		d.retryAt[slot] = now.Add(retry)
	}
	if d.err == nil && began.Before(d.up) {
		return d.progress
	}
	if d.err == nil {
		d.err, d.since = err, now
		d.writable = make(chan struct{})
		if what != "" {
			d.held[slot] = what
		}
		d.timer = time.AfterFunc(d.deadline, d.expire)
		attrs := []any{"err", journalCause(err), "held_in_memory", d.heldLocked()}
		if retry > 0 {
			attrs = append(attrs, "retry_in", retry)
		}
		d.log.Error(fmt.Sprintf("journal %s cannot be written: no job is claimed until it can", d.path),
			append(attrs, "deadline", d.deadline)...)
		return d.progress
	}
	d.err = err
	if what != "" && d.held[slot] != what {
		d.held[slot] = what
		d.log.Warn(fmt.Sprintf("journal %s still cannot be written: one more thing held in memory", d.path),
			"err", journalCause(err), "held", what, "held_in_memory", d.heldLocked(), "retry_in", retry)
	}
	return d.progress
}

// ok records that slot's journal write succeeded: what it held, if
// anything, is journaled now. The journal counts as writable again once
// nothing is held: on a nearly full disk a small write may pass while a
// larger one still fails, and a slot that journaled a small record must
// not end the spell (and claim) while another slot's output waits. A held
// record journaled wakes the other slots that hold something, to try again
// at once; a record that was not held (a checkpoint, say) does not, so
// that a slot checkpointing often cannot make the others spin.
//
// began is when the slot's attempt began. An attempt that began before the
// current spell does not end it: its write may have reached the disk just
// before another slot's failed, and be reported just after (two slots, a
// loaded machine). It says nothing about the journal now, and taking it
// for a recovery would end the spell at once and start another with the
// next write. Such a slot holds nothing (what a slot holds is set when an
// attempt of the spell fails, and its next attempt begins later).
func (d *diskState) ok(slot int, began time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil && began.Before(d.since) {
		return
	}
	what, had := d.held[slot]
	d.forgetLocked(slot)
	if d.err == nil {
		return
	}
	if had {
		close(d.progress)
		d.progress = make(chan struct{})
	}
	if len(d.held) > 0 {
		if had {
			d.log.Info(fmt.Sprintf("journal %s took a record held in memory; others still wait", d.path),
				"journaled", what, "held_in_memory", d.heldLocked())
		}
		return
	}
	attrs := []any{"down_for", time.Since(d.since).Round(time.Millisecond)}
	if had {
		attrs = append(attrs, "journaled", what)
	}
	d.log.Info(fmt.Sprintf("journal %s writable again", d.path), attrs...)
	d.err, d.up = nil, time.Now()
	d.prober = -1
	d.timer.Stop()
	close(d.writable)
}

// inJournal records that what slot held reached the journal although the
// journal is still unwritable (a later record of the same action was
// refused): the slot holds nothing any more, the spell goes on, and the
// slots waiting for it to end look again, so that one becomes the prober
// when nothing is held (else they would wait for a holder that no longer
// tries).
func (d *diskState) inJournal(slot int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetLocked(slot)
	if d.err != nil {
		close(d.writable)
		d.writable = make(chan struct{})
	}
}

// forgetLocked forgets what slot held, when it retries, and that it
// probes. The caller holds mu.
func (d *diskState) forgetLocked(slot int) {
	delete(d.held, slot)
	delete(d.retryAt, slot)
	if d.prober == slot {
		d.prober = -1
	}
}

// drop forgets what slot held without it having been journaled (the run
// stops, or the client no longer holds the job it belonged to); the caller
// logs why.
func (d *diskState) drop(slot int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetLocked(slot)
}

// mayClaim reports whether slot may claim a job now (the journal is
// writable), or else whether it is to probe the journal (nothing is held
// and no other slot probes: this one becomes the prober), or else returns
// a channel closed when the journal is writable again.
func (d *diskState) mayClaim(slot int) (claim, probe bool, wait <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		return true, false, nil
	}
	if len(d.held) == 0 && (d.prober == -1 || d.prober == slot) {
		d.prober = slot
		return false, true, nil
	}
	return false, false, d.writable
}

// unwritable reports whether the engine knows the journal cannot be
// written now.
func (d *diskState) unwritable() bool {
	if d.opening.Load() {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err != nil
}

func (d *diskState) expire() {
	d.mu.Lock()
	err, since := d.err, d.since
	d.mu.Unlock()
	if err != nil && time.Since(since) >= d.deadline { // not a new spell's
		d.expired(since, err)
	}
}

// heldLocked lists what the slots hold, by slot. The caller holds mu.
func (d *diskState) heldLocked() []string {
	slots := make([]int, 0, len(d.held))
	for s := range d.held {
		slots = append(slots, s)
	}
	sort.Ints(slots)
	out := make([]string, 0, len(slots))
	for _, s := range slots {
		out = append(out, fmt.Sprintf("slot %d: %s", s, d.held[s]))
	}
	return out
}

// JournalStatus is the journal's writability as /status and the page show
// it.
type JournalStatus = statusserver.JournalStatus

func (d *diskState) snapshot() JournalStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	js := JournalStatus{Writable: d.err == nil, Held: d.heldLocked(), Failures: d.failures.Load()}
	if d.err != nil {
		js.Error = journalCause(d.err)
		since, end := d.since, d.since.Add(d.deadline)
		js.Since, js.Deadline = &since, &end
		var next time.Time
		for _, t := range d.retryAt {
			if next.IsZero() || t.Before(next) {
				next = t
			}
		}
		if !next.IsZero() {
			js.NextRetry = &next
		}
	}
	return js
}

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
	woken := e.disk.failed(i, what, err, *pause, began)
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
	e.disk.drop(i)
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
// (see diskState) with pause, the slot's claim schedule. It returns false
// when ctx ends.
func (e *engine) waitClaim(ctx context.Context, i int, pause *time.Duration) bool {
	for {
		claim, probe, ch := e.disk.mayClaim(i)
		switch {
		case claim:
			return true
		case probe:
			began := time.Now()
			err := e.clients[i].JournalHealth()
			if err == nil {
				e.disk.ok(i, began)
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
				e.disk.failed(i, "", err, 0, began)
				e.disk.inJournal(i)
			case recorded(err):
				e.disk.ok(i, began)
			default:
				e.disk.drop(i) // the caller logs what became of it
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
	defer e.disk.opening.Store(false)
	for {
		pool, err := client.OpenPool(ctx, e.cfg.TrackerURL, e.cfg.Stage, e.cfg.Slots, opts...)
		e.disk.opening.Store(false)
		if err == nil {
			if !since.IsZero() {
				e.log.Info(fmt.Sprintf("journal %s writable again: starting", e.cfg.Journal), "down_for", time.Since(since).Round(time.Millisecond))
			}
			return pool, nil
		}
		if !unwritable(err) || ctx.Err() != nil {
			return nil, err
		}
		e.disk.failures.Add(1)
		if since.IsZero() {
			since = time.Now()
			e.log.Error(fmt.Sprintf("journal %s cannot be written: not starting until it can", e.cfg.Journal),
				"err", journalCause(err), "retry_in", pause, "deadline", e.cfg.JournalDeadline)
		}
		e.disk.opening.Store(true)
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
