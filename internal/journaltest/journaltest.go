// Package journaltest helps test code that uses package journal: a
// MustOpen that checks the journal after every test, and a generator of
// random valid event sequences with a model to check them against.
package journaltest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/distcompute/distcompute-go/journal"
)

// MustOpen opens a journal at a new path in tb.TempDir() (opts may be nil)
// and registers a cleanup that verifies and closes it, failing the test on
// any error.
func MustOpen(tb testing.TB, opts *journal.Options) *journal.DB {
	tb.Helper()
	return MustOpenPath(tb, filepath.Join(tb.TempDir(), "journal.db"), opts)
}

// MustOpenPath is MustOpen at a given path.
func MustOpenPath(tb testing.TB, path string, opts *journal.Options) *journal.DB {
	tb.Helper()
	db, err := journal.Open(path, opts)
	if err != nil {
		tb.Fatalf("journal.Open: %v", err)
	}
	tb.Cleanup(func() {
		for _, err := range db.Verify() {
			if !errors.Is(err, journal.ErrClosed) {
				tb.Errorf("journal.Verify after test: %v", err)
			}
		}
		if err := db.Close(); err != nil {
			tb.Errorf("journal.Close: %v", err)
		}
	})
	return db
}

// Model is what a journal should hold, computed by folding the events
// Append returned: each slot's state and the unresolved orphans.
type Model struct {
	States  map[string]journal.State
	Orphans map[uint64]journal.Orphan
	LastSeq uint64 // highest seq applied
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{States: make(map[string]journal.State), Orphans: make(map[uint64]journal.Orphan)}
}

// Apply folds an appended event (as Append returned it) into the model.
func (m *Model) Apply(e journal.Event) {
	s := m.States[e.Slot]
	switch {
	case e.Kind == journal.KindCompletionSettled && e.Outcome == journal.OutcomeOrphaned && s.Completion != nil,
		e.Kind == journal.KindSessionLost && s.Completion != nil:
		c := s.Completion
		m.Orphans[c.Seq] = journal.Orphan{Seq: c.Seq, Slot: e.Slot, Stage: c.Job.Stage, Job: c.Job.Number, Input: c.Job.Input, Output: c.Output, Time: e.Time}
	case e.Kind == journal.KindOrphanResolved:
		delete(m.Orphans, e.OrphanSeq)
	}
	m.States[e.Slot] = journal.Fold(s, e)
	if e.Seq > m.LastSeq {
		m.LastSeq = e.Seq
	}
}

// SlotOrphans returns the seqs of the slot's unresolved orphans, sorted.
func (m *Model) SlotOrphans(slot string) []uint64 {
	var seqs []uint64
	for seq, o := range m.Orphans {
		if o.Slot == slot {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

// Check compares the journal's states and orphans with the model.
func (m *Model) Check(db *journal.DB) []error {
	var errs []error
	for slot, want := range m.States {
		got, err := db.State(slot)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !got.Equal(want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			errs = append(errs, fmt.Errorf("slot %q state:\n got  %s\n want %s", slot, g, w))
		}
	}
	orphans, err := db.Orphans()
	if err != nil {
		return append(errs, err)
	}
	if len(orphans) != len(m.Orphans) {
		errs = append(errs, fmt.Errorf("%d orphans, want %d", len(orphans), len(m.Orphans)))
	}
	for _, o := range orphans {
		w, ok := m.Orphans[o.Seq]
		if !ok {
			errs = append(errs, fmt.Errorf("unexpected orphan %d", o.Seq))
			continue
		}
		if o.Slot != w.Slot || o.Job != w.Job || o.Output != w.Output || !o.Time.Equal(w.Time) {
			errs = append(errs, fmt.Errorf("orphan %d = %+v, want %+v", o.Seq, o, w))
		}
	}
	return errs
}

// RandomEvent returns a random event that Append accepts for a slot in
// state s whose unresolved orphans are orphans. Job numbers are drawn from
// 1..jobs so that different slots share them.
func RandomEvent(rng *rand.Rand, s journal.State, orphans []uint64, jobs int) journal.Event {
	e := journal.Event{Slot: s.Slot}
	pick := func(kinds ...journal.Kind) journal.Kind { return kinds[rng.Intn(len(kinds))] }
	str := func(prefix string) *string {
		if rng.Intn(8) == 0 {
			return nil
		}
		v := prefix + strconv.Itoa(rng.Intn(1000))
		if rng.Intn(4) == 0 {
			v = `<!json!>{"n":` + strconv.Itoa(rng.Intn(1000)) + `}`
		}
		return &v
	}
	var k journal.Kind
	switch {
	case s.Session == nil:
		kinds := []journal.Kind{journal.KindRegistered, journal.KindRegistered, journal.KindRegistered, journal.KindReplayed, journal.KindFailed}
		if len(orphans) > 0 {
			kinds = append(kinds, journal.KindOrphanResolved, journal.KindOrphanResolved)
		}
		k = pick(kinds...)
	case s.ByePending:
		k = pick(journal.KindClosed, journal.KindClosed, journal.KindSessionLost, journal.KindReplayed, journal.KindProgress)
	case s.Completion != nil:
		k = pick(journal.KindCompletionSettled, journal.KindCompletionSettled, journal.KindCompletionSettled, journal.KindSessionLost, journal.KindProgress, journal.KindReplayed)
	case s.FlagPending:
		k = pick(journal.KindFlagSettled, journal.KindFlagSettled, journal.KindSessionLost, journal.KindProgress)
	case s.Job != nil:
		k = pick(journal.KindCheckpoint, journal.KindCompletionPending, journal.KindCompletionPending, journal.KindCompletionPending,
			journal.KindFlagPending, journal.KindReleased, journal.KindProgress, journal.KindProgress, journal.KindFailed,
			journal.KindByePending, journal.KindClaimed)
	default:
		kinds := []journal.Kind{journal.KindClaimed, journal.KindClaimed, journal.KindClaimed, journal.KindProgress,
			journal.KindByePending, journal.KindSessionLost, journal.KindReplayed}
		if len(orphans) > 0 {
			kinds = append(kinds, journal.KindOrphanResolved)
		}
		k = pick(kinds...)
	}
	e.Kind = k
	switch k {
	case journal.KindRegistered:
		e.URL = "http://tracker.test"
		e.Stage = string(rune('a' + rng.Intn(3)))
		e.Nickname = "nick"
		e.Token = fmt.Sprintf("tok-%08x-%08x", rng.Uint32(), rng.Uint32())
		e.DisplayName = "worker-" + strconv.Itoa(rng.Intn(100))
		e.Project = "proj"
		e.StageName = "CPU"
	case journal.KindClaimed:
		e.Job = 1 + rng.Intn(jobs)
		e.Input = str("input-")
	case journal.KindProgress:
		e.Progress = "progress " + strconv.Itoa(rng.Intn(100)) + "%"
	case journal.KindCheckpoint:
		e.Job = s.Job.Number
		e.Checkpoint = []byte("ckpt-" + strconv.Itoa(rng.Intn(1000)))
	case journal.KindCompletionPending:
		e.Job = s.Job.Number
		out := "output-" + strconv.Itoa(rng.Intn(1000))
		e.Output = &out
	case journal.KindCompletionSettled:
		e.Job = s.Completion.Job.Number
		e.Outcome = []string{journal.OutcomeAccepted, journal.OutcomeAccepted, journal.OutcomeAppliedEarlier, journal.OutcomeOrphaned}[rng.Intn(4)]
	case journal.KindFlagPending:
		e.Job = s.Job.Number
	case journal.KindFlagSettled:
		e.Job = s.Job.Number
		e.Outcome = []string{journal.OutcomeAccepted, journal.OutcomeAppliedEarlier, journal.OutcomeFailed, journal.OutcomeOrphaned}[rng.Intn(4)]
		e.Reason = "because"
	case journal.KindReleased:
		e.Job = s.Job.Number
		e.Reason = "release on restart"
	case journal.KindSessionLost:
		e.Reason = "validateWorker answered False"
	case journal.KindReplayed:
		e.Report = json.RawMessage(`{"slot":"` + s.Slot + `","resumed":[` + strconv.Itoa(rng.Intn(9)) + `]}`)
	case journal.KindOrphanResolved:
		e.OrphanSeq = orphans[rng.Intn(len(orphans))]
		e.Outcome = []string{journal.OutcomeResubmitted, journal.OutcomeExported, journal.OutcomeAcknowledged}[rng.Intn(3)]
	case journal.KindFailed:
		e.Reason = "exit status 1"
		if s.Job != nil {
			e.Job = s.Job.Number
		}
	}
	return e
}
