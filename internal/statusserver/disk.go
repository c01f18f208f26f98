package statusserver

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// DiskConfig configures a DiskState.
type DiskConfig struct {
	Path     string // the journal, as the log lines name it
	Log      *slog.Logger
	Deadline time.Duration                    // how long a spell may last
	Expired  func(since time.Time, err error) // called when a spell outlasts Deadline
	// Waits ends the line that starts a spell: "journal PATH cannot be
	// written: " + Waits (what the program does meanwhile).
	Waits string
	// SlotName names a slot in the list of what is held (default "slot N").
	SlotName func(slot int) string
}

// DiskState follows whether the journal can be written, from the outcome of
// the journal writes the engine asks the clients for. It says so in one log
// line per change (the journal became unwritable; a slot holds one more
// thing in memory; writable again), and /status, the page and /metrics show
// it. While the journal is unwritable no slot claims a job. The slots that
// hold something find out that it is writable again by trying again; when
// none holds anything (a claim or a checkpoint was refused), one waiting
// slot, the prober, asks client.Client.JournalHealth on the same schedule,
// which reopens a stopped journal and writes nothing else.
type DiskState struct {
	c DiskConfig

	// Failures counts journal writes refused (each attempt).
	Failures atomic.Int64
	// Opening is set while the program retries a journal it cannot open
	// for writing at its start (Unwritable reports it).
	Opening atomic.Bool

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
	stopped  bool              // Stop was called: no deadline fires any more
}

// NewDiskState starts writable.
func NewDiskState(c DiskConfig) *DiskState {
	if c.SlotName == nil {
		c.SlotName = func(s int) string { return fmt.Sprintf("slot %d", s) }
	}
	d := &DiskState{c: c,
		held: map[int]string{}, retryAt: map[int]time.Time{}, prober: -1, writable: make(chan struct{}), progress: make(chan struct{})}
	close(d.writable)
	return d
}

// Failed records that slot's journal write failed with err (a
// client.ErrNotRecorded error). what, if not empty, is what the slot now
// holds in memory; it tries again after retry. The channel returned is
// closed when another slot's held record is journaled afterwards: the
// caller then tries again at once.
//
// began is when the failed attempt began. One that began before the last
// spell ended (it failed then, and is reported after another slot found
// the journal writable) does not start a new spell: the slot tries again
// after retry, and that attempt tells. See OK for the other way round.
func (d *DiskState) Failed(slot int, what string, err error, retry time.Duration, began time.Time) <-chan struct{} {
	d.Failures.Add(1)
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
		if !d.stopped {
			d.timer = time.AfterFunc(d.c.Deadline, d.expire)
		}
		attrs := []any{"err", err.Error(), "held_in_memory", d.heldLocked()}
		if retry > 0 {
			attrs = append(attrs, "retry_in", retry)
		}
		d.c.Log.Error(fmt.Sprintf("journal %s cannot be written: %s", d.c.Path, d.c.Waits),
			append(attrs, "deadline", d.c.Deadline)...)
		return d.progress
	}
	d.err = err
	if what != "" && d.held[slot] != what {
		d.held[slot] = what
		d.c.Log.Warn(fmt.Sprintf("journal %s still cannot be written: one more thing held in memory", d.c.Path),
			"err", err.Error(), "held", what, "held_in_memory", d.heldLocked(), "retry_in", retry)
	}
	return d.progress
}

// OK records that slot's journal write succeeded: what it held, if
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
func (d *DiskState) OK(slot int, began time.Time) {
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
			d.c.Log.Info(fmt.Sprintf("journal %s took a record held in memory; others still wait", d.c.Path),
				"journaled", what, "held_in_memory", d.heldLocked())
		}
		return
	}
	attrs := []any{"down_for", time.Since(d.since).Round(time.Millisecond)}
	if had {
		attrs = append(attrs, "journaled", what)
	}
	d.c.Log.Info(fmt.Sprintf("journal %s writable again", d.c.Path), attrs...)
	d.err, d.up = nil, time.Now()
	d.prober = -1
	if d.timer != nil {
		d.timer.Stop()
	}
	close(d.writable)
}

// InJournal records that what slot held reached the journal although the
// journal is still unwritable (a later record of the same action was
// refused): the slot holds nothing any more, the spell goes on, and the
// slots waiting for it to end look again, so that one becomes the prober
// when nothing is held (else they would wait for a holder that no longer
// tries).
func (d *DiskState) InJournal(slot int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetLocked(slot)
	if d.err != nil {
		close(d.writable)
		d.writable = make(chan struct{})
	}
}

// forgetLocked forgets what slot held, when it retries, and that it
// probes. A prober that stops probing during a spell (its claim ended:
// dcproxy's program hung up, a drain) wakes the waiting slots, so that one
// of them probes instead. The caller holds mu.
func (d *DiskState) forgetLocked(slot int) {
	delete(d.held, slot)
	delete(d.retryAt, slot)
	if d.prober == slot {
		d.prober = -1
		if d.err != nil {
			close(d.writable)
			d.writable = make(chan struct{})
		}
	}
}

// Drop forgets what slot held without it having been journaled (the run
// stops, or the client no longer holds the job it belonged to); the caller
// logs why.
func (d *DiskState) Drop(slot int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetLocked(slot)
}

// MayClaim reports whether slot may claim a job now (the journal is
// writable), or else whether it is to probe the journal (nothing is held
// and no other slot probes: this one becomes the prober), or else returns
// a channel closed when the journal is writable again.
func (d *DiskState) MayClaim(slot int) (claim, probe bool, wait <-chan struct{}) {
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

// Unwritable reports whether the engine knows the journal cannot be
// written now.
func (d *DiskState) Unwritable() bool {
	if d.Opening.Load() {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err != nil
}

func (d *DiskState) expire() {
	d.mu.Lock()
	err, since, stopped := d.err, d.since, d.stopped
	d.mu.Unlock()
	if !stopped && err != nil && time.Since(since) >= d.c.Deadline { // not a new spell's
		d.c.Expired(since, err)
	}
}

// Stop ends the watch when the program stops: the deadline of a spell in
// progress no longer fires (it would drain a program that has returned,
// and log after it), and no later spell arms one.
func (d *DiskState) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
}

// heldLocked lists what the slots hold, by slot. The caller holds mu.
func (d *DiskState) heldLocked() []string {
	slots := make([]int, 0, len(d.held))
	for s := range d.held {
		slots = append(slots, s)
	}
	sort.Ints(slots)
	out := make([]string, 0, len(slots))
	for _, s := range slots {
		out = append(out, d.c.SlotName(s)+": "+d.held[s])
	}
	return out
}

func (d *DiskState) Snapshot() JournalStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	js := JournalStatus{Writable: d.err == nil, Held: d.heldLocked(), Failures: d.Failures.Load()}
	if d.err != nil {
		js.Error = d.err.Error()
		since, end := d.since, d.since.Add(d.c.Deadline)
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
