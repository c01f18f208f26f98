package journal_test

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

// TestFoldEqualsStoredState appends thousands of random valid event
// sequences (one per slot, interleaved, up to 32 slots appending at once so
// that they share transactions) and checks that each slot's stored state
// equals the fold of its events, with and without pruning, that orphans
// match, and that Verify (which re-folds base state + remaining events)
// passes. 2,200 sequences (1,100 under the race detector);
// JOURNAL_TEST_SCALE=n runs n times 2,200.
func TestFoldEqualsStoredState(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retention int
		seqs      int
		maxLen    int
	}{
		{"prune-hard", 1, 900, 30},
		{"prune-some", 3, 900, 30},
		{"keep-all", -1, 400, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(tc.retention) + 42))
			db := journaltest.MustOpen(t, &journal.Options{NoSync: true, Retention: tc.retention, ProgressInterval: time.Hour})
			m := journaltest.NewModel()
			remaining := make(map[string]int)
			var active []string
			n := tc.seqs * scale()
			if raceEnabled && os.Getenv("JOURNAL_TEST_SCALE") == "" {
				n /= 2
			}
			for i := 0; i < n; i++ {
				s := fmt.Sprintf("slot-%04d", i)
				active = append(active, s)
				remaining[s] = 1 + rng.Intn(tc.maxLen)
				m.States[s] = journal.State{Slot: s}
			}
			for len(active) > 0 {
				k := min(32, len(active))
				rng.Shuffle(len(active), func(i, j int) { active[i], active[j] = active[j], active[i] })
				round := active[:k]
				inRound := make(map[string]bool, k)
				for _, s := range round {
					inRound[s] = true
				}
				// Buffered progress: of a slot not in this round (written in
				// this round's transaction), or of one in the round, flushed
				// at once.
				switch rng.Intn(4) {
				case 0:
					if other := active[rng.Intn(len(active))]; !inRound[other] {
						db.AppendProgress(other, fmt.Sprintf("buffered %d", rng.Intn(100)))
					}
				case 1:
					db.AppendProgress(round[0], fmt.Sprintf("flushed %d", rng.Intn(100)))
					if err := db.Flush(); err != nil {
						t.Fatal(err)
					}
					readNew(t, db, m)
				}
				events := make([]journal.Event, k)
				for i, s := range round {
					events[i] = journaltest.RandomEvent(rng, m.States[s], m.SlotOrphans(s), 20)
				}
				results := make([]journal.Event, k)
				errs := make([]error, k)
				var wg sync.WaitGroup
				for i := range events {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[i], errs[i] = db.Append(events[i])
					}()
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("Append(%v): %v", events[i], err)
					}
				}
				readNew(t, db, m)
				for i, s := range round {
					if m.States[s].LastSeq != results[i].Seq {
						t.Fatalf("slot %s: last seq %d, Append returned %d", s, m.States[s].LastSeq, results[i].Seq)
					}
				}
				kept := active[:0]
				for _, s := range active {
					if inRound[s] {
						remaining[s]--
					}
					if remaining[s] > 0 {
						kept = append(kept, s)
					}
				}
				active = kept
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
			if tc.retention < 0 {
				checkJobFilter(t, db)
			}
			// Reopened read-only: the same.
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
	if err := db.Events(journal.Filter{FromSeq: m.LastSeq + 1}, func(w journal.Event) error {
		m.Apply(w)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// scale multiplies the sizes of the randomized tests (JOURNAL_TEST_SCALE).
func scale() int {
	if n, err := strconv.Atoi(os.Getenv("JOURNAL_TEST_SCALE")); err == nil && n > 0 {
		return n
	}
	return 1
}

// checkJobFilter compares Events by job with a scan of all events.
func checkJobFilter(t *testing.T, db *journal.DB) {
	t.Helper()
	want := make(map[int][]uint64)
	db.Events(journal.Filter{}, func(e journal.Event) error {
		if e.Job != 0 {
			want[e.Job] = append(want[e.Job], e.Seq)
		}
		return nil
	})
	for job, seqs := range want {
		var got []uint64
		if err := db.Events(journal.Filter{Job: job}, func(e journal.Event) error {
			got = append(got, e.Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(seqs) {
			t.Errorf("events of job %d: got %v, want %v", job, got, seqs)
		}
	}
}
