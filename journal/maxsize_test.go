package journal_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

// The file never grows past Options.MaxSize, whatever the records: job
// cycles with a 64 KiB output each (dcworker's TestJournalMaxSize once saw
// a journal limited to 1 MiB reach 4 MiB: the free pages the size check
// counted were scattered, and an output needs contiguous ones, so bbolt
// grew the file instead). Limits on and off bbolt's power-of-two mapping
// sizes.
func TestMaxSizeBoundsFile(t *testing.T) {
	output := strings.Repeat("x", 64<<10)
	for _, max := range []int64{768 << 10, 1 << 20, 1536 << 10, 2 << 20} {
		db := journaltest.MustOpen(t, &journal.Options{MaxSize: max, NoSync: true})
		register(t, db, "s1")
		cycles := 0
		var err error
		for job := 1; job <= 200 && err == nil; job++ {
			for _, e := range []journal.Event{
				{Slot: "s1", Kind: journal.KindClaimed, Job: job, Input: ptr("in")},
				{Slot: "s1", Kind: journal.KindProgress, Progress: "half"},
				{Slot: "s1", Kind: journal.KindCompletionPending, Output: ptr(output)},
				{Slot: "s1", Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted},
			} {
				if _, err = db.Append(e); err != nil {
					break
				}
				if size := fileSize(t, db.Path()); size > max {
					t.Fatalf("MaxSize %d: the file is %d bytes after job %d's %s", max, size, job, e.Kind)
				}
			}
			if err == nil {
				cycles++
			}
		}
		var fe *journal.FullError
		if !errors.As(err, &fe) || fe.Limit != max {
			t.Fatalf("MaxSize %d: %d cycles of 64 KiB, then %v; want ErrFull naming the limit", max, cycles, err)
		}
		// Retention keeps 100 jobs: the outputs fill the file. It holds at
		// least a third of what MaxSize would hold in outputs alone. On
		// Windows the file takes its mapping's size, a power of two: what
		// it can fill is the largest one under MaxSize.
		usable := max
		if runtime.GOOS == "windows" {
			for usable = 32 << 10; usable*2 <= max; usable *= 2 {
			}
		}
		if min := int(usable / (64 << 10) / 3); cycles < min {
			t.Errorf("MaxSize %d: %d cycles of 64 KiB fit, want at least %d", max, cycles, min)
		}
		if db.Stopped() != nil {
			t.Fatalf("MaxSize %d: ErrFull stopped the DB: %v", max, db.Stopped())
		}
		if errs := db.Verify(); len(errs) > 0 {
			t.Fatalf("MaxSize %d: Verify after ErrFull: %v", max, errs)
		}
		if size := fileSize(t, db.Path()); size > max {
			t.Fatalf("MaxSize %d: the file is %d bytes", max, size)
		}
		t.Logf("MaxSize %d: %d cycles, file %d bytes: %v", max, cycles, fileSize(t, db.Path()), err)
	}
}

// A write refused for MaxSize while the file's free pages, scattered, would
// make room has the flusher compact the file; the write then fits. A job
// whose checkpoints grow scatters them: only its newest checkpoint is kept
// (in its event and in the slot's state), each a run of pages a little
// longer than the runs the last one freed.
func TestMaxSizeCompactsWhenFreePagesWouldFit(t *testing.T) {
	const max = 1 << 20
	db := journaltest.MustOpen(t, &journal.Options{MaxSize: max, NoSync: true, ProgressInterval: 20 * time.Millisecond})
	register(t, db, "s1")
	mustAppend(t, db, journal.Event{Slot: "s1", Kind: journal.KindClaimed, Job: 1, Input: ptr("in")})
	var err error
	n := 0
	for n = 40 << 10; n < 240<<10; n += 6 << 10 {
		e := journal.Event{Slot: "s1", Kind: journal.KindCheckpoint, Checkpoint: []byte(strings.Repeat("c", n))}
		if _, err = db.Append(e); err == nil {
			continue
		}
		if !errors.Is(err, journal.ErrFull) {
			t.Fatalf("checkpoint of %d bytes: %v", n, err)
		}
		before := fileSize(t, db.Path())
		deadline := time.Now().Add(20 * time.Second)
		for errors.Is(err, journal.ErrFull) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			_, err = db.Append(e)
		}
		if err != nil {
			t.Fatalf("a checkpoint of %d bytes refused at a file of %d bytes, then after the flusher could compact: %v", n, before, err)
		}
		t.Logf("a checkpoint of %d bytes refused at a file of %d bytes, written after compaction: %d bytes", n, before, fileSize(t, db.Path()))
		break
	}
	if n >= 240<<10 {
		t.Fatal("no checkpoint was refused: the test no longer fills the file")
	}
	if size := fileSize(t, db.Path()); size > max {
		t.Fatalf("the file is %d bytes, over its limit of %d", size, max)
	}
	if errs := db.Verify(); len(errs) > 0 {
		t.Fatalf("Verify: %v", errs)
	}
}
