package journal_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
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

// A file of an older format version, written by a development version
// before the first release, is refused by both kinds of Open, with a
// *FormatError naming the version, and left unchanged.
func TestOlderFormatRefused(t *testing.T) {
	for v := 1; v < journal.OldestFormatVersion; v++ {
		for _, ro := range []bool{true, false} {
			t.Run(fmt.Sprintf("version%d/read-only=%v", v, ro), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "j.db")
				db := journaltest.MustOpenPath(t, path, nil)
				mustAppend(t, db, reg("s"))
				db.Close()
				bdb, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				err = bdb.Update(func(tx *bolt.Tx) error {
					return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte(fmt.Sprint(v)))
				})
				if cerr := bdb.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Fatal(err)
				}
				before, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}

				db, err = journal.Open(path, &journal.Options{ReadOnly: ro})
				if err == nil {
					db.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, journal.ErrOldFormat) || errors.Is(err, journal.ErrNewerFormat) {
					t.Errorf("err = %v, want ErrOldFormat", err)
				}
				var fe *journal.FormatError
				if !errors.As(err, &fe) || fe.Version != v || fe.Record != "file" {
					t.Errorf("err = %#v, want a *FormatError of the file with version %d", fe, v)
				}
				checkError(t, err, path)
				if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
					t.Error("a refused Open changed the file")
				}
				if got := formatOf(t, path); got != fmt.Sprint(v) {
					t.Errorf("format after the refused Open = %q, want %d", got, v)
				}
			})
		}
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
