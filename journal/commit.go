package journal

import (
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// request is one Append (or a flush, ev == nil) waiting in the group-commit
// queue. done, res and err are written by the committing goroutine before
// it wakes the owner through wake.
type request struct {
	ev         *Event
	background bool          // a flush by the flusher (see commitBatch)
	wake       chan struct{} // buffered(1): "done", or "you lead the next commit"
	done       bool
	res        Event
	err        error
}

// submit queues r and returns when it was committed: leader-based group
// commit. If no commit is under way the caller leads: it commits everything
// queued in one transaction (one pair of fsyncs), wakes the owners, and
// hands the lead to the first request that queued up meanwhile. A lone
// appender never waits for a batch to fill (unlike bbolt's DB.Batch, which
// waits MaxBatchDelay and may run a function twice); each request is
// applied exactly once.
func (db *DB) submit(r *request) {
	r.wake = make(chan struct{}, 1)
	db.inflight.Add(1)
	db.qmu.Lock()
	db.queue = append(db.queue, r)
	db.signalGather()
	if db.leading {
		db.qmu.Unlock()
		<-r.wake
		if r.done {
			db.inflight.Add(-1)
			db.qmu.Lock()
			db.signalGather()
			db.qmu.Unlock()
			return
		}
		// Woken without being done: we lead the next commit.
	} else {
		db.leading = true
		db.qmu.Unlock()
	}

	db.commitMu.Lock()
	db.gather()
	db.qmu.Lock()
	batch := db.queue
	db.queue = nil
	db.qmu.Unlock()
	db.commitBatch(batch)
	db.commitMu.Unlock()
	db.inflight.Add(-1)
	for _, x := range batch {
		if x != r {
			x.wake <- struct{}{}
		}
	}

	db.qmu.Lock()
	if len(db.queue) > 0 {
		next := db.queue[0]
		db.qmu.Unlock()
		next.wake <- struct{}{} // not done: it leads
		return
	}
	db.leading = false
	db.qmu.Unlock()
}

// gatherWait bounds how long a leader waits for appenders that are about
// to queue (see gather). It is small beside an fsync.
const gatherWait = 500 * time.Microsecond

// gather lets a leader wait briefly while fewer requests are queued than
// are in flight: appenders just woken from the previous commit are about to
// queue again, and one transaction for all of them costs little more than
// one for half. It blocks (the woken appenders need the processors: a
// leader that spins keeps one of two busy and they queue one at a time)
// until the last of them queues or leaves, or gatherWait passes. A lone
// appender never waits. The caller holds commitMu.
func (db *DB) gather() {
	db.qmu.Lock()
	if int64(len(db.queue)) >= db.inflight.Load() {
		db.qmu.Unlock()
		return
	}
	db.gathering = true
	db.qmu.Unlock()
	if db.gatherTimer == nil {
		db.gatherTimer = time.NewTimer(gatherWait)
	} else {
		db.gatherTimer.Reset(gatherWait)
	}
	select {
	case <-db.gatherCh:
	case <-db.gatherTimer.C:
	}
	db.gatherTimer.Stop()
	db.qmu.Lock()
	db.gathering = false
	db.qmu.Unlock()
	select {
	case <-db.gatherCh: // sent while the timer fired
	default:
	}
}

// signalGather wakes the leader waiting in gather once every request in
// flight is queued. The caller holds qmu.
func (db *DB) signalGather() {
	if db.gathering && int64(len(db.queue)) >= db.inflight.Load() {
		select {
		case db.gatherCh <- struct{}{}:
		default:
		}
	}
}

// flushLocked writes buffered progress and deferred events, if any, for
// operation op (close, compact); the caller holds mu exclusively.
func (db *DB) flushLocked(op string) error {
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	db.qmu.Lock()
	batch := db.queue
	db.queue = nil
	db.qmu.Unlock()
	db.pmu.Lock()
	n := len(db.pending)
	db.pmu.Unlock()
	if n == 0 && len(batch) == 0 && !db.hasDeferred() {
		db.dmu.Lock()
		defer db.dmu.Unlock()
		err := db.joinFails(op, db.deferFail)
		db.deferFail = nil
		return err // nothing to write: leave the file alone
	}
	r := &request{}
	db.commitBatch(append(batch, r))
	for _, x := range batch {
		x.wake <- struct{}{}
	}
	return r.err
}

// commitBatch writes deferred events, buffered progress and the batch's
// events, in that order, in one transaction and marks every request done.
// The caller holds commitMu.
func (db *DB) commitBatch(batch []*request) {
	var progress map[string]string
	db.pmu.Lock()
	if len(db.pending) > 0 {
		progress = db.pending
		db.pending = make(map[string]string)
	}
	db.pmu.Unlock()

	now := db.now().UTC()
	var (
		taken   []*deferredEvent
		txid    int
		fails   map[string]error
		newFail map[string]error
		refused map[*deferredEvent]bool
		written int64
		cw      *txWriter
	)
	err := db.update("append", func(tx *bolt.Tx) error {
		for _, r := range batch {
			r.err, r.res = nil, Event{}
		}
		w, err := newTxWriter(tx, db, now)
		if err != nil {
			return err
		}
		w.writable = true
		if db.markFormat.Load() {
			if err := tx.Bucket(bucketMeta).Put(keyFormat, []byte(strconv.Itoa(FormatVersion))); err != nil {
				return err
			}
		}
		// Deferred events first: they happened before this commit's events
		// were submitted (a deferred claim precedes the checkpoint or
		// completion of its job). One refused now is dropped, and so are
		// its slot's later events in this commit: they were validated or
		// submitted against a state that included it.
		txid = tx.ID()
		taken, fails = db.takeDeferred(txid)
		// The maps below are made when first written: a commit without
		// refusals (nearly all) makes none.
		newFail, refused = nil, nil
		refuse := func(d *deferredEvent) {
			if refused == nil {
				refused = make(map[*deferredEvent]bool)
			}
			refused[d] = true
		}
		// Many events: straight to the events bucket (see tail.go).
		n := len(taken) + len(progress)
		for _, r := range batch {
			if r.ev != nil {
				n++
			}
		}
		w.bulk = n > 3
		for _, d := range taken {
			e := d.ev
			if err := fails[e.Slot]; err != nil {
				refuse(d)
				continue
			}
			if err := w.check(&e); err != nil {
				if fails == nil {
					fails = make(map[string]error)
				}
				if newFail == nil {
					newFail = make(map[string]error)
				}
				fails[e.Slot], newFail[e.Slot] = err, err
				refuse(d)
				continue
			}
			at := e.Time // the time of the AppendDeferred call
			if at.After(now) {
				at = now // deferred while this commit started: keep times in seq order
			}
			if _, err := w.append(e, at); err != nil {
				return err
			}
		}
		slots := make([]string, 0, len(progress))
		for s := range progress {
			slots = append(slots, s)
		}
		sort.Strings(slots)
		for _, s := range slots {
			if checkSlotName(s) != "" {
				continue
			}
			st, err := w.state(s)
			if err != nil {
				return err
			}
			if st.Session == nil {
				continue
			}
			e := Event{Slot: s, Kind: KindProgress, Progress: progress[s]}
			if st.Job != nil {
				e.Job = st.Job.Number
			}
			if _, err := w.append(e, now); err != nil {
				return err
			}
		}
		var reported map[string]bool
		report := func(slot string) {
			if reported == nil {
				reported = make(map[string]bool)
			}
			reported[slot] = true
		}
		for _, r := range batch {
			if r.ev == nil {
				continue
			}
			e := *r.ev
			if ferr := fails[e.Slot]; ferr != nil {
				r.err = db.wrap("append", deferredRefused(e, ferr))
				report(e.Slot)
				continue
			}
			if err := w.check(&e); err != nil {
				r.err = db.wrap("append", err)
				continue
			}
			res, err := w.append(e, now)
			if err != nil {
				return err
			}
			r.res = res
		}
		// A Flush reports every refusal; the flusher's own flush only the
		// new ones, for its log, and leaves them to be reported.
		for _, r := range batch {
			switch {
			case r.ev != nil:
			case r.background:
				r.err = db.joinFails("flush", newFail)
			default:
				r.err = db.joinFails("flush", fails)
				clear(reported)
				for s := range fails {
					report(s)
				}
			}
		}
		for s := range reported {
			delete(fails, s)
		}
		if err := w.finish(); err != nil {
			return err
		}
		if err := db.checkSpace(tx, w.space); err != nil {
			return err
		}
		written = w.written
		cw = w
		return nil
	})
	var touched map[string]State
	if err == nil && cw != nil {
		db.markFormat.Store(false)
		cw.keep()
		touched = cw.touched()
	}
	if err != nil && len(taken) > 0 && errors.Is(err, ErrStopped) {
		db.dmu.Lock()
		db.lostTaken = taken // for Reopen: the failed commit may have reached the file
		db.dmu.Unlock()
	}
	db.settleDeferred(taken, err == nil, refused, fails, touched, txid)
	if err == nil {
		db.appended.Add(written)
	}
	if err != nil {
		for _, r := range batch {
			r.err, r.res = err, Event{}
		}
		// Put progress back unless newer text arrived meanwhile.
		db.pmu.Lock()
		for s, t := range progress {
			if _, ok := db.pending[s]; !ok {
				db.pending[s] = t
			}
		}
		db.pmu.Unlock()
	}
	for _, r := range batch {
		r.done = true
	}
}

// flusher writes buffered progress and deferred events every
// ProgressInterval and compacts the file when free pages pass
// CompactFreeRatio. Deferred events refused when written are logged here
// (and returned by the next Append to their slot, Flush or Close).
func (db *DB) flusher() {
	defer close(db.flusherDone)
	t := time.NewTicker(db.opts.ProgressInterval)
	defer t.Stop()
	ticks := 0
	failing := false
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
		}
		if db.Stopped() != nil {
			continue // Reopen (by the owner) brings the DB back; failStop logged the stop once
		}
		db.pmu.Lock()
		n := len(db.pending)
		db.pmu.Unlock()
		if n > 0 || db.hasDeferred() {
			// A failure keeps progress and deferred events for the next try;
			// it is logged when it starts, not every tick.
			switch err := db.flushBackground(); {
			case errors.Is(err, ErrInvalidEvent):
				db.logger().Warn("background flush refused a deferred event", slog.Any("err", err))
			case err != nil:
				if !failing {
					db.logger().Warn("background flush failed; retrying every interval", slog.Any("err", err))
				}
				failing = true
			case failing:
				failing = false
				db.logger().Info("background flush succeeded again", slog.String("path", db.path))
			}
		}
		ticks++
		if !db.opts.NoAutoCompact && (db.compactWanted.Swap(false) || ticks%10 == 0 && db.needsCompact()) {
			_, _, _ = db.Compact()
		}
	}
}

// flushBackground is the flusher's Flush: it returns the refusals of
// deferred events made by its own commit, without reporting them.
func (db *DB) flushBackground() error {
	if err := db.acquire("flush"); err != nil {
		return err
	}
	defer db.release()
	r := &request{background: true}
	db.submit(r)
	return r.err
}
