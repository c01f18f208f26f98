package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

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
// history) and its remaining events. Each finding is an *Error (Op
// "verify") wrapping a *CorruptError that says what is wrong without
// quoting records (they hold tokens), or a *FormatError for a record of a
// newer format. Appends wait while Verify runs (bbolt's check reads the
// freelist, which commits change).
//
// Verify is bounded in time and memory on any file: it first checks the
// file's page structure again with plain reads (see precheck.go: the file may
// have been damaged since Open) and stops there if it is damaged, so bbolt's
// walks only ever run on a tree where every page is inside the file and
// reached once; they then visit each page once, and the journal's checks each
// record once, so time and memory grow with the file's size, and at most
// maxVerifyErrors findings are kept.
func (db *DB) Verify() (errs []error) {
	if err := db.acquire("verify"); err != nil {
		return []error{err}
	}
	defer db.release()
	if !db.opts.ReadOnly {
		db.commitMu.Lock()
		defer db.commitMu.Unlock()
	}
	add := func(err error) {
		if len(errs) < maxVerifyErrors {
			errs = append(errs, db.wrap("verify", err))
		}
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			add(corrupt("", 0, "verify panicked: %v", r))
		}
	}()
	if err := db.checkStructure(); err != nil {
		add(err)
		return errs
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		// Walk every page through cursors first, in this goroutine, where a
		// panic on a damaged page can be recovered: tx.Check runs in a
		// goroutine of its own and would crash the process.
		if err := walkAll(tx); err != nil {
			add(corrupt("", 0, "walking the file: %v", err))
			return nil
		}
		for err := range tx.Check() {
			add(corrupt("", 0, "bbolt: %v", err))
		}
		if len(errs) > 0 {
			return nil // do not interpret a damaged tree
		}
		verifyTx(tx, add)
		return nil
	})
	if err != nil {
		add(corrupt("", 0, "%v", err))
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

func verifyTx(tx *bolt.Tx, add func(error)) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if tx.Bucket(bucketEvents) != nil {
			add(corrupt("", 0, "no meta bucket"))
		}
		return
	}
	if string(meta.Get(keyMagic)) != magic {
		add(corrupt("", 0, "the meta bucket has the wrong magic"))
	}
	if v, err := strconv.Atoi(string(meta.Get(keyFormat))); err != nil || v < OldestFormatVersion || v > FormatVersion {
		add(corrupt("", 0, "the meta bucket has format %q", meta.Get(keyFormat)))
	}
	b := make(map[string]*bolt.Bucket)
	for _, name := range allBuckets {
		if b[string(name)] = tx.Bucket(name); b[string(name)] == nil {
			add(corrupt("", 0, "bucket %q is missing", name))
			return
		}
	}
	events, states, bases, slotMeta, slotIdx, jobs, orphans := b["events"], b["states"], b["bases"], b["slotmeta"], b["slotidx"], b["jobs"], b["orphans"]
	if tx.Bucket(bucketTail) == nil {
		add(corrupt("", 0, "bucket %q is missing", bucketTail))
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
			add(corrupt("", 0, "event key %x is not a sequence number", k))
			return true, nil
		}
		if seq <= last {
			add(corrupt("", seq, "follows event %d", last))
		}
		last = seq
		e, err := DecodeEvent(v)
		if err != nil {
			add(at(err, "", seq))
			return true, nil
		}
		if e.Seq != seq {
			add(corrupt(e.Slot, seq, "the record under this key has seq %d", e.Seq))
		}
		bySlot[e.Slot]++
		return true, nil
	})
	if last > store.counter() {
		add(corrupt("", last, "beyond the sequence counter %d", store.counter()))
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
					add(inRecord(err, slot, "base "))
				}
				st = bs
			}
			if st.LastSeq != 0 && seq <= st.LastSeq {
				add(corrupt(slot, seq, "older than the slot's pruned history (up to %d)", st.LastSeq))
			}
		}
		if seq <= lastOf[slot] {
			add(corrupt(slot, 0, "the index lists event %d after event %d", seq, lastOf[slot]))
		}
		lastOf[slot] = seq
		counts[slot]++
		v := store.get(u64(seq))
		if v == nil {
			add(corrupt(slot, 0, "the index names missing event %d", seq))
			return
		}
		e, err := DecodeEvent(v)
		if err != nil {
			return // reported above
		}
		if e.Slot != slot || kind != string(e.Kind) {
			add(corrupt(slot, 0, "index entry %d (%s) is a %s event of slot %q", e.Seq, kind, e.Kind, e.Slot))
		}
		folded[slot] = Fold(st, e)
	}
	ic := slotIdx.Cursor()
	for k, kind := ic.First(); k != nil; k, kind = ic.Next() {
		if len(k) < 10 || k[len(k)-9] != 0 {
			add(corrupt("", 0, "slot index key %x is malformed", k))
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
			add(at(err, slot, 0))
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
		if diff := stateDiff(stored, st); len(diff) > 0 {
			add(corrupt(slot, 0, "the stored state differs from the fold of its events in %s", strings.Join(diff, ", ")))
		}
		if counts[slot] != bySlot[slot] {
			add(corrupt(slot, 0, "the index lists %d events, the log holds %d", counts[slot], bySlot[slot]))
		}
		m, ok := decodeSlotMeta(slotMeta.Get(k))
		if !ok {
			add(corrupt(slot, 0, "no counters"))
		} else if m.n != uint64(counts[slot]) {
			add(corrupt(slot, 0, "the counters say %d events, the index lists %d", m.n, counts[slot]))
		}
		delete(bySlot, slot)
		return nil
	})
	if err != nil {
		add(corrupt("", 0, "%v", err))
	}
	for slot := range folded {
		add(corrupt(slot, 0, "events but no state"))
	}
	for slot, n := range bySlot {
		add(corrupt(slot, 0, "%d events are in no slot index", n))
	}
	// Job index.
	jc := jobs.Cursor()
	for k, v := jc.First(); k != nil; k, v = jc.Next() {
		if len(k) != 16 {
			add(corrupt("", 0, "job index key %x is malformed", k))
			continue
		}
		job, seq := int(be(k[:8])), be(k[8:])
		ev := store.get(k[8:])
		if ev == nil {
			add(corrupt("", 0, "job index entry (%d, %d) names a missing event", job, seq))
			continue
		}
		e, err := DecodeEvent(ev)
		if err != nil {
			continue
		}
		if e.Job != job || e.Slot != string(v) || (e.Kind != KindClaimed && e.Kind != KindOrphanResolved) {
			add(corrupt("", 0, "job index entry (%d, %d) is a %s event of job %d, slot %q", job, seq, e.Kind, e.Job, e.Slot))
		}
	}
	// Orphans.
	oc := orphans.Cursor()
	for k, v := oc.First(); k != nil; k, v = oc.Next() {
		o, err := decodeOrphan(v)
		if err != nil {
			add(at(err, "", be(k)))
			continue
		}
		if o.Seq != be(k) {
			add(corrupt(o.Slot, be(k), "the orphan under this key has seq %d", o.Seq))
		}
	}
}

// stateDiff names the fields in which two states differ ("job",
// "session.token"), never their values: a state holds the token.
func stateDiff(a, b State) []string {
	ja, err1 := encodeState(a)
	jb, err2 := encodeState(b)
	if err1 != nil || err2 != nil {
		return []string{"its encoding"}
	}
	return jsonDiff("", ja, jb)
}

// jsonDiff names the fields, under prefix, in which two JSON objects differ,
// one level of nested objects deep.
func jsonDiff(prefix string, a, b []byte) []string {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		if bytes.Equal(a, b) {
			return nil
		}
		return []string{strings.TrimSuffix(prefix, ".")}
	}
	keys := make(map[string]bool)
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		va, vb := ma[k], mb[k]
		if bytes.Equal(va, vb) {
			continue
		}
		if prefix == "" && len(va) > 0 && len(vb) > 0 && va[0] == '{' && vb[0] == '{' {
			diff = append(diff, jsonDiff(k+".", va, vb)...)
			continue
		}
		diff = append(diff, prefix+k)
	}
	return diff
}

// inRecord returns err with slot filled in and prefix put before its
// Detail, if it is a *CorruptError.
func inRecord(err error, slot, prefix string) error {
	var ce *CorruptError
	if !errors.As(err, &ce) {
		return err
	}
	c := *ce
	if c.Slot == "" {
		c.Slot = slot
	}
	c.Detail = prefix + c.Detail
	return &c
}

// checkStructure runs the structural pre-check on the file again. A file
// removed since Open (a temporary snapshot) is not checked again: Open
// checked it, and nothing can write to it by its name any more.
func (db *DB) checkStructure() error {
	f, err := os.Open(db.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return checkStructure(f, fi.Size())
}
