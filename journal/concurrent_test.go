package journal_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

// TestConcurrentSlots runs many slots appending durably at once (sharing
// group commits), buffered progress, readers, Verify and Compact, under the
// race detector; then checks every slot's state against its own events.
func TestConcurrentSlots(t *testing.T) {
	const slots, cycles = 16, 10
	db := journaltest.MustOpen(t, &journal.Options{Retention: 5, ProgressInterval: 2 * time.Millisecond})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < slots; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := fmt.Sprintf("w%02d", i)
			mustAppend(t, db, reg(slot))
			for j := 1; j <= cycles; j++ {
				job := i*1000 + j
				mustAppend(t, db, claim(slot, job))
				db.AppendProgress(slot, fmt.Sprintf("job %d started", job))
				mustAppend(t, db, journal.Event{Slot: slot, Kind: journal.KindCheckpoint, Checkpoint: []byte{byte(j)}})
				db.AppendProgress(slot, fmt.Sprintf("job %d done", job))
				mustAppend(t, db, complete(slot))
				mustAppend(t, db, journal.Event{Slot: slot, Kind: journal.KindCompletionSettled, Outcome: journal.OutcomeAccepted})
			}
			mustAppend(t, db, journal.Event{Slot: slot, Kind: journal.KindByePending})
			mustAppend(t, db, journal.Event{Slot: slot, Kind: journal.KindClosed})
		}()
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := db.States(); err != nil {
				t.Error(err)
			}
			db.Events(journal.Filter{Slot: "w03"}, func(journal.Event) error { return nil })
			if errs := db.Verify(); errs != nil {
				t.Error(errs)
			}
		}
	}()
	go func() {
		defer readers.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			if _, _, err := db.Compact(); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	for i := 0; i < slots; i++ {
		slot := fmt.Sprintf("w%02d", i)
		st, err := db.State(slot)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Closed || st.Session != nil || st.Job != nil || st.Progress != "" {
			t.Errorf("slot %s final state %+v", slot, st.Redacted())
		}
	}
}
