package journal_test

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

// failOnce returns a fault that fails the next commit at the given stage
// with err, once armed.
func failOnce(stage bool, err error) (fault func(bool) error, arm func()) {
	var armed atomic.Bool
	return func(after bool) error {
		if after == stage && armed.CompareAndSwap(true, false) {
			return err
		}
		return nil
	}, func() { armed.Store(true) }
}

func TestFailStop(t *testing.T) {
	for _, landed := range []bool{false, true} {
		name := "not-landed"
		if landed {
			name = "landed"
		}
		t.Run(name, func(t *testing.T) {
			db := journaltest.MustOpen(t, nil)
			register(t, db, "s1")
			mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 7, Input: ptr("in")})
			fault, arm := failOnce(landed, syscall.EIO)
			db.SetFault(fault)
			arm()
			_, err := db.Append(journal.Event{Slot: "s1", Kind: journal.KindCompletionPending, Output: ptr("out")})
			if !errors.Is(err, journal.ErrStopped) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("append through a failed fsync: err = %v, want ErrStopped wrapping EIO", err)
			}
			var je *journal.Error
			if !errors.As(err, &je) || je.Path != db.Path() {
				t.Errorf("err = %#v, want a *journal.Error naming the file", err)
			}
			if db.Stopped() == nil {
				t.Fatal("Stopped() = nil after a failed commit")
			}
			// Stopped: nothing is written, nothing retried, even with the
			// fault gone.
			for _, op := range []func() error{
				func() error {
					_, err := db.Append(journal.Event{Slot: "s1", Kind: journal.KindCheckpoint, Checkpoint: []byte("c")})
					return err
				},
				db.Flush,
				func() error { _, _, err := db.Compact(); return err },
			} {
				if err := op(); !errors.Is(err, journal.ErrStopped) || !errors.Is(err, syscall.EIO) {
					t.Fatalf("write to a stopped DB: err = %v, want ErrStopped wrapping the first cause", err)
				}
			}
			if err := db.Reopen(); err != nil {
				t.Fatalf("Reopen: %v", err)
			}
			if db.Stopped() != nil || db.Landed() != landed {
				t.Fatalf("after Reopen: stopped %v, landed %v; want nil, %v", db.Stopped(), db.Landed(), landed)
			}
			st, err := db.State("s1")
			if err != nil {
				t.Fatal(err)
			}
			if pending := st.Completion != nil; pending != landed {
				t.Fatalf("after Reopen the completion is pending: %v, want %v (what the file holds)", pending, landed)
			}
			if !landed {
				mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindCompletionPending, Output: ptr("out")})
			}
			mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted})
			if errs := db.Verify(); len(errs) > 0 {
				t.Fatalf("Verify after Reopen: %v", errs)
			}
		})
	}
}

// A deferred claim taken by a commit that failed is written once: again
// after Reopen if the commit did not reach the file, not again if it did.
func TestFailStopDeferred(t *testing.T) {
	for _, landed := range []bool{false, true} {
		db := journaltest.MustOpen(t, nil)
		register(t, db, "s1")
		if err := db.AppendDeferred(journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 9, Input: ptr("in")}); err != nil {
			t.Fatal(err)
		}
		fault, arm := failOnce(landed, syscall.EIO)
		db.SetFault(fault)
		arm()
		if err := db.Flush(); !errors.Is(err, journal.ErrStopped) {
			t.Fatalf("landed=%v: flush: %v, want ErrStopped", landed, err)
		}
		if err := db.Reopen(); err != nil {
			t.Fatalf("landed=%v: Reopen: %v", landed, err)
		}
		if err := db.Flush(); err != nil {
			t.Fatalf("landed=%v: flush after Reopen: %v", landed, err)
		}
		claims := 0
		if err := db.Events(journal.Filter{Slot: "s1"}, func(e journal.Event) error {
			if e.Kind == journal.KindClaimed {
				claims++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if claims != 1 {
			t.Errorf("landed=%v: %d claim events in the file, want 1", landed, claims)
		}
		if errs := db.Verify(); len(errs) > 0 {
			t.Fatalf("landed=%v: Verify: %v", landed, errs)
		}
	}
}

// A write that would pass MaxSize, or leave less than MinFree on the disk,
// is refused with ErrFull: nothing written, the DB not stopped.
func TestFull(t *testing.T) {
	db := journaltest.MustOpen(t, &journal.Options{MaxSize: 256 << 10})
	register(t, db, "s1")
	mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 7, Input: ptr("in")})
	var fe *journal.FullError
	// A checkpoint larger than the limit: refused, nothing written.
	_, err := db.Append(journal.Event{Slot: "s1", Kind: journal.KindCheckpoint, Checkpoint: []byte(strings.Repeat("x", 300<<10))})
	if !errors.Is(err, journal.ErrFull) || !errors.As(err, &fe) || fe.Limit != 256<<10 {
		t.Fatalf("a checkpoint larger than MaxSize: err = %v, want ErrFull naming the limit", err)
	}
	if db.Stopped() != nil {
		t.Fatalf("ErrFull stopped the DB: %v", db.Stopped())
	}
	// Writes that fit still go through.
	mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindProgress, Progress: "p"})
	// Checkpoints that grow: only the newest is kept, but each needs pages
	// the last one did not free, until the file is full.
	for i := 0; i < 100 && err == nil; i++ {
		_, err = db.Append(journal.Event{Slot: "s1", Kind: journal.KindCheckpoint, Checkpoint: []byte(strings.Repeat("x", (16+4*i)<<10))})
		if size := fileSize(t, db.Path()); size > 256<<10 {
			t.Fatalf("checkpoint %d: the file is %d bytes, over its limit", i, size)
		}
	}
	if !errors.Is(err, journal.ErrFull) || !errors.As(err, &fe) || fe.Limit != 256<<10 {
		t.Fatalf("checkpoints past MaxSize: err = %v, want ErrFull naming the limit", err)
	}
	if db.Stopped() != nil {
		t.Fatalf("ErrFull stopped the DB: %v", db.Stopped())
	}

	db2 := journaltest.MustOpen(t, &journal.Options{MinFree: 1 << 62})
	_, err = db2.Append(journal.Event{Slot: "s1", Kind: journal.KindRegistered, URL: "http://t", Stage: "a",
		Nickname: "n", Token: "0123456789abcdef", DisplayName: "w1", Project: "p", StageName: "CPU"})
	if !errors.As(err, &fe) || fe.Free < 0 || fe.Limit != 1<<62 {
		t.Fatalf("append with MinFree over the disk's free space: err = %v, want a *FullError for free space", err)
	}
	if db2.Stopped() != nil {
		t.Fatal("ErrFull stopped the DB")
	}
}

// Only the newest checkpoint of a job is kept, whatever lies between
// checkpoints, and the file stops growing with them.
func TestNewestCheckpointOnly(t *testing.T) {
	db := journaltest.MustOpen(t, nil)
	register(t, db, "s1")
	mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 7, Input: ptr("in")})
	big := strings.Repeat("c", 256<<10)
	for i := 0; i < 200; i++ {
		db.AppendProgress("s1", "step")
		mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindCheckpoint, Checkpoint: []byte(big + string(rune('a'+i%26)))})
		if i%7 == 0 {
			mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindProgress, Progress: "p"})
		}
	}
	checkpoints := 0
	if err := db.Events(journal.Filter{Slot: "s1"}, func(e journal.Event) error {
		if e.Kind == journal.KindCheckpoint {
			checkpoints++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if checkpoints != 1 {
		t.Fatalf("%d checkpoints kept, want 1 (the newest)", checkpoints)
	}
	st, err := db.State("s1")
	if err != nil || st.Job == nil || string(st.Job.Checkpoint) != big+string(rune('a'+199%26)) {
		t.Fatalf("state after checkpoints: err %v, job %v", err, st.Job != nil)
	}
	if errs := db.Verify(); len(errs) > 0 {
		t.Fatalf("Verify: %v", errs)
	}
	fi, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	// 200 checkpoints of 256 KiB are 50 MiB; one (in its event and the
	// state) and the pages freed in between are a few MiB.
	if fi.Size() > 8<<20 {
		t.Fatalf("file is %d bytes after 200 checkpoints of 256 KiB, want under 8 MiB", fi.Size())
	}
}

// Reopen refuses a path that no longer names the journal that stopped
// (a disk unmounted under it): it would create a new, empty journal.
func TestReopenRefusesAnotherFile(t *testing.T) {
	db := journaltest.MustOpen(t, nil)
	register(t, db, "s1")
	fault, arm := failOnce(false, syscall.EIO)
	db.SetFault(fault)
	arm()
	if _, err := db.Append(journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 1}); !errors.Is(err, journal.ErrStopped) {
		t.Fatalf("append: %v, want ErrStopped", err)
	}
	saved := db.Path() + ".saved"
	// The stopped DB lets go of its file soon after the failure (see
	// dropHandle); Windows renames no file that is open, so wait for it.
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := os.Rename(db.Path(), saved)
		if err == nil {
			break
		}
		if runtime.GOOS != "windows" || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := db.Reopen(); !errors.Is(err, journal.ErrStopped) || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("Reopen with the file gone: %v, want a refusal saying so", err)
	}
	if _, err := os.Stat(db.Path()); err == nil {
		t.Fatal("Reopen created a new journal where the old one was")
	}
	if err := os.WriteFile(db.Path(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Reopen(); !errors.Is(err, journal.ErrStopped) || !strings.Contains(err.Error(), "another file") {
		t.Fatalf("Reopen with another file at the path: %v, want a refusal", err)
	}
	if err := os.Rename(saved, db.Path()); err != nil {
		t.Fatal(err)
	}
	if err := db.Reopen(); err != nil {
		t.Fatalf("Reopen with the journal back: %v", err)
	}
	mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 1})
}

// Writable answers what the next small commit will meet: while it says
// writable, an append of a record of a few KiB goes through, and once such
// an append is refused for space, it says full. (A Writable that passed a
// disk the claim's own commit then met full made dcworker's spells of an
// unwritable journal end and begin again at every probe.)
func TestWritableAgreesWithAppend(t *testing.T) {
	// Limits that fall on and between the file's page boundaries.
	for max := int64(192 << 10); max <= 320<<10; max += 12345 {
		writableAgreesWithAppend(t, max)
	}
}

func writableAgreesWithAppend(t *testing.T, max int64) {
	t.Helper()
	db := journaltest.MustOpen(t, &journal.Options{MaxSize: max, Retention: -1, NoSync: true})
	register(t, db, "s1")
	input := strings.Repeat("i", 3<<10)
	appends := 0
	for ; appends < 10000; appends++ {
		w := db.Writable()
		_, err := db.Append(journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: appends + 1, Input: ptr(input + strconv.Itoa(appends))})
		if err != nil {
			if !errors.Is(err, journal.ErrFull) {
				t.Fatalf("MaxSize %d, append %d: %v, want nil or ErrFull", max, appends, err)
			}
			if w == nil {
				t.Fatalf("MaxSize %d: append %d refused (%v) right after Writable said writable", max, appends, err)
			}
			break
		}
	}
	if appends == 10000 {
		t.Fatalf("%d appends of 3 KiB fit in a journal of at most %d bytes", appends, max)
	}
	if err := db.Writable(); !errors.Is(err, journal.ErrFull) {
		t.Fatalf("MaxSize %d: Writable after an append was refused for space = %v, want ErrFull", max, err)
	}
}

// Writable runs beside commits that grow the file and remap it (run with
// -race: it once read the mapping's address outside a transaction).
func TestWritableDuringGrowth(t *testing.T) {
	db := journaltest.MustOpen(t, &journal.Options{Retention: -1, NoSync: true})
	register(t, db, "s1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		input := strings.Repeat("g", 64<<10)
		for i := 1; i <= 200; i++ {
			if _, err := db.Append(journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: i, Input: ptr(input + strconv.Itoa(i))}); err != nil {
				t.Errorf("append %d: %v", i, err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		if err := db.Writable(); err != nil {
			t.Fatalf("Writable while the file grows: %v", err)
		}
	}
}
