package journal

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func openTailTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "j.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, e := range []Event{
		{Slot: "s", Kind: KindRegistered, Token: "0123456789abcdef", Stage: "a"},
		{Slot: "s", Kind: KindClaimed, Job: 1},
	} {
		if _, err := db.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// tamper closes db and applies fn to its file with bbolt directly.
func tamper(t *testing.T, db *DB, fn func(*bolt.Tx) error) string {
	t.Helper()
	path := db.Path()
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(fn)
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// tailSeqs returns the seqs in the tail and the number of records in events.
func tailSeqs(t *testing.T, db *DB) (tail []uint64, events int) {
	t.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTail).ForEach(func(k, _ []byte) error {
			tail = append(tail, be(k))
			return nil
		}); err != nil {
			return err
		}
		events = tx.Bucket(bucketEvents).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tail, events
}

func pageWrites(db *DB) int64 {
	st := db.bolt.Stats()
	return st.TxStats.GetWrite()
}

// A lone append whose event fits the tail writes one data page and the meta
// page; the one that does not fit moves the tail into events. Pages are
// counted by bbolt (TxStats.Write: one per page written, meta included).
func TestLoneAppendWritesOnePage(t *testing.T) {
	db := openTailTest(t)
	// Failed events, which (unlike checkpoints and progress) never replace
	// one another.
	e := Event{Slot: "s", Kind: KindFailed, Reason: strings.Repeat("c", 64)}
	light, heavy := 0, 0
	for i := 0; i < 64; i++ {
		before := pageWrites(db)
		tailBefore, _ := tailSeqs(t, db)
		pendingBefore := len(db.slots["s"].meta.pending)
		if _, err := db.Append(e); err != nil {
			t.Fatal(err)
		}
		writes := pageWrites(db) - before
		tail, _ := tailSeqs(t, db)
		switch {
		case len(tail) == len(tailBefore)+1:
			light++
			// Every 16th append moves the slot's index entries from its
			// slotmeta record into slotidx: that commit writes more pages.
			moved := len(db.slots["s"].meta.pending) < pendingBefore
			if writes != 2 && !moved {
				t.Errorf("append %d went to the tail and wrote %d pages, want 2 (root + meta)", i, writes)
			}
		case len(tail) == 0:
			heavy++
		default:
			t.Fatalf("append %d: tail went from %v to %v", i, tailBefore, tail)
		}
	}
	// Of every perCycle+1 appends, perCycle fit the tail and one moves it
	// (perCycle = 3 with 4 KiB pages and this ~230-byte record).
	rec, err := encodeEvent(Event{Version: FormatVersion, Seq: 100, Time: db.now().UTC(), Slot: "s", Kind: KindFailed, Job: 1, Reason: e.Reason})
	if err != nil {
		t.Fatal(err)
	}
	perCycle := tailBudget(db.bolt.Info().PageSize) / (tailElem + len(rec))
	if perCycle < 1 {
		t.Fatalf("the tail holds no %d-byte record", len(rec))
	}
	if cycles := 64 / (perCycle + 1); light < cycles*perCycle-perCycle || heavy < cycles-1 {
		t.Fatalf("%d appends to the tail, %d moves: want about %d to 1", light, heavy, perCycle)
	}
	if errs := db.Verify(); errs != nil {
		t.Fatal(errs)
	}
}

// The tail never holds more than fits inline; a record too big for it goes
// to events after the tail's, so events then tail stays in seq order.
func TestTailOrderAndBudget(t *testing.T) {
	db := openTailTest(t)
	budget := tailBudget(db.bolt.Info().PageSize)
	var seqs []uint64
	for i := 0; i < 200; i++ {
		size := 10 + (i*37)%300
		if i%23 == 0 {
			size = 2 * budget // never fits
		}
		got, err := db.Append(Event{Slot: "s", Kind: KindFailed, Reason: strings.Repeat("x", size)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, got.Seq)
		var bytes int
		db.bolt.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketTail).ForEach(func(k, v []byte) error {
				bytes += tailElem + len(v)
				return nil
			})
		})
		if bytes > budget {
			t.Fatalf("after append %d the tail holds %d bytes, budget %d", i, bytes, budget)
		}
	}
	var read []uint64
	if err := db.Events(Filter{Slot: "s", FromSeq: seqs[0]}, func(e Event) error {
		read = append(read, e.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var all []uint64
	if err := db.Events(Filter{FromSeq: seqs[0]}, func(e Event) error {
		all = append(all, e.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, got := range [][]uint64{read, all} {
		// Pruning may have removed the oldest; the rest must be seqs' end.
		if len(got) == 0 || len(got) > len(seqs) {
			t.Fatalf("read %d events, appended %d", len(got), len(seqs))
		}
		want := seqs[len(seqs)-len(got):]
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("event %d read as seq %d, want %d", i, got[i], want[i])
			}
		}
	}
	if errs := db.Verify(); errs != nil {
		t.Fatal(errs)
	}
}

// Verify catches a tail record whose seq is not above every event's.
func TestVerifyTailOutOfOrder(t *testing.T) {
	path := tamper(t, openTailTest(t), func(tx *bolt.Tx) error {
		// A copy of the oldest event, in events under a seq above every
		// tail record's.
		events, tail := tx.Bucket(bucketEvents), tx.Bucket(bucketTail)
		k, v := events.Cursor().First()
		if k == nil {
			k, v = tail.Cursor().First()
		}
		if err := tail.Put(u64(1), v); err != nil {
			return err
		}
		return events.Put(u64(be(k)+1000), v)
	})
	db, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	errs := db.Verify()
	if errs == nil {
		t.Fatal("Verify passed a tail record below an events record")
	}
	if !hasFinding(errs, "", 1, "follows event ") {
		t.Fatalf("Verify = %v, want event 1 reported out of order", errs)
	}
}

// A file without its tail bucket is damaged: Verify says so.
func TestVerifyMissingTail(t *testing.T) {
	path := tamper(t, openTailTest(t), func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketTail) })
	db, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if errs := db.Verify(); !hasFinding(errs, "", 0, `bucket "tail" is missing`) {
		t.Fatalf("Verify = %v, want the missing tail reported", errs)
	}
}

// A writable Open of a file that lost its tail recreates it
// without reusing a seq the lost counter had assigned.
func TestLostTailDoesNotReuseSeqs(t *testing.T) {
	db := openTailTest(t)
	var last uint64
	for i := 0; i < 10; i++ {
		e, err := db.Append(Event{Slot: "s", Kind: KindFailed, Reason: strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		last = e.Seq
	}
	path := tamper(t, db, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketEvents).Sequence() >= last {
			t.Errorf("the events counter (%d) already covers seq %d: the test proves nothing", tx.Bucket(bucketEvents).Sequence(), last)
		}
		return tx.DeleteBucket(bucketTail)
	})
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := db.Append(Event{Slot: "s", Kind: KindFailed, Reason: "after"})
	if err != nil {
		t.Fatal(err)
	}
	// The tail held the newest events, which are lost; the ones moved into
	// events before must not be overwritten.
	var inEvents uint64
	db.bolt.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketEvents).Cursor().Last()
		inEvents = be(k)
		return nil
	})
	if e.Seq <= inEvents {
		t.Fatalf("append after losing the tail got seq %d, at or below stored event %d", e.Seq, inEvents)
	}
}

// hasFinding reports whether one of Verify's errs is a *CorruptError of
// slot and seq whose Detail starts with detail.
func hasFinding(errs []error, slot string, seq uint64, detail string) bool {
	for _, err := range errs {
		var ce *CorruptError
		if errors.As(err, &ce) && ce.Slot == slot && ce.Seq == seq && strings.HasPrefix(ce.Detail, detail) {
			return true
		}
	}
	return false
}
