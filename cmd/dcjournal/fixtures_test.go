package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	bolt "go.etcd.io/bbolt"
)

// Fixture journals, written event by event with journal.Append: the same records a
// worker writes. Run in a testscript as "exec mkjournal SCENARIO PATH".
//
//	crash     a preempted worker with four slots: "0" a pending completion (job 41,
//	          JSON output) after an accepted one (40), "1" a held job (7, text input,
//	          checkpoint, progress), "2" a lost session whose pending completion became
//	          an orphan (12) after an earlier recovery, "3" closed by bye.
//	clean     one slot that finished its job and said bye: nothing to do.
//	empty     a journal without events.
//	orphans   two orphans of the same stage and job (file names must not collide)
//	          and one of another job.
//	foreign   a bbolt file that is not a journal.
//	newer     a journal whose format version is newer than this program's.
//	older     a journal whose format version is older than this program's.
//	badstate  a journal whose stored state of slot "0" disagrees with its events.
//	badevent  a journal whose event record 5 is garbage.
var fixtures = map[string]func(path string) error{
	"crash":    fixtureCrash,
	"clean":    fixtureClean,
	"empty":    func(path string) error { return withJournal(path, func(*journal.DB) error { return nil }) },
	"orphans":  fixtureOrphans,
	"foreign":  fixtureForeign,
	"newer":    fixtureNewer,
	"older":    fixtureOlder,
	"badstate": fixtureBadState,
	"badevent": fixtureBadEvent,
}

func mkjournalMain() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkjournal SCENARIO PATH")
		os.Exit(2)
	}
	f := fixtures[os.Args[1]]
	if f == nil {
		fmt.Fprintf(os.Stderr, "mkjournal: unknown scenario %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "mkjournal:", err)
		os.Exit(1)
	}
}

func withJournal(path string, fn func(*journal.DB) error) error {
	db, err := journal.Open(path, &journal.Options{NoSync: true, NoAutoCompact: true})
	if err != nil {
		return err
	}
	if err := fn(db); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// appender appends events and keeps the first error.
type appender struct {
	db  *journal.DB
	err error
}

func (a *appender) add(e journal.Event) journal.Event {
	if a.err != nil {
		return journal.Event{}
	}
	got, err := a.db.Append(e)
	if err != nil {
		a.err = fmt.Errorf("append %s to slot %s: %w", e.Kind, e.Slot, err)
	}
	return got
}

func str(s string) *string { return &s }

func register(a *appender, slot, name, token string) {
	a.add(journal.Event{Slot: slot, Kind: journal.KindRegistered, URL: "http://tracker.example:8080", Stage: "a",
		Nickname: "spot-" + slot, Token: token, DisplayName: name, Project: "laion-demo", StageName: "CPU"})
}

func fixtureCrash(path string) error {
	return withJournal(path, func(db *journal.DB) error {
		a := &appender{db: db}
		// Slot 0: one job accepted, the next one's completion written but never answered.
		register(a, "0", "blue-fox-17", "0f1e2d3c-4b5a-4697-8877-665544332211")
		a.add(journal.Event{Slot: "0", Kind: journal.KindClaimed, Job: 40, Input: str(`<!json!>{"shard":40}`)})
		a.add(journal.Event{Slot: "0", Kind: journal.KindCompletionPending, Job: 40, Output: str(`<!json!>{"images":1000}`)})
		a.add(journal.Event{Slot: "0", Kind: journal.KindCompletionSettled, Job: 40, Outcome: journal.OutcomeAccepted})
		a.add(journal.Event{Slot: "0", Kind: journal.KindClaimed, Job: 41, Input: str(`<!json!>{"shard":41}`)})
		a.add(journal.Event{Slot: "0", Kind: journal.KindProgress, Progress: "resized 10/10"})
		a.add(journal.Event{Slot: "0", Kind: journal.KindCompletionPending, Job: 41, Output: str(`<!json!>{"images":998,"failed":2}`)})

		// Slot 1: a job held, with a checkpoint and progress.
		register(a, "1", "red-owl-3", "aa11bb22-cc33-4d44-8e55-ff6677889900")
		a.add(journal.Event{Slot: "1", Kind: journal.KindClaimed, Job: 7, Input: str("s3://bucket/part-00007.tar")})
		a.add(journal.Event{Slot: "1", Kind: journal.KindCheckpoint, Job: 7, Checkpoint: []byte(`{"done":512}`)})
		a.add(journal.Event{Slot: "1", Kind: journal.KindProgress, Progress: "downloaded 512/1000"})

		// Slot 2: recovered once, then lost its session with a completion pending.
		register(a, "2", "green-elk-5", "99887766-5544-4332-8211-00ffeeddccbb")
		report, _ := json.Marshal(replay.Report{Slot: "2", Resubmitted: []int{11}})
		a.add(journal.Event{Slot: "2", Kind: journal.KindReplayed, Report: report})
		a.add(journal.Event{Slot: "2", Kind: journal.KindClaimed, Job: 12, Input: str("s3://bucket/part-00012.tar")})
		a.add(journal.Event{Slot: "2", Kind: journal.KindCompletionPending, Job: 12, Output: str("12 images, 0 failed\n")})
		a.add(journal.Event{Slot: "2", Kind: journal.KindSessionLost, Reason: "validateWorker answered False: the tracker timed the worker out"})

		// Slot 3: finished cleanly.
		register(a, "3", "gray-cat-9", "12345678-1234-4234-8234-123456789abc")
		a.add(journal.Event{Slot: "3", Kind: journal.KindClaimed, Job: 5, Input: str("five")})
		a.add(journal.Event{Slot: "3", Kind: journal.KindCompletionPending, Job: 5, Output: str("FIVE")})
		a.add(journal.Event{Slot: "3", Kind: journal.KindCompletionSettled, Job: 5, Outcome: journal.OutcomeAppliedEarlier})
		a.add(journal.Event{Slot: "3", Kind: journal.KindByePending})
		a.add(journal.Event{Slot: "3", Kind: journal.KindClosed})
		return a.err
	})
}

func fixtureClean(path string) error {
	return withJournal(path, func(db *journal.DB) error {
		a := &appender{db: db}
		register(a, "0", "blue-fox-17", "0f1e2d3c-4b5a-4697-8877-665544332211")
		a.add(journal.Event{Slot: "0", Kind: journal.KindClaimed, Job: 1, Input: str("one")})
		a.add(journal.Event{Slot: "0", Kind: journal.KindCompletionPending, Job: 1, Output: str("ONE")})
		a.add(journal.Event{Slot: "0", Kind: journal.KindCompletionSettled, Job: 1, Outcome: journal.OutcomeAccepted})
		a.add(journal.Event{Slot: "0", Kind: journal.KindByePending})
		a.add(journal.Event{Slot: "0", Kind: journal.KindClosed})
		return a.err
	})
}

func fixtureOrphans(path string) error {
	return withJournal(path, func(db *journal.DB) error {
		a := &appender{db: db}
		for i, out := range []string{`<!json!>[1,2,3]`, `<!json!>[1,2,3,4]`} {
			slot := strconv.Itoa(i)
			register(a, slot, "worker-"+slot, fmt.Sprintf("token-%d-abcdefghijkl", i))
			a.add(journal.Event{Slot: slot, Kind: journal.KindClaimed, Job: 42, Input: str(`<!json!>{"n":42}`)})
			a.add(journal.Event{Slot: slot, Kind: journal.KindCompletionPending, Job: 42, Output: str(out)})
			a.add(journal.Event{Slot: slot, Kind: journal.KindCompletionSettled, Job: 42, Outcome: journal.OutcomeOrphaned, Reason: "completeJob answered 404: the worker is gone"})
		}
		a.add(journal.Event{Slot: "1", Kind: journal.KindClaimed, Job: 43, Input: str("x")})
		a.add(journal.Event{Slot: "1", Kind: journal.KindCompletionPending, Job: 43, Output: str("plain text\nsecond line\n")})
		a.add(journal.Event{Slot: "1", Kind: journal.KindSessionLost, Reason: "validateWorker answered False"})
		return a.err
	})
}

func fixtureForeign(path string) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("widgets"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	return joinErr(err, db.Close())
}

func fixtureNewer(path string) error {
	if err := fixtureClean(path); err != nil {
		return err
	}
	return boltUpdate(path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte(strconv.Itoa(journal.FormatVersion+1)))
	})
}

func fixtureOlder(path string) error {
	if err := fixtureClean(path); err != nil {
		return err
	}
	return boltUpdate(path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte(strconv.Itoa(journal.OldestFormatVersion-1)))
	})
}

func fixtureBadState(path string) error {
	if err := fixtureCrash(path); err != nil {
		return err
	}
	return boltUpdate(path, func(tx *bolt.Tx) error {
		// The journal keeps each slot's state in the "states" bucket,
		// keyed by slot name (journal/doc.go).
		b := tx.Bucket([]byte("states"))
		if b == nil {
			return errors.New("fixture: the journal has no states bucket: its layout changed")
		}
		st, err := journal.DecodeState(b.Get([]byte("0")))
		if err != nil {
			return err
		}
		st.Completion = nil // as if the pending completion had vanished
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		return b.Put([]byte("0"), data)
	})
}

func boltUpdate(path string, fn func(*bolt.Tx) error) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	return joinErr(db.Update(fn), db.Close())
}

func joinErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func fixtureBadEvent(path string) error {
	if err := fixtureCrash(path); err != nil {
		return err
	}
	return boltUpdate(path, func(tx *bolt.Tx) error {
		key := make([]byte, 8)
		binary.BigEndian.PutUint64(key, 5)
		return tx.Bucket([]byte("events")).Put(key, []byte("{not json"))
	})
}
