package journal_test

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

// TestFoldEqualsStoredState appends thousands of random valid event
// sequences (one per slot, interleaved) and checks that each slot's stored
// state equals the fold of the events Append returned, with and without
// pruning, and that Verify (which re-folds base state + remaining events)
// passes.
func TestFoldEqualsStoredState(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retention int
		seqs      int
		maxLen    int
	}{
		{"prune-hard", 1, 1500, 60},
		{"prune-some", 4, 1000, 60},
		{"keep-all", -1, 500, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(tc.retention) + 42))
			db := journaltest.MustOpen(t, &journal.Options{NoSync: true, Retention: tc.retention, ProgressInterval: time.Hour})
			m := journaltest.NewModel()
			remaining := make(map[string]int)
			var slots []string
			for i := 0; i < tc.seqs; i++ {
				s := fmt.Sprintf("slot-%04d", i)
				slots = append(slots, s)
				remaining[s] = 1 + rng.Intn(tc.maxLen)
				m.States[s] = journal.State{Slot: s}
			}
			for len(slots) > 0 {
				i := rng.Intn(len(slots))
				slot := slots[i]
				e := journaltest.RandomEvent(rng, m.States[slot], m.SlotOrphans(slot), 20)
				switch rng.Intn(20) {
				case 0, 1:
					// Written in the transaction of e (another slot's: the
					// model must see it before pruning can drop it).
					other := slots[rng.Intn(len(slots))]
					if other != slot {
						db.AppendProgress(other, fmt.Sprintf("buffered %d", rng.Intn(100)))
					}
				case 2:
					db.AppendProgress(slot, fmt.Sprintf("flushed %d", rng.Intn(100)))
					if err := db.Flush(); err != nil {
						t.Fatal(err)
					}
					readNew(t, db, m)
				}
				got, err := db.Append(e)
				if err != nil {
					t.Fatalf("Append(%v): %v", e, err)
				}
				// Buffered progress was written before e: fold what was
				// written (read it back from the journal).
				readNew(t, db, m)
				if m.States[slot].LastSeq != got.Seq {
					t.Fatalf("slot %s: last seq %d, Append returned %d", slot, m.States[slot].LastSeq, got.Seq)
				}
				if remaining[slot]--; remaining[slot] == 0 {
					slots[i] = slots[len(slots)-1]
					slots = slots[:len(slots)-1]
				}
			}
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
			readNew(t, db, m)
			for _, err := range m.Check(db) {
				t.Error(err)
			}
			if errs := db.Verify(); errs != nil {
				t.Fatalf("Verify: %v", errs)
			}
			// Reopen: same states.
			path := db.Path()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db2, err := journal.Open(path, &journal.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			for _, err := range m.Check(db2) {
				t.Error(err)
			}
		})
	}
}

// readNew folds the events appended since the model's last into it.
func readNew(t *testing.T, db *journal.DB, m *journaltest.Model) {
	t.Helper()
	if err := db.Events(journal.Filter{FromSeq: lastSeq(m) + 1}, func(w journal.Event) error {
		m.Apply(w)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func lastSeq(m *journaltest.Model) uint64 {
	var max uint64
	for _, s := range m.States {
		if s.LastSeq > max {
			max = s.LastSeq
		}
	}
	return max
}
