package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

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
	if err := db.acquire("append"); err != nil {
		return Event{}, err
	}
	defer db.release()
	if db.opts.ReadOnly {
		return Event{}, db.wrap("append", ErrReadOnly)
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
	if err := db.acquire("flush"); err != nil {
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
	space      space // the records written (see checkSpace)
	// writable: a commit's writer, which reads and updates db.slots (the
	// states it writes, cached) instead of decoding them from the file.
	writable bool
}

type slotTx struct {
	name  string
	state State
	meta  slotMeta
	dirty bool
	// base is the slot's base state when baseKnown (this DB wrote it:
	// pruning need not decode it); shared with db.slots (Fold never
	// modifies what a state points to).
	base      State
	baseKnown bool
	// jobs holds the job numbers of claims in meta.pending appended by
	// this DB (see indexClaims); shared with db.slots: copy on append.
	jobs []claimJob
}

// claimJob is a claim's seq and job number.
type claimJob struct {
	seq uint64
	job int
}

func newTxWriter(tx *bolt.Tx, db *DB, now time.Time) (*txWriter, error) {
	w := &txWriter{tx: tx, db: db, now: now, cache: make(map[string]*slotTx)}
	// The events bucket is opened when needed (eventsBucket): most
	// commits write to the tail only.
	for _, b := range []struct {
		p    **bolt.Bucket
		name []byte
	}{{&w.states, bucketStates}, {&w.slotMeta, bucketSlotMeta}} {
		if _, err := w.bucket(b.p, b.name); err != nil {
			return nil, err
		}
	}
	if err := createTail(tx); err != nil { // present unless the file is damaged
		return nil, err
	}
	w.tail = tx.Bucket(bucketTail)
	w.tailBytes, w.tailBudget = -1, tailBudget(tx.DB().Info().PageSize)
	return w, nil
}

// eventsBucket returns the events bucket, opening it first.
func (w *txWriter) eventsBucket() (*bolt.Bucket, error) {
	if w.events != nil {
		return w.events, nil
	}
	b, err := w.bucket(&w.events, bucketEvents)
	if err != nil {
		return nil, err
	}
	// Event keys only grow (sequence numbers): fill their leaves instead
	// of splitting them half full, so a commit of many events dirties half
	// as many new leaves. Records are unchanged; only how bbolt packs pages.
	b.FillPercent = 1.0
	return b, nil
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
			s := &slotTx{name: name, state: c.state, meta: c.meta, jobs: c.jobs, base: c.base, baseKnown: c.baseKnown}
			w.cache[name] = s
			w.order = append(w.order, name)
			return s, nil
		}
	}
	s := &slotTx{name: name, state: State{Slot: name}}
	if v := w.states.Get([]byte(name)); v != nil {
		st, err := DecodeState(v)
		if err != nil {
			return nil, at(err, name, 0)
		}
		s.state = st
	}
	if v := w.slotMeta.Get([]byte(name)); v != nil {
		m, ok := decodeSlotMeta(v)
		if !ok {
			return nil, corrupt(name, 0, "bad counters")
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
				return at(err, "", e.OrphanSeq)
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
	if r := checkEvent(s, e); r != "" {
		return w.invalid(*e, "%s", r)
	}
	return nil
}

func (w *txWriter) invalid(e Event, format string, args ...any) error {
	return &InvalidEventError{Slot: e.Slot, Kind: e.Kind, Reason: fmt.Sprintf(format, args...)}
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
		return Event{}, fmt.Errorf("encode event %d of slot %q: %w", e.Seq, e.Slot, err)
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
	if e.Kind == KindCheckpoint {
		if err := w.dropCheckpoint(s); err != nil {
			return Event{}, err
		}
	}
	// Copy on append (slices.Clip): the committed slotMeta cached in
	// db.slots shares the array.
	s.meta.pending = append(slices.Clip(s.meta.pending), idxEntry{seq: seq, kind: string(e.Kind)})
	s.meta.n++
	// A claim's entries in the job and claim indexes are written when its
	// slot-index entry leaves the slotmeta record (see indexClaims), not
	// now: a claim per job cycle would otherwise rewrite both indexes' last
	// leaves in every cycle, two of the commit's pages and most of its
	// allocations. An orphan resolution (rare) is indexed at once.
	if e.Job != 0 && e.Kind == KindOrphanResolved {
		jobs, err := w.bucket(&w.jobs, bucketJobs)
		if err != nil {
			return Event{}, err
		}
		if err := jobs.Put(jobKey(e.Job, seq), []byte(e.Slot)); err != nil {
			return Event{}, err
		}
	}
	if e.Kind == KindClaimed {
		s.meta.claims++
		s.jobs = append(slices.Clip(s.jobs), claimJob{seq: seq, job: e.Job})
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
		w.space.add(len(data))
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
	if err := w.deleteIndexed(key, kind, job); err != nil {
		return err
	}
	return w.removeEvent(key)
}

// deleteIndexed removes the job-index entry of the event at key, of kind
// and job, if it has one (claims and orphan resolutions).
func (w *txWriter) deleteIndexed(key []byte, kind Kind, job int) error {
	if job != 0 && (kind == KindClaimed || kind == KindOrphanResolved) {
		jobs, err := w.bucket(&w.jobs, bucketJobs)
		if err != nil {
			return err
		}
		return jobs.Delete(jobKey(job, be(key)))
	}
	return nil
}

// dropCheckpoint deletes the slot's previous checkpoint of the job it
// holds, if there is one: only the newest checkpoint of a job is kept. Fold
// of a checkpoint overwrites all an older one set, so the state does not
// change; without this a job that checkpoints megabytes in a loop fills the
// disk (retention counts events, not bytes). Since every checkpoint drops
// the one before, the search back stops at the first checkpoint or at the
// job's claim, a few entries back.
func (w *txWriter) dropCheckpoint(s *slotTx) error {
	p := s.meta.pending
	for i := len(p) - 1; i >= 0; i-- {
		switch Kind(p[i].kind) {
		case KindCheckpoint:
			if err := w.deleteEvent(u64(p[i].seq), KindCheckpoint, 0); err != nil {
				return err
			}
			s.meta.pending = slices.Delete(slices.Clone(p), i, i+1) // a copy: db.slots shares p
			s.meta.n--
			return nil
		case KindClaimed:
			return nil
		}
	}
	idx, err := w.bucket(&w.slotIdx, bucketSlotIdx)
	if err != nil {
		return err
	}
	prefix := slotPrefix(s.name)
	c := idx.Cursor()
	for k, v := lastOfSlot(c, s.name); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(s.name)+9; k, v = c.Prev() {
		switch Kind(v) {
		case KindCheckpoint:
			if err := w.deleteEvent(k[len(k)-8:], KindCheckpoint, 0); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
			s.meta.n--
			return nil
		case KindClaimed:
			return nil
		}
	}
	return nil
}

// cachedSlot is a slot's state and counters as last committed.
type cachedSlot struct {
	state     State
	meta      slotMeta
	jobs      []claimJob
	base      State // valid if baseKnown
	baseKnown bool
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
		w.db.slots[name] = cachedSlot{state: s.state, meta: s.meta, jobs: s.jobs, base: s.base, baseKnown: s.baseKnown}
	}
}

// touched returns the states of the slots the transaction touched.
func (w *txWriter) touched() map[string]State {
	m := make(map[string]State, len(w.cache))
	for name, s := range w.cache {
		m[name] = s.state
	}
	return m
}

// finish prunes the touched slots a little and stores their states.
func (w *txWriter) finish() error {
	for _, name := range w.order {
		s := w.cache[name]
		if !s.dirty {
			continue
		}
		// A slot whose listed entries move into slotidx is pruned first,
		// in the same transaction: pruning deletes from the leaves of the
		// job and claim indexes that the move then adds to, so bbolt, which
		// copies all of a leaf's entries to grow it, has the room already.
		flush := len(s.meta.pending) >= pendingMax
		if w.db.retention > 0 {
			if err := w.prune(s, flush); err != nil {
				return err
			}
		}
		if flush {
			idx, err := w.bucket(&w.slotIdx, bucketSlotIdx)
			if err != nil {
				return err
			}
			if err := w.indexClaims(s); err != nil {
				return err
			}
			for _, p := range s.meta.pending {
				if err := idx.Put(slotKey(name, p.seq), []byte(p.kind)); err != nil {
					return err
				}
			}
			s.meta.pending, s.jobs = nil, nil
		}
		data, err := encodeState(s.state)
		if err != nil {
			return err
		}
		w.space.add(len(data))
		if err := w.states.Put([]byte(name), data); err != nil {
			return err
		}
		if err := w.slotMeta.Put([]byte(name), s.meta.encode()); err != nil {
			return err
		}
	}
	return nil
}

// indexClaims writes the job- and claim-index entries of the claims listed
// in the slot's slotmeta record (pending: their slot-index entries are not
// in slotidx yet), which append leaves out (format 4; see doc.go). finish
// calls it when those entries move into slotidx, prune before it counts the
// slot's claims. A claim older than the slot's prune point had its claim
// entry deleted by an earlier pass of prune, which indexed it first: it is
// not written again (its job entry goes with its event, when pruned). The
// event records give the job numbers.
func (w *txWriter) indexClaims(s *slotTx) error {
	for _, p := range s.meta.pending {
		if p.kind != string(KindClaimed) {
			continue
		}
		job, err := w.claimedJob(s, p.seq)
		if err != nil {
			return err
		}
		if job != 0 { // a claim without a job number has no job entry
			jobs, err := w.bucket(&w.jobs, bucketJobs)
			if err != nil {
				return err
			}
			if err := jobs.Put(jobKey(job, p.seq), []byte(s.name)); err != nil {
				return err
			}
		}
		if p.seq < s.meta.pruneTo {
			continue
		}
		claims, err := w.bucket(&w.claims, bucketClaims)
		if err != nil {
			return err
		}
		if err := claims.Put(slotKey(s.name, p.seq), u64(uint64(job))); err != nil {
			return err
		}
	}
	return nil
}

// claimedJob returns the job number of the slot's claim at seq: from
// memory if this DB appended it, else from its record.
func (w *txWriter) claimedJob(s *slotTx, seq uint64) (int, error) {
	for _, c := range s.jobs {
		if c.seq == seq {
			return c.job, nil
		}
	}
	v := w.getEvent(u64(seq))
	if v == nil {
		return 0, corrupt(s.name, 0, "the slot's counters name missing event %d", seq)
	}
	e, err := DecodeEvent(v)
	if err != nil {
		return 0, at(err, s.name, seq)
	}
	if e.Kind != KindClaimed {
		return 0, corrupt(e.Slot, e.Seq, "indexed as a claim, the record is a %s event", e.Kind)
	}
	return e.Job, nil
}
