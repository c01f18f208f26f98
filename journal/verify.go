package journal

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// maxVerifyErrors bounds the errors Verify reports.
const maxVerifyErrors = 100

// Verify checks the journal and returns what is wrong with it, nil if it is
// sound: bbolt's own consistency check (every page reachable once, no
// double frees), the meta bucket, every event record decoding with the
// sequence number of its key, the indexes pointing at existing events of
// the right slot and job, orphans keyed by their seq, and for every slot
// that its stored state equals the fold of its base state (the pruned
// history) and its remaining events. Each error names the file. Appends
// wait while Verify runs (bbolt's check reads the freelist, which commits
// change).
func (db *DB) Verify() (errs []error) {
	if err := db.acquire(); err != nil {
		return []error{err}
	}
	defer db.release()
	if !db.opts.ReadOnly {
		db.commitMu.Lock()
		defer db.commitMu.Unlock()
	}
	add := func(format string, args ...any) {
		if len(errs) < maxVerifyErrors {
			errs = append(errs, fmt.Errorf("journal: %s: %w: %s", db.path, ErrCorrupt, fmt.Sprintf(format, args...)))
		}
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			add("verify panicked: %v", r)
		}
	}()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		// Walk every page through cursors first, in this goroutine, where a
		// panic on a damaged page can be recovered: tx.Check runs in a
		// goroutine of its own and would crash the process.
		if err := walkAll(tx); err != nil {
			add("walking the file: %v", err)
			return nil
		}
		for err := range tx.Check() {
			add("bbolt: %v", err)
		}
		if len(errs) > 0 {
			return nil // do not interpret a damaged tree
		}
		verifyTx(tx, add)
		return nil
	})
	if err != nil {
		add("%v", err)
	}
	return errs
}

// walkAll visits every key of every bucket, so that every branch and leaf
// page is read once; a damaged page panics (recovered by the caller).
func walkAll(tx *bolt.Tx) error {
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if sub := b.Bucket(k); sub != nil {
					return walk(sub)
				}
			}
			return nil
		})
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(b) })
}

func verifyTx(tx *bolt.Tx, add func(string, ...any)) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if tx.Bucket(bucketEvents) != nil {
			add("no meta bucket")
		}
		return
	}
	if string(meta.Get(keyMagic)) != magic {
		add("meta bucket has the wrong magic")
	}
	if v, err := strconv.Atoi(string(meta.Get(keyFormat))); err != nil || v < 1 || v > FormatVersion {
		add("meta bucket has format %q", meta.Get(keyFormat))
	}
	b := make(map[string]*bolt.Bucket)
	for _, name := range allBuckets {
		if b[string(name)] = tx.Bucket(name); b[string(name)] == nil {
			add("bucket %q is missing", name)
			return
		}
	}
	events, states, bases, slotMeta, slotIdx, jobs, orphans := b["events"], b["states"], b["bases"], b["slotmeta"], b["slotidx"], b["jobs"], b["orphans"]
	if v, _ := strconv.Atoi(string(meta.Get(keyFormat))); v >= formatWithTail && tx.Bucket(bucketTail) == nil {
		add("bucket %q is missing", bucketTail)
	}
	// Events: keys are seqs, records decode, seqs increase and stay below
	// the bucket's sequence counter.
	bySlot := make(map[string]int)
	var last uint64
	// The tail's events follow the events bucket's (see tail.go).
	store := eventStore{events: events, tail: tx.Bucket(bucketTail)}
	_ = store.each(0, func(k, v []byte) (bool, error) {
		seq := be(k)
		if len(k) != 8 || seq == 0 {
			add("event key %x is not a sequence number", k)
			return true, nil
		}
		if seq <= last {
			add("event %d follows %d", seq, last)
		}
		last = seq
		e, err := DecodeEvent(v)
		if err != nil {
			add("event %d: %v", seq, err)
			return true, nil
		}
		if e.Seq != seq {
			add("event under key %d has seq %d", seq, e.Seq)
		}
		bySlot[e.Slot]++
		return true, nil
	})
	if last > store.counter() {
		add("event %d is beyond the sequence counter %d", last, store.counter())
	}
	// Slot index: entries name events of the slot, in order; every slot's
	// stored state is the fold of its base state and its events.
	folded := make(map[string]State)
	counts := make(map[string]int)
	lastOf := make(map[string]uint64)
	visit := func(slot string, seq uint64, kind string) {
		st, seen := folded[slot]
		if !seen {
			st = State{}
			if v := bases.Get([]byte(slot)); v != nil {
				bs, err := DecodeState(v)
				if err != nil {
					add("slot %q base state: %v", slot, err)
				}
				st = bs
			}
			if st.LastSeq != 0 && seq <= st.LastSeq {
				add("slot %q event %d is older than its pruned history (up to %d)", slot, seq, st.LastSeq)
			}
		}
		if seq <= lastOf[slot] {
			add("slot %q index lists event %d after event %d", slot, seq, lastOf[slot])
		}
		lastOf[slot] = seq
		counts[slot]++
		v := store.get(u64(seq))
		if v == nil {
			add("slot %q index names missing event %d", slot, seq)
			return
		}
		e, err := DecodeEvent(v)
		if err != nil {
			return // reported above
		}
		if e.Slot != slot || kind != string(e.Kind) {
			add("slot %q index entry %d is a %s event of slot %q", slot, e.Seq, e.Kind, e.Slot)
		}
		folded[slot] = Fold(st, e)
	}
	ic := slotIdx.Cursor()
	for k, kind := ic.First(); k != nil; k, kind = ic.Next() {
		if len(k) < 10 || k[len(k)-9] != 0 {
			add("slot index key %x is malformed", k)
			continue
		}
		visit(string(k[:len(k)-9]), be(k[len(k)-8:]), string(kind))
	}
	// Then each slot's newest events, listed in its slotmeta record.
	mc := slotMeta.Cursor()
	for k, v := mc.First(); k != nil; k, v = mc.Next() {
		m, ok := decodeSlotMeta(v)
		if !ok {
			continue // reported below
		}
		for _, p := range m.pending {
			visit(string(k), p.seq, p.kind)
		}
	}
	err := states.ForEach(func(k, v []byte) error {
		slot := string(k)
		stored, err := DecodeState(v)
		if err != nil {
			add("slot %q state: %v", slot, err)
			return nil
		}
		st, ok := folded[slot]
		if !ok {
			// No events left: the state is the base state.
			if bv := bases.Get(k); bv != nil {
				st, _ = DecodeState(bv)
			}
		}
		delete(folded, slot)
		a, _ := encodeState(st)
		b, _ := encodeState(stored)
		if !bytes.Equal(a, b) {
			add("slot %q: stored state differs from the fold of its events:\n stored %s\n folded %s", slot, b, a)
		}
		if counts[slot] != bySlot[slot] {
			add("slot %q indexes %d events, the log holds %d", slot, counts[slot], bySlot[slot])
		}
		m, ok := decodeSlotMeta(slotMeta.Get(k))
		if !ok {
			add("slot %q has no counters", slot)
		} else if m.n != uint64(counts[slot]) {
			add("slot %q counts %d events, its index holds %d", slot, m.n, counts[slot])
		}
		delete(bySlot, slot)
		return nil
	})
	if err != nil {
		add("%v", err)
	}
	for slot := range folded {
		add("slot %q has events but no state", slot)
	}
	for slot, n := range bySlot {
		add("%d events of slot %q are in no slot index", n, slot)
	}
	// Job index.
	jc := jobs.Cursor()
	for k, v := jc.First(); k != nil; k, v = jc.Next() {
		if len(k) != 16 {
			add("job index key %x is malformed", k)
			continue
		}
		job, seq := int(be(k[:8])), be(k[8:])
		ev := store.get(k[8:])
		if ev == nil {
			add("job index names missing event %d", seq)
			continue
		}
		e, err := DecodeEvent(ev)
		if err != nil {
			continue
		}
		if e.Job != job || e.Slot != string(v) || (e.Kind != KindClaimed && e.Kind != KindOrphanResolved) {
			add("job index entry (%d, %d) is an event of job %d, slot %q", job, seq, e.Job, e.Slot)
		}
	}
	// Orphans.
	oc := orphans.Cursor()
	for k, v := oc.First(); k != nil; k, v = oc.Next() {
		o, err := decodeOrphan(v)
		if err != nil {
			add("orphan %x: %v", k, err)
			continue
		}
		if o.Seq != be(k) {
			add("orphan under key %d has seq %d", be(k), o.Seq)
		}
	}
}
