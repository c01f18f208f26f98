package journal_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
	bolt "go.etcd.io/bbolt"
)

func formatOf(t *testing.T, path string) string {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var f string
	bdb.View(func(tx *bolt.Tx) error { f = string(tx.Bucket([]byte("meta")).Get([]byte("format"))); return nil })
	return f
}

// A version 1 file (slot indexes in slotidx only) is read as it is, left
// alone by a read-only Open, and marked with the current version by a
// writable one.
func TestOlderFormatUpgraded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	db, err := journal.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, reg("s"))
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	bdb.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("1")) })
	bdb.Close()

	ro := journaltest.MustOpenPath(t, path, &journal.Options{ReadOnly: true})
	if st, err := ro.State("s"); err != nil || st.Session == nil {
		t.Fatalf("read-only State of a version 1 file = %+v, %v", st, err)
	}
	ro.Close()
	if got := formatOf(t, path); got != "1" {
		t.Fatalf("format after a read-only Open = %q, want 1", got)
	}
	db, err = journal.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if got, want := formatOf(t, path), fmt.Sprint(journal.FormatVersion); got != want {
		t.Fatalf("format after a writable Open = %q, want %q", got, want)
	}
}

// A slot's newest events are listed in its slotmeta record, older ones in
// slotidx: Events and Verify see them all, in order.
func TestSlotIndexPendingAndMoved(t *testing.T) {
	db := journaltest.MustOpen(t, &journal.Options{Retention: -1})
	mustAppend(t, db, reg("s"))
	mustAppend(t, db, reg("t"))
	var want []uint64
	for i := 1; i <= 40; i++ {
		e := mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: i})
		want = append(want, e.Seq)
		mustAppend(t, db, journal.Event{Slot: "t", Kind: journal.KindFailed, Reason: "x"})
		db.AppendProgress("s", fmt.Sprint("p", i))
		db.AppendProgress("s", fmt.Sprint("q", i)) // latest wins
		if i%7 == 0 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
			db.AppendProgress("s", "again") // a run of progress keeps its last
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if i%5 == 0 {
			if errs := db.Verify(); errs != nil {
				t.Fatalf("after %d claims: %v", i, errs)
			}
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	progress := 0
	db.Events(journal.Filter{Slot: "s"}, func(e journal.Event) error {
		switch e.Kind {
		case journal.KindClaimed:
			got = append(got, e.Seq)
		case journal.KindProgress:
			progress++
		}
		return nil
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claims of s = %v, want %v", got, want)
	}
	if progress != 40 {
		t.Errorf("%d progress events kept, want 40 (one per run)", progress)
	}
	var job []string
	db.Events(journal.Filter{Job: 39}, func(e journal.Event) error { job = append(job, string(e.Kind)); return nil })
	if fmt.Sprint(job) != "[claimed progress]" {
		t.Errorf("events of job 39 = %v", job)
	}
	n := 0
	db.Events(journal.Filter{Slot: "s", FromSeq: want[35]}, func(e journal.Event) error { n++; return nil })
	if n != 10 {
		t.Errorf("events of s from seq %d = %d, want 10", want[35], n)
	}
}

// A version 2 file (no tail bucket: every event in events, whose sequence
// counter assigns seqs) is read as it is, and given a tail that carries on
// its counter when opened for writing.
func TestVersion2FileGetsTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	db := journaltest.MustOpenPath(t, path, nil)
	mustAppend(t, db, reg("s"))
	mustAppend(t, db, claim("s", 7))
	for i := 0; i < 5; i++ {
		mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCheckpoint, Checkpoint: []byte{byte(i)}})
	}
	db.Close()
	// Rewrite it as version 2 wrote it.
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var counter uint64
	err = bdb.Update(func(tx *bolt.Tx) error {
		events, tail := tx.Bucket([]byte("events")), tx.Bucket([]byte("tail"))
		counter = tail.Sequence()
		if err := tail.ForEach(func(k, v []byte) error { return events.Put(k, v) }); err != nil {
			return err
		}
		if err := events.SetSequence(counter); err != nil {
			return err
		}
		if err := tx.DeleteBucket([]byte("tail")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("2"))
	})
	bdb.Close()
	if err != nil || counter < 7 {
		t.Fatalf("rewriting as version 2: %v (counter %d)", err, counter)
	}

	ro := journaltest.MustOpenPath(t, path, &journal.Options{ReadOnly: true})
	if errs := ro.Verify(); errs != nil {
		t.Fatalf("Verify of a version 2 file: %v", errs)
	}
	n := 0
	ro.Events(journal.Filter{}, func(journal.Event) error { n++; return nil })
	ro.Close()
	if n != 7 || formatOf(t, path) != "2" {
		t.Fatalf("read-only: %d events (want 7), format %q (want 2)", n, formatOf(t, path))
	}

	db = journaltest.MustOpenPath(t, path, nil)
	got := mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCheckpoint, Checkpoint: []byte("after")})
	if got.Seq != counter+1 {
		t.Fatalf("first append after the upgrade has seq %d, want %d", got.Seq, counter+1)
	}
	var seqs []uint64
	db.Events(journal.Filter{Job: 7}, func(e journal.Event) error { seqs = append(seqs, e.Seq); return nil })
	if len(seqs) != 7 || seqs[6] != got.Seq {
		t.Fatalf("job 7's events after the upgrade: %v", seqs)
	}
	if errs := db.Verify(); errs != nil {
		t.Fatalf("Verify after the upgrade: %v", errs)
	}
	db.Close()
	if got, want := formatOf(t, path), fmt.Sprint(journal.FormatVersion); got != want {
		t.Fatalf("format after a writable Open = %q, want %q", got, want)
	}
}
