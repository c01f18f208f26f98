package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
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

// Append validates e against its slot's current state, assigns its Version,
// Seq and Time, and writes it together with the slot's new state in one
// transaction. It is durable: the transaction is fsynced before Append
// returns (unless Options.NoSync). Concurrent Appends, from any slots, share
// transactions and fsyncs (group commit), so many slots appending at once
// cost little more than one.
//
// Append fills in e.Job from the state where it is zero and the kind refers
// to the held job (progress, checkpoint, completion, flag, release, failed,
// session-lost) or to the orphan (orphan-resolved, which also fills Slot).
// An event that does not fit the state (for example a completion without a
// held job of that number, or a claim while a completion is pending) is
// refused with an error wrapping ErrInvalidEvent, and nothing is written.
// Buffered progress (AppendProgress) of every slot is written in the same
// transaction, before e.
func (db *DB) Append(e Event) (Event, error) {
	if err := db.acquire(); err != nil {
		return Event{}, err
	}
	defer db.release()
	if db.opts.ReadOnly {
		return Event{}, db.errf(ErrReadOnly)
	}
	r := &request{ev: &e}
	db.submit(r)
	return r.res, r.err
}

// AppendProgress records text as slot's latest progress. It never waits for
// the disk and never blocks on other appends: the text is kept in memory
// (latest wins) and written with the next durable Append or by the
// background flusher within Options.ProgressInterval; Close writes it too.
// Progress of a slot without a session is dropped when written; so is
// progress given to a read-only or closed DB.
func (db *DB) AppendProgress(slot, text string) {
	if db.opts.ReadOnly || db.closed.Load() || slot == "" {
		return
	}
	db.pmu.Lock()
	db.pending[slot] = text
	db.pmu.Unlock()
}

// Flush writes buffered progress and deferred events (AppendDeferred) now,
// durably. It returns the refusals of deferred events not reported yet,
// joined (each wraps ErrInvalidEvent), or the commit's error.
func (db *DB) Flush() error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	if db.opts.ReadOnly {
		return nil
	}
	r := &request{}
	db.submit(r)
	return r.err
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

// flushLocked writes buffered progress, if any; the caller holds mu
// exclusively.
func (db *DB) flushLocked() error {
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
		err := joinFails(db.deferFail)
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
		// Deferred events first: they happened before this commit's events
		// were submitted (a deferred claim precedes the checkpoint or
		// completion of its job). One refused now is dropped, and so are
		// its slot's later events in this commit: they were validated or
		// submitted against a state that included it.
		taken, fails = db.takeDeferred(tx.ID())
		if fails == nil {
			fails = make(map[string]error)
		}
		newFail, refused = make(map[string]error), make(map[*deferredEvent]bool)
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
				refused[d] = true
				continue
			}
			if err := w.check(&e); err != nil {
				fails[e.Slot], newFail[e.Slot] = err, err
				refused[d] = true
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
		reported := make(map[string]bool)
		for _, r := range batch {
			if r.ev == nil {
				continue
			}
			e := *r.ev
			if ferr := fails[e.Slot]; ferr != nil {
				r.err = db.deferredRefused(e, ferr)
				reported[e.Slot] = true
				continue
			}
			if err := w.check(&e); err != nil {
				r.err = err
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
				r.err = joinFails(newFail)
			default:
				r.err = joinFails(fails)
				clear(reported)
				for s := range fails {
					reported[s] = true
				}
			}
		}
		for s := range reported {
			delete(fails, s)
		}
		if err := w.finish(); err != nil {
			return err
		}
		written = w.written
		cw = w
		return nil
	})
	if err == nil && cw != nil {
		cw.keep()
	}
	db.settleDeferred(taken, err == nil, refused, fails)
	if err == nil {
		db.appended.Add(written)
	}
	if err != nil {
		if !strings.HasPrefix(err.Error(), "journal:") {
			err = fmt.Errorf("journal: %s: append: %w", db.path, err)
		}
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
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
		}
		db.pmu.Lock()
		n := len(db.pending)
		db.pmu.Unlock()
		if n > 0 || db.hasDeferred() {
			// A failure keeps progress and deferred events for the next try.
			if err := db.flushBackground(); err != nil {
				db.logger().Warn("journal: background flush", slog.String("err", err.Error()))
			}
		}
		ticks++
		if !db.opts.NoAutoCompact && ticks%10 == 0 && db.needsCompact() {
			_, _, _ = db.Compact()
		}
	}
}

// flushBackground is the flusher's Flush: it returns the refusals of
// deferred events made by its own commit, without reporting them.
func (db *DB) flushBackground() error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	r := &request{background: true}
	db.submit(r)
	return r.err
}

// txWriter applies events inside one write transaction, caching the states
// of the slots it touches.
type txWriter struct {
	tx       *bolt.Tx
	db       *DB
	now      time.Time
	events   *bolt.Bucket
	states   *bolt.Bucket
	bases    *bolt.Bucket
	slotMeta *bolt.Bucket
	slotIdx  *bolt.Bucket
	claims   *bolt.Bucket
	jobs     *bolt.Bucket
	orphans  *bolt.Bucket
	tail     *bolt.Bucket
	// tailBytes is the size of the tail's records as tailBudget counts it
	// (-1: not computed yet); tailMoved: this transaction moved the tail
	// into events; bulk: this transaction writes more events than the
	// tail holds, so they go to events directly (see tail.go).
	tailBytes  int
	tailBudget int // tailBudget(page size)
	tailMoved  bool
	bulk       bool
	cache      map[string]*slotTx
	order      []string
	written    int64 // events written
	// writable: a commit's writer, which reads and updates db.slots (the
	// states it writes, cached) instead of decoding them from the file.
	writable bool
}

type slotTx struct {
	name  string
	state State
	meta  slotMeta
	dirty bool
}

// slotMeta is a slot's counters, stored as four big-endian uint64s, then
// the slot's newest events not yet in slotidx (see pendingMax), 9 bytes
// each: the seq (big-endian) and the kind's code (kindCodes).
type slotMeta struct {
	n          uint64 // events of the slot (in slotidx and pending)
	claims     uint64 // claims kept in the claims bucket
	pruneTo    uint64 // events with a lower seq are due for pruning
	sincePrune uint64 // appends since the last pruning pass
	pending    []idxEntry
}

// idxEntry is a slot-index entry: an event's seq and kind.
type idxEntry struct {
	seq  uint64
	kind string
}

// pendingMax is how many of a slot's newest events are listed in its
// slotmeta record before they are moved into slotidx. The slotmeta record
// is rewritten on every append to the slot anyway, and all slots' records
// share few pages, whereas each slot's slotidx entries sit on a leaf page of
// their own: listing the newest events in slotmeta saves a commit carrying
// many slots (group commit) one page per slot, and a lone append the index
// leaf and branch.
const pendingMax = 16

func (m slotMeta) encode() []byte {
	n := 32
	n += 9 * len(m.pending)
	b := make([]byte, 32, n)
	binary.BigEndian.PutUint64(b, m.n)
	binary.BigEndian.PutUint64(b[8:], m.claims)
	binary.BigEndian.PutUint64(b[16:], m.pruneTo)
	binary.BigEndian.PutUint64(b[24:], m.sincePrune)
	for _, p := range m.pending {
		b = binary.BigEndian.AppendUint64(b, p.seq)
		b = append(b, kindCode(p.kind))
	}
	return b
}

func decodeSlotMeta(b []byte) (slotMeta, bool) {
	if len(b) < 32 {
		return slotMeta{}, false
	}
	m := slotMeta{
		n:          binary.BigEndian.Uint64(b),
		claims:     binary.BigEndian.Uint64(b[8:]),
		pruneTo:    binary.BigEndian.Uint64(b[16:]),
		sincePrune: binary.BigEndian.Uint64(b[24:]),
	}
	rest := b[32:]
	if len(rest)%9 != 0 {
		return slotMeta{}, false
	}
	for ; len(rest) > 0; rest = rest[9:] {
		code := int(rest[8])
		if code < 1 || code > len(kindCodes) {
			return slotMeta{}, false
		}
		m.pending = append(m.pending, idxEntry{seq: binary.BigEndian.Uint64(rest), kind: string(kindCodes[code-1])})
	}
	return m, true
}

// kindCodes numbers the kinds (from 1) for slotmeta's pending entries.
// Append only: the numbers are stored.
var kindCodes = []Kind{KindRegistered, KindClaimed, KindProgress, KindCheckpoint,
	KindCompletionPending, KindCompletionSettled, KindFlagPending,
	KindFlagSettled, KindReleased, KindByePending, KindClosed,
	KindSessionLost, KindReplayed, KindOrphanResolved, KindFailed, KindDrained}

func kindCode(k string) byte {
	for i, c := range kindCodes {
		if string(c) == k {
			return byte(i + 1)
		}
	}
	panic("journal: kind without a code: " + k) // Append refuses unknown kinds
}

// pendingOf reads slot's pending index entries from the slotmeta bucket.
func pendingOf(meta *bolt.Bucket, slot string) ([]idxEntry, error) {
	if meta == nil {
		return nil, nil
	}
	v := meta.Get([]byte(slot))
	if v == nil {
		return nil, nil
	}
	m, ok := decodeSlotMeta(v)
	if !ok {
		return nil, fmt.Errorf("%w: slot %q has bad counters", ErrCorrupt, slot)
	}
	return m.pending, nil
}

// slotEntries returns slot's index entries with seq >= from, in order: those
// in slotidx, then the pending ones.
func slotEntries(idx, meta *bolt.Bucket, slot string, from uint64, fn func(seq uint64, kind string) bool) error {
	pending, err := pendingOf(meta, slot)
	if err != nil {
		return err
	}
	if idx != nil {
		prefix := slotPrefix(slot)
		c := idx.Cursor()
		for k, v := c.Seek(slotKey(slot, from)); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Next() {
			if !fn(be(k[len(prefix):]), string(v)) {
				return nil
			}
		}
	}
	for _, p := range pending {
		if p.seq >= from && !fn(p.seq, p.kind) {
			return nil
		}
	}
	return nil
}

func newTxWriter(tx *bolt.Tx, db *DB, now time.Time) (*txWriter, error) {
	w := &txWriter{tx: tx, db: db, now: now, cache: make(map[string]*slotTx)}
	for _, b := range []struct {
		p    **bolt.Bucket
		name []byte
	}{{&w.events, bucketEvents}, {&w.states, bucketStates}, {&w.slotMeta, bucketSlotMeta}} {
		if _, err := w.bucket(b.p, b.name); err != nil {
			return nil, err
		}
	}
	if err := createTail(tx); err != nil { // present unless the file is damaged
		return nil, err
	}
	w.tail = tx.Bucket(bucketTail)
	w.tailBytes, w.tailBudget = -1, tailBudget(tx.DB().Info().PageSize)
	// Event keys only grow (sequence numbers): fill their leaves instead
	// of splitting them half full, so a commit of many events dirties half
	// as many new leaves. Records are unchanged; only how bbolt packs pages.
	w.events.FillPercent = 1.0
	return w, nil
}

// bucket returns *p, opening the bucket named name into it first (creating
// it if the file lacks it and the transaction is writable). Buckets most
// appends do not touch are opened only when needed: opening one costs a
// lone append a few microseconds.
func (w *txWriter) bucket(p **bolt.Bucket, name []byte) (*bolt.Bucket, error) {
	if *p != nil {
		return *p, nil
	}
	b := w.tx.Bucket(name)
	if b == nil {
		var err error
		if b, err = w.tx.CreateBucket(name); err != nil {
			return nil, err
		}
	}
	*p = b
	return b, nil
}

// slot returns the cached per-slot data, loading it.
func (w *txWriter) slot(name string) (*slotTx, error) {
	if s, ok := w.cache[name]; ok {
		return s, nil
	}
	if w.writable {
		if c, ok := w.db.slots[name]; ok {
			s := &slotTx{name: name, state: c.state, meta: c.meta}
			w.cache[name] = s
			w.order = append(w.order, name)
			return s, nil
		}
	}
	s := &slotTx{name: name, state: State{Slot: name}}
	if v := w.states.Get([]byte(name)); v != nil {
		st, err := DecodeState(v)
		if err != nil {
			return nil, fmt.Errorf("journal: %s: slot %q: %w", w.db.path, name, err)
		}
		s.state = st
	}
	if v := w.slotMeta.Get([]byte(name)); v != nil {
		m, ok := decodeSlotMeta(v)
		if !ok {
			return nil, fmt.Errorf("journal: %s: slot %q: %w: bad counters", w.db.path, name, ErrCorrupt)
		}
		s.meta = m
	}
	w.cache[name] = s
	w.order = append(w.order, name)
	return s, nil
}

func (w *txWriter) state(name string) (State, error) {
	s, err := w.slot(name)
	if err != nil {
		return State{}, err
	}
	return s.state, nil
}

// check fills in derived fields of e and validates it against the state.
func (w *txWriter) check(e *Event) error {
	if e.Kind == KindOrphanResolved && e.OrphanSeq != 0 {
		orphans, err := w.bucket(&w.orphans, bucketOrphans)
		if err != nil {
			return err
		}
		if v := orphans.Get(u64(e.OrphanSeq)); v != nil {
			o, err := decodeOrphan(v)
			if err != nil {
				return fmt.Errorf("journal: %s: %w", w.db.path, err)
			}
			if e.Slot == "" {
				e.Slot = o.Slot
			}
			if e.Job == 0 {
				e.Job = o.Job
			}
			if e.Slot != o.Slot {
				return w.invalid(*e, "orphan %d belongs to slot %q", e.OrphanSeq, o.Slot)
			}
		} else {
			return w.invalid(*e, "no unresolved orphan with seq %d", e.OrphanSeq)
		}
	}
	if err := checkSlotName(e.Slot); err != "" {
		return w.invalid(*e, "%s", err)
	}
	if !KnownKind(e.Kind) {
		return w.invalid(*e, "unknown kind")
	}
	if len(e.Report) > 0 && !json.Valid(e.Report) {
		return w.invalid(*e, "report is not valid JSON")
	}
	s, err := w.state(e.Slot)
	if err != nil {
		return err
	}
	fill := func() {
		if e.Job == 0 {
			if s.Job != nil {
				e.Job = s.Job.Number
			} else if s.Completion != nil {
				e.Job = s.Completion.Job.Number
			}
		}
	}
	needSession := func() error {
		if s.Session == nil {
			if s.Closed {
				return w.invalid(*e, "the session is closed")
			}
			return w.invalid(*e, "the slot has no session")
		}
		return nil
	}
	needJob := func() error {
		if s.Job == nil {
			return w.invalid(*e, "no job is held")
		}
		if s.Job.Number != e.Job {
			return w.invalid(*e, "the held job is %d", s.Job.Number)
		}
		return nil
	}
	switch e.Kind {
	case KindRegistered:
		if s.Session != nil {
			return w.invalid(*e, "the slot already has a session (record session-lost or closed first)")
		}
		if s.Job != nil || s.Completion != nil {
			return w.invalid(*e, "the slot still holds a job or a pending completion")
		}
		if e.Token == "" {
			return w.invalid(*e, "no token")
		}
	case KindClaimed:
		if err := needSession(); err != nil {
			return err
		}
		switch {
		case s.Completion != nil:
			return w.invalid(*e, "the completion of job %d is pending (claiming would release nothing but lose track of it)", s.Completion.Job.Number)
		case s.FlagPending:
			return w.invalid(*e, "a flag is pending")
		case s.ByePending:
			return w.invalid(*e, "a bye is pending")
		case e.Job <= 0:
			return w.invalid(*e, "job number must be positive")
		}
	case KindProgress:
		fill()
		return needSession()
	case KindCheckpoint:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		return needJob()
	case KindCompletionPending:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		if err := needJob(); err != nil {
			return err
		}
		switch {
		case e.Output == nil:
			return w.invalid(*e, "no output")
		case s.Completion != nil:
			return w.invalid(*e, "the completion of job %d is pending", s.Completion.Job.Number)
		case s.FlagPending:
			return w.invalid(*e, "a flag is pending")
		}
	case KindCompletionSettled:
		if s.Completion != nil && e.Job == 0 {
			e.Job = s.Completion.Job.Number
		}
		if s.Completion == nil {
			return w.invalid(*e, "no completion is pending")
		}
		if s.Completion.Job.Number != e.Job {
			return w.invalid(*e, "the pending completion is of job %d", s.Completion.Job.Number)
		}
		switch e.Outcome {
		case OutcomeAccepted, OutcomeAppliedEarlier, OutcomeOrphaned:
		default:
			return w.invalid(*e, "outcome %q is not accepted, applied-earlier or orphaned", e.Outcome)
		}
	case KindFlagPending:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		if err := needJob(); err != nil {
			return err
		}
		if s.FlagPending {
			return w.invalid(*e, "a flag is already pending")
		}
	case KindFlagSettled:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		if !s.FlagPending {
			return w.invalid(*e, "no flag is pending")
		}
		if err := needJob(); err != nil {
			return err
		}
		switch e.Outcome {
		case OutcomeAccepted, OutcomeAppliedEarlier, OutcomeFailed, OutcomeOrphaned:
		default:
			return w.invalid(*e, "outcome %q is not accepted, applied-earlier, failed or orphaned", e.Outcome)
		}
	case KindReleased:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		if err := needJob(); err != nil {
			return err
		}
		if s.FlagPending {
			return w.invalid(*e, "a flag is pending: settle it first")
		}
	case KindByePending:
		if err := needSession(); err != nil {
			return err
		}
		if s.Completion != nil {
			return w.invalid(*e, "the completion of job %d is pending: settle it first", s.Completion.Job.Number)
		}
		if s.ByePending {
			return w.invalid(*e, "a bye is already pending")
		}
	case KindClosed:
		if err := needSession(); err != nil {
			return err
		}
		if s.Completion != nil {
			return w.invalid(*e, "the completion of job %d is pending: settle it first", s.Completion.Job.Number)
		}
	case KindSessionLost:
		fill()
		return needSession()
	case KindOrphanResolved:
		if e.OrphanSeq == 0 {
			return w.invalid(*e, "no orphan seq")
		}
		switch e.Outcome {
		case OutcomeResubmitted, OutcomeExported, OutcomeAcknowledged:
		default:
			return w.invalid(*e, "outcome %q is not resubmitted, exported or acknowledged", e.Outcome)
		}
	case KindReplayed:
	case KindFailed:
		fill()
	case KindDrained:
	}
	return nil
}

func (w *txWriter) invalid(e Event, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return fmt.Errorf("journal: %s: slot %q: %s: %w: %s", w.db.path, e.Slot, e.Kind, ErrInvalidEvent, msg)
}

// append writes e (already checked) at time at and folds it into the cached
// state.
func (w *txWriter) append(e Event, at time.Time) (Event, error) {
	s, err := w.slot(e.Slot)
	if err != nil {
		return Event{}, err
	}
	seq, err := w.nextSeq()
	if err != nil {
		return Event{}, err
	}
	e.Version, e.Seq, e.Time = FormatVersion, seq, at
	w.written++
	data, err := encodeEvent(e)
	if err != nil {
		return Event{}, fmt.Errorf("journal: %s: encode event: %w", w.db.path, err)
	}
	if err := w.putEvent(u64(seq), data); err != nil {
		return Event{}, err
	}
	// A progress event directly after another of the same slot replaces it:
	// Fold of the later one overwrites all the earlier one set.
	if e.Kind == KindProgress {
		if p := s.meta.pending; len(p) > 0 {
			if last := p[len(p)-1]; last.kind == string(KindProgress) {
				if err := w.deleteEvent(u64(last.seq), KindProgress, 0); err != nil {
					return Event{}, err
				}
				s.meta.pending = p[: len(p)-1 : len(p)-1]
				s.meta.n--
			}
		} else {
			idx, err := w.bucket(&w.slotIdx, bucketSlotIdx)
			if err != nil {
				return Event{}, err
			}
			c := idx.Cursor()
			if k, v := lastOfSlot(c, e.Slot); k != nil && string(v) == string(KindProgress) {
				if err := w.deleteEvent(k[len(k)-8:], KindProgress, 0); err != nil {
					return Event{}, err
				}
				if err := c.Delete(); err != nil {
					return Event{}, err
				}
				s.meta.n--
			}
		}
	}
	// Copy on append (slices.Clip): the committed slotMeta cached in
	// db.slots shares the array.
	s.meta.pending = append(slices.Clip(s.meta.pending), idxEntry{seq: seq, kind: string(e.Kind)})
	s.meta.n++
	if e.Job != 0 && (e.Kind == KindClaimed || e.Kind == KindOrphanResolved) {
		jobs, err := w.bucket(&w.jobs, bucketJobs)
		if err != nil {
			return Event{}, err
		}
		if err := jobs.Put(jobKey(e.Job, seq), []byte(e.Slot)); err != nil {
			return Event{}, err
		}
	}
	if e.Kind == KindClaimed {
		claims, err := w.bucket(&w.claims, bucketClaims)
		if err != nil {
			return Event{}, err
		}
		if err := claims.Put(slotKey(e.Slot, seq), u64(uint64(e.Job))); err != nil {
			return Event{}, err
		}
		s.meta.claims++
	}
	// Orphans.
	st := s.state
	var orphanReason string
	switch {
	case e.Kind == KindCompletionSettled && e.Outcome == OutcomeOrphaned && st.Completion != nil:
		orphanReason = "completion settled as orphaned"
	case e.Kind == KindSessionLost && st.Completion != nil:
		orphanReason = "session lost while the completion was pending"
	case e.Kind == KindOrphanResolved:
		orphans, err := w.bucket(&w.orphans, bucketOrphans)
		if err != nil {
			return Event{}, err
		}
		if err := orphans.Delete(u64(e.OrphanSeq)); err != nil {
			return Event{}, err
		}
	}
	if orphanReason != "" {
		if e.Reason != "" {
			orphanReason += ": " + e.Reason
		}
		c := st.Completion
		o := Orphan{Seq: c.Seq, Slot: e.Slot, Stage: c.Job.Stage, Job: c.Job.Number,
			Input: c.Job.Input, Output: c.Output, Time: e.Time, Reason: orphanReason}
		data, err := encodeOrphan(o)
		if err != nil {
			return Event{}, err
		}
		orphans, err := w.bucket(&w.orphans, bucketOrphans)
		if err != nil {
			return Event{}, err
		}
		if err := orphans.Put(u64(o.Seq), data); err != nil {
			return Event{}, err
		}
	}
	s.state = Fold(s.state, e)
	s.dirty = true
	return e, nil
}

// deleteEvent removes the event record at key, whose event is of kind and
// job, and its job-index entry if it has one (claims and orphan
// resolutions); not its slot-index entry.
func (w *txWriter) deleteEvent(key []byte, kind Kind, job int) error {
	if job != 0 && (kind == KindClaimed || kind == KindOrphanResolved) {
		jobs, err := w.bucket(&w.jobs, bucketJobs)
		if err != nil {
			return err
		}
		if err := jobs.Delete(jobKey(job, be(key))); err != nil {
			return err
		}
	}
	return w.removeEvent(key)
}

// cachedSlot is a slot's state and counters as last committed.
type cachedSlot struct {
	state State
	meta  slotMeta
}

// keep caches the states and counters of the slots a committed transaction
// touched, so that the next commits need not decode them. This DB is the
// file's only writer (the file lock), so the cache stays true until Close;
// a transaction that failed is never kept. The caller holds commitMu.
func (w *txWriter) keep() {
	if w.db.slots == nil {
		w.db.slots = make(map[string]cachedSlot)
	}
	for name, s := range w.cache {
		w.db.slots[name] = cachedSlot{state: s.state, meta: s.meta}
	}
}

// finish prunes the touched slots a little and stores their states.
func (w *txWriter) finish() error {
	for _, name := range w.order {
		s := w.cache[name]
		if !s.dirty {
			continue
		}
		if len(s.meta.pending) >= pendingMax {
			idx, err := w.bucket(&w.slotIdx, bucketSlotIdx)
			if err != nil {
				return err
			}
			for _, p := range s.meta.pending {
				if err := idx.Put(slotKey(name, p.seq), []byte(p.kind)); err != nil {
					return err
				}
			}
			s.meta.pending = nil
		}
		if w.db.retention > 0 {
			if err := w.prune(s); err != nil {
				return err
			}
		}
		data, err := encodeState(s.state)
		if err != nil {
			return err
		}
		if err := w.states.Put([]byte(name), data); err != nil {
			return err
		}
		if err := w.slotMeta.Put([]byte(name), s.meta.encode()); err != nil {
			return err
		}
	}
	return nil
}

// pruneEvery is how many appends to a slot pass between its pruning passes:
// pruning in chunks touches the pages at the head of the slot's history
// once per chunk rather than on every append.
const pruneEvery = 16

// prune, every pruneEvery appends to the slot, folds at most PruneBudget of
// its oldest events into its base state and deletes them, if they are older
// than the claim of the Retention-th most recent job, or if the slot holds
// more than Retention*EventsPerJob events.
func (w *txWriter) prune(s *slotTx) error {
	m := &s.meta
	if m.sincePrune++; m.sincePrune < pruneEvery {
		return nil
	}
	m.sincePrune = 0
	retention := uint64(w.db.retention)
	prefix := slotPrefix(s.name)
	if m.claims > retention {
		claims, err := w.bucket(&w.claims, bucketClaims)
		if err != nil {
			return err
		}
		c := claims.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && m.claims > retention; k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
			m.claims--
		}
		if k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			m.pruneTo = be(k[len(k)-8:])
		}
	}
	maxEvents := retention * EventsPerJob
	idx, err := w.bucket(&w.slotIdx, bucketSlotIdx)
	if err != nil {
		return err
	}
	c := idx.Cursor()
	k, _ := c.Seek(prefix)
	due := func(k []byte) bool {
		return k != nil && bytes.HasPrefix(k, prefix) && (be(k[len(k)-8:]) < m.pruneTo || m.n > maxEvents)
	}
	if !due(k) {
		return nil
	}
	bases, err := w.bucket(&w.bases, bucketBases)
	if err != nil {
		return err
	}
	var base State
	if v := bases.Get([]byte(s.name)); v != nil {
		b, err := DecodeState(v)
		if err != nil {
			return fmt.Errorf("journal: %s: base state of slot %q: %w", w.db.path, s.name, err)
		}
		base = b
	}
	for pruned := 0; due(k) && pruned < PruneBudget; pruned++ {
		key := k[len(k)-8:]
		v := w.getEvent(key)
		if v == nil {
			return fmt.Errorf("journal: %s: %w: slot index names missing event %d", w.db.path, ErrCorrupt, be(key))
		}
		e, err := DecodeEvent(v)
		if err != nil {
			return fmt.Errorf("journal: %s: event %d: %w", w.db.path, be(key), err)
		}
		base = Fold(base, e)
		if err := w.deleteEvent(key, e.Kind, e.Job); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
		m.n--
		k, _ = c.Seek(prefix)
	}
	data, err := encodeState(base)
	if err != nil {
		return err
	}
	return bases.Put([]byte(s.name), data)
}

// slotPrefix is the key prefix of a slot's entries in slotidx and claims:
// the name and a NUL byte (slot names cannot contain NUL).
func slotPrefix(slot string) []byte {
	b := make([]byte, len(slot)+1)
	copy(b, slot)
	return b
}

// slotKey is slotPrefix(slot) followed by the 8-byte seq.
func slotKey(slot string, seq uint64) []byte {
	b := make([]byte, len(slot)+9)
	copy(b, slot)
	binary.BigEndian.PutUint64(b[len(slot)+1:], seq)
	return b
}

// lastOfSlot positions c on the slot's last slotidx entry.
func lastOfSlot(c *bolt.Cursor, slot string) ([]byte, []byte) {
	k, v := c.Seek(slotKey(slot, math.MaxUint64))
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, slotPrefix(slot)) || len(k) != len(slot)+9 {
		return nil, nil
	}
	return k, v
}

// MaxSlotName is the longest slot name Append accepts, in bytes.
const MaxSlotName = 512

func checkSlotName(slot string) string {
	switch {
	case slot == "":
		return "no slot"
	case len(slot) > MaxSlotName:
		return fmt.Sprintf("slot name longer than %d bytes", MaxSlotName)
	case strings.IndexByte(slot, 0) >= 0:
		return "slot name contains a NUL byte"
	}
	return ""
}

// needsCompact reports whether free pages make up more than
// CompactFreeRatio of a file larger than CompactMinSize.
func (db *DB) needsCompact() bool {
	if err := db.acquire(); err != nil {
		return false
	}
	defer db.release()
	fi, err := os.Stat(db.path)
	if err != nil || fi.Size() < CompactMinSize {
		return false
	}
	st := db.bolt.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(db.bolt.Info().PageSize)
	return float64(free) > CompactFreeRatio*float64(fi.Size())
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func be(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func jobKey(job int, seq uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(job))
	binary.BigEndian.PutUint64(b[8:], seq)
	return b
}
