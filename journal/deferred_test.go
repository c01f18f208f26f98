package journal_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

func kindsOf(t *testing.T, db *journal.DB, slot string) string {
	t.Helper()
	var kinds []string
	if err := db.Events(journal.Filter{Slot: slot}, func(e journal.Event) error {
		kinds = append(kinds, string(e.Kind))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(kinds, " ")
}

func TestAppendDeferred(t *testing.T) {
	db := journaltest.MustOpen(t, &journal.Options{ProgressInterval: time.Hour})
	mustAppend(t, db, reg("s"))
	before := db.Stats()
	if err := db.AppendDeferred(journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: 7, Input: ptr("in")}); err != nil {
		t.Fatal(err)
	}
	if got := db.Stats(); got.Commits != before.Commits || got.Deferred != before.Deferred+1 {
		t.Fatalf("stats after AppendDeferred = %+v, before %+v: want no commit, one deferred", got, before)
	}
	// State sees the claim at once; the log does not hold it yet.
	st, err := db.State("s")
	if err != nil {
		t.Fatal(err)
	}
	if st.Job == nil || st.Job.Number != 7 || *st.Job.Input != "in" || st.Job.Stage != "a" || st.LastSeq != 1 {
		t.Fatalf("State after a deferred claim = %+v, want job 7 held, LastSeq 1", st)
	}
	states, _ := db.States()
	if len(states) != 1 || states[0].Job == nil || states[0].Job.Number != 7 {
		t.Fatalf("States after a deferred claim = %+v", states)
	}
	if got := kindsOf(t, db, "s"); got != "registered" {
		t.Fatalf("events before the next commit = %q, want only registered", got)
	}
	// Validated against the state including earlier deferred events.
	if err := db.AppendDeferred(journal.Event{Slot: "s", Kind: journal.KindCheckpoint, Job: 8}); !errors.Is(err, journal.ErrInvalidEvent) {
		t.Fatalf("deferred checkpoint of a job not held: err = %v, want ErrInvalidEvent", err)
	}
	if err := db.AppendDeferred(reg("t")); !errors.Is(err, journal.ErrInvalidEvent) {
		t.Fatalf("deferred registration: err = %v, want ErrInvalidEvent", err)
	}
	if err := db.AppendDeferred(journal.Event{Slot: "nobody", Kind: journal.KindClaimed, Job: 1}); !errors.Is(err, journal.ErrInvalidEvent) {
		t.Fatalf("deferred claim without a session: err = %v, want ErrInvalidEvent", err)
	}
	// The next durable append writes the claim first, in the same commit.
	db.AppendProgress("s", "working")
	cp := mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindCheckpoint, Checkpoint: []byte("c")})
	if cp.Job != 7 || cp.Seq != 4 {
		t.Fatalf("checkpoint = %+v, want job 7 (filled from the deferred claim), seq 4", cp)
	}
	if got, want := kindsOf(t, db, "s"), "registered claimed progress checkpoint"; got != want {
		t.Fatalf("events = %q, want %q", got, want)
	}
	if got := db.Stats(); got.Commits != before.Commits+1 || got.Appends != before.Appends+3 {
		t.Fatalf("stats = %+v, before %+v: want one commit of 3 events", got, before)
	}
	st, _ = db.State("s")
	if st.LastSeq != 4 || st.Job == nil || string(st.Job.Checkpoint) != "c" {
		t.Fatalf("state = %+v", st)
	}
}

func TestAppendDeferredCloseWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	db, err := journal.Open(path, &journal.Options{ProgressInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, reg("s"))
	if err := db.AppendDeferred(journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: 3}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = journaltest.MustOpenPath(t, path, &journal.Options{ReadOnly: true})
	if st, _ := db.State("s"); st.Job == nil || st.Job.Number != 3 || st.LastSeq != 2 {
		t.Fatalf("state after Close = %+v, want job 3 written", st)
	}
}

func TestAppendDeferredFlusherWrites(t *testing.T) {
	db := journaltest.MustOpen(t, &journal.Options{ProgressInterval: 10 * time.Millisecond})
	mustAppend(t, db, reg("s"))
	if err := db.AppendDeferred(journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: 3}); err != nil {
		t.Fatal(err)
	}
	// The flusher writes it within 10ms; a minute only bounds a broken one.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for kinds := kindsOf(t, db, "s"); kinds != "registered claimed"; kinds = kindsOf(t, db, "s") {
		select {
		case <-tick.C:
		case <-timeout.C:
			t.Fatalf("the flusher did not write the deferred claim: %q", kinds)
		}
	}
}

// A deferred event that no longer fits when written is dropped and
// reported, never lost silently.
func TestAppendDeferredRefusedWhenWritten(t *testing.T) {
	logged := make(chan error, 16)
	logger := slog.New(errHandler(logged))
	db := journaltest.MustOpen(t, &journal.Options{ProgressInterval: 10 * time.Millisecond, Logger: logger})
	mustAppend(t, db, reg("s"))
	mustAppend(t, db, reg("t"))

	// Reported by the next Append to the slot, whose event is not written.
	db.DeferUnchecked(journal.Event{Slot: "s", Kind: journal.KindCheckpoint, Job: 99})
	mustAppend(t, db, journal.Event{Slot: "t", Kind: journal.KindClaimed, Job: 1}) // other slots are not affected
	_, err := db.Append(journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: 2})
	var refused, earlier *journal.InvalidEventError
	if !errors.As(err, &refused) || refused.Kind != journal.KindClaimed || !errors.As(refused.Earlier, &earlier) || earlier.Kind != journal.KindCheckpoint {
		t.Fatalf("Append after a refused deferred event: err = %v, want an *InvalidEventError of the claim whose Earlier is the checkpoint's refusal", err)
	}
	if got := kindsOf(t, db, "s"); got != "registered" {
		t.Fatalf("events of s = %q, want only registered", got)
	}
	// Reported once.
	mustAppend(t, db, journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: 2})

	// Logged by the flusher, then returned by Flush.
	db.DeferUnchecked(journal.Event{Slot: "s", Kind: journal.KindCheckpoint, Job: 98})
	// The flusher runs every 10ms; a minute only bounds a broken one.
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	select {
	case err := <-logged:
		var refused *journal.InvalidEventError
		if !errors.As(err, &refused) || refused.Slot != "s" || refused.Kind != journal.KindCheckpoint {
			t.Fatalf("the flusher logged %v, want the refusal of slot s's checkpoint", err)
		}
	case <-timeout.C:
		t.Fatal("the flusher did not log the refusal")
	}
	if err := db.Flush(); !errors.Is(err, journal.ErrInvalidEvent) {
		t.Fatalf("Flush: err = %v, want the refusal", err)
	}
	if err := db.Flush(); err != nil {
		t.Fatalf("second Flush: %v, want nil (reported once)", err)
	}
	if st, _ := db.State("s"); st.Job == nil || st.Job.Number != 2 || st.Job.Checkpoint != nil {
		t.Fatalf("state = %+v", st)
	}
}

// errHandler is a slog.Handler that sends the "err" attribute of each
// record to its channel (dropping it if the channel is full).
type errHandler chan error

func (h errHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h errHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h errHandler) WithGroup(string) slog.Handler            { return h }
func (h errHandler) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
			select {
			case h <- err:
			default:
			}
		}
		return true
	})
	return nil
}

// TestAppendDeferredConcurrent: slots claim deferred and complete durably
// while readers check that a deferred claim is never missing from State
// (commits apply deferred events while readers read).
func TestAppendDeferredConcurrent(t *testing.T) {
	db := journaltest.MustOpen(t, &journal.Options{NoSync: true, ProgressInterval: time.Millisecond})
	const slots, cycles = 4, 60
	for i := 0; i < slots; i++ {
		mustAppend(t, db, reg(fmt.Sprintf("s%d", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, slots)
	for i := 0; i < slots; i++ {
		wg.Add(1)
		go func(slot string) {
			defer wg.Done()
			for j := 1; j <= cycles; j++ {
				if err := db.AppendDeferred(journal.Event{Slot: slot, Kind: journal.KindClaimed, Job: j}); err != nil {
					errs <- err
					return
				}
				for k := 0; k < 3; k++ {
					st, err := db.State(slot)
					if err != nil || st.Job == nil || st.Job.Number != j {
						errs <- fmt.Errorf("%s cycle %d: State = %+v, %v: the deferred claim is missing", slot, j, st.Job, err)
						return
					}
					db.AppendProgress(slot, "p")
				}
				if _, err := db.Append(journal.Event{Slot: slot, Kind: journal.KindCompletionPending, Output: ptr("o")}); err != nil {
					errs <- err
					return
				}
				if _, err := db.Append(journal.Event{Slot: slot, Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted}); err != nil {
					errs <- err
					return
				}
			}
		}(fmt.Sprintf("s%d", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
