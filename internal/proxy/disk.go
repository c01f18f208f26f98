package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/statusserver"
	"github.com/distcompute/distcompute-go/journal"
)

// journalRefused reports an error of a call whose journal write was refused
// (a full, read-only or failing disk): nothing was recorded, so nothing was
// sent, and the call can be made again once the journal takes writes.
func journalRefused(err error) bool {
	return errors.Is(err, client.ErrNotRecorded) || errors.Is(err, journal.ErrStopped) || errors.Is(err, journal.ErrFull)
}

// diskState follows whether the journal can be written, from the outcome of
// the calls that write it (see Proxy.retry). While it cannot, those calls
// wait and are tried again (a program's newJob, completeJob, bye: its
// request waits, as on an unreachable tracker), holding what they carry in
// memory; nothing is lost. One log line says when a spell begins and one
// when it ends, instead of a warning per attempt; GET /status, the live
// page and /metrics show it.
type diskState struct {
	path     string
	log      *slog.Logger
	deadline time.Duration
	expired  func(since time.Time, err error) // the deadline passed while unwritable

	failures atomic.Int64 // journal writes refused (each attempt)
	nextID   atomic.Int64

	mu    sync.Mutex
	err   error            // nil while writable
	since time.Time        // start of the current spell
	up    time.Time        // end of the last spell (zero before the first)
	held  map[int64]string // call -> what it holds in memory
	timer *time.Timer      // the deadline of the current spell
}

func newDiskState(path string, log *slog.Logger, deadline time.Duration, expired func(time.Time, error)) *diskState {
	return &diskState{path: path, log: log, deadline: deadline, expired: expired, held: map[int64]string{}}
}

// failed records that call id's attempt, begun at began, was refused with
// err; what, if not empty, is what the call holds in memory meanwhile. An
// attempt begun before the last spell ended does not begin another (it
// failed then; the call's next attempt tells).
func (d *diskState) failed(id int64, what string, err error, began time.Time) {
	d.failures.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil && began.Before(d.up) {
		return
	}
	if what != "" {
		d.held[id] = what
	}
	if d.err != nil {
		d.err = err
		return
	}
	d.err, d.since = err, time.Now()
	d.timer = time.AfterFunc(d.deadline, d.expire)
	d.log.Error(fmt.Sprintf("journal %s cannot be written: the programs' calls wait and are tried again; nothing is lost", d.path),
		"err", err.Error(), "held_in_memory", d.heldLocked(), "deadline", d.deadline)
}

func (d *diskState) expire() {
	d.mu.Lock()
	err, since := d.err, d.since
	d.mu.Unlock()
	if err != nil && time.Since(since) >= d.deadline { // not a new spell's
		d.expired(since, err)
	}
}

// ok records that call id's attempt, begun at began, wrote the journal.
// The spell ends once no call holds anything (on a nearly full disk a
// claim's small record may pass while a completion's output still does not
// fit), and not by an attempt begun before it (which may have reached the
// disk just before another call's failed).
func (d *diskState) ok(id int64, began time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	what, had := d.held[id]
	delete(d.held, id)
	if d.err == nil || began.Before(d.since) || len(d.held) > 0 {
		return
	}
	attrs := []any{"down_for", time.Since(d.since).Round(time.Millisecond)}
	if had {
		attrs = append(attrs, "journaled", what)
	}
	d.log.Info(fmt.Sprintf("journal %s writable again", d.path), attrs...)
	d.err, d.up = nil, time.Now()
	d.timer.Stop()
}

// done forgets what call id held (it ended without writing the journal:
// a final error, or its request went away).
func (d *diskState) done(id int64) {
	d.mu.Lock()
	delete(d.held, id)
	d.mu.Unlock()
}

// heldLocked lists what the waiting calls hold, oldest first. The caller
// holds mu.
func (d *diskState) heldLocked() []string {
	ids := make([]int64, 0, len(d.held))
	for id := range d.held {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, d.held[id])
	}
	return out
}

func (d *diskState) snapshot() statusserver.JournalStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	js := statusserver.JournalStatus{Writable: d.err == nil, Held: d.heldLocked(), Failures: d.failures.Load()}
	if d.err != nil {
		since := d.since.UTC()
		js.Error, js.Since = d.err.Error(), &since
	}
	return js
}
