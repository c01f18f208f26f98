package postmortem_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	bolt "go.etcd.io/bbolt"
)

// mustOpen makes a journal with one slot holding a job and one whose pending
// completion was orphaned, and checks after the test that it is still sound.
func mustOpen(tb testing.TB) *journal.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "journal.db")
	db, err := journal.Open(path, &journal.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if errs := db.Verify(); errs != nil {
			tb.Errorf("journal not sound after the test: %v", errs)
		}
		db.Close()
	})
	in, out := `<!json!>{"n":1}`, `<!json!>{"done":true}`
	for _, e := range []journal.Event{
		{Slot: "0", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: "secret-token-0123456789", DisplayName: "w0"},
		{Slot: "0", Kind: journal.KindClaimed, Job: 1, Input: &in},
		{Slot: "1", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: "secret-token-9876543210", DisplayName: "w1"},
		{Slot: "1", Kind: journal.KindClaimed, Job: 2, Input: &in},
		{Slot: "1", Kind: journal.KindCompletionPending, Job: 2, Output: &out},
		{Slot: "1", Kind: journal.KindSessionLost, Reason: "gone"},
	} {
		if _, err := db.Append(e); err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

func TestInspectColor(t *testing.T) {
	db := mustOpen(t)
	for _, color := range []bool{false, true} {
		var b bytes.Buffer
		if err := postmortem.Inspect(&b, db, postmortem.InspectOptions{Color: color}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), "\x1b["); got != color {
			t.Errorf("Color %v: ANSI escapes present = %v\n%s", color, got, b.String())
		}
		if strings.Contains(b.String(), "secret-token-0123456789") {
			t.Errorf("token shown in full:\n%s", b.String())
		}
	}
}

func TestInspectErrors(t *testing.T) {
	db := mustOpen(t)
	if err := postmortem.Inspect(&bytes.Buffer{}, db, postmortem.InspectOptions{Slot: "nope"}); !errors.Is(err, postmortem.ErrNoSuchSlot) {
		t.Errorf("Inspect of an unknown slot: %v, want ErrNoSuchSlot", err)
	}
	if err := postmortem.Inspect(&bytes.Buffer{}, db, postmortem.InspectOptions{Job: 99}); !errors.Is(err, postmortem.ErrNoSuchJob) {
		t.Errorf("Inspect of an unknown job: %v, want ErrNoSuchJob", err)
	}
}

func TestSummarize(t *testing.T) {
	db := mustOpen(t)
	s, err := postmortem.Summarize(db, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Slots) != 2 || s.Slots[0].Session != postmortem.SessionOpen || s.Slots[1].Session != postmortem.SessionLost {
		t.Fatalf("slots = %+v", s.Slots)
	}
	if j := s.Slots[0].Job; j == nil || j.Number != 1 || j.InputKind != "json" || j.InputBytes != len(`{"n":1}`) {
		t.Errorf("slot 0 job = %+v", j)
	}
	if len(s.Orphans) != 1 || s.Orphans[0].Job != 2 || s.Orphans[0].OutputKind != "json" {
		t.Errorf("orphans = %+v", s.Orphans)
	}
	if s.Slots[1].Worker != "w1" {
		t.Errorf("lost slot's worker = %q, want the last registration's w1", s.Slots[1].Worker)
	}
}

func TestExportAck(t *testing.T) {
	db := mustOpen(t)
	dir := filepath.Join(t.TempDir(), "out")
	if _, err := postmortem.Export(db, postmortem.ExportOptions{Dir: dir}); !errors.Is(err, postmortem.ErrNothingSelected) {
		t.Fatalf("Export without a choice: %v", err)
	}
	idx, err := postmortem.Export(db, postmortem.ExportOptions{Dir: dir, Orphans: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Outputs) != 1 || idx.Outputs[0].File != "a-000002.json" {
		t.Fatalf("outputs = %+v", idx.Outputs)
	}
	data, err := os.ReadFile(filepath.Join(dir, "a-000002.json"))
	if err != nil || string(data) != "{\"done\":true}\n" {
		t.Fatalf("a-000002.json = %q, %v", data, err)
	}
	var onDisk postmortem.ExportIndex
	raw, _ := os.ReadFile(filepath.Join(dir, postmortem.IndexFile))
	if err := json.Unmarshal(raw, &onDisk); err != nil || len(onDisk.Outputs) != 1 || onDisk.SchemaVersion != 1 {
		t.Fatalf("index.json = %s (%v)", raw, err)
	}
	n, err := postmortem.Ack(db, idx.Outputs)
	if err != nil || n != 1 {
		t.Fatalf("Ack = %d, %v; want 1", n, err)
	}
	if n, err := postmortem.Ack(db, idx.Outputs); err != nil || n != 0 {
		t.Fatalf("second Ack = %d, %v; want 0", n, err)
	}
	if o, _ := db.Orphans(); len(o) != 0 {
		t.Fatalf("orphans after Ack: %+v", o)
	}
}

func TestPrintReplay(t *testing.T) {
	var b bytes.Buffer
	err := postmortem.PrintReplay(&b, []replay.Report{
		{Slot: "slot-0", Resubmitted: []int{41}, Released: []int{7}},
		{Slot: "slot-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "SLOT    WHAT RECOVERY DID\n" +
		"slot-0  completion of job 41 resubmitted and accepted\n" +
		"        job 7 released: the tracker re-opened it for another worker\n" +
		"slot-1  nothing to do\n"
	if b.String() != want {
		t.Errorf("PrintReplay:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A stored state that differs from its events, in the token among other fields:
// Verify names the slot and the fields, and quotes neither token.
func TestVerifyQuotesNoToken(t *testing.T) {
	const token, forged = "secret-token-0123456789", "forged-token-5555555555"
	path := filepath.Join(t.TempDir(), "journal.db")
	db, err := journal.Open(path, &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	in := "x"
	for _, e := range []journal.Event{
		{Slot: "0", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: token},
		{Slot: "0", Kind: journal.KindClaimed, Job: 1, Input: &in},
	} {
		if _, err := db.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("states")) // slot -> State (journal/doc.go)
		st, err := journal.DecodeState(b.Get([]byte("0")))
		if err != nil {
			return err
		}
		st.Session.Token, st.Job = forged, nil
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		return b.Put([]byte("0"), data)
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	ro, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var b bytes.Buffer
	problems, err := postmortem.Verify(&b, ro)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) == 0 {
		t.Fatalf("Verify found nothing wrong:\n%s", b.String())
	}
	var damage *journal.CorruptError
	if !errors.As(problems[0], &damage) || damage.Slot != "0" {
		t.Errorf("problem %v: want a *journal.CorruptError of slot \"0\"", problems[0])
	}
	if want := `  - slot "0": the stored state differs from the fold of its events in job, session.token`; !strings.Contains(b.String(), want+"\n") {
		t.Errorf("Verify wrote:\n%s\nwant the line %q", b.String(), want)
	}
	texts := b.String()
	for _, p := range problems {
		texts += p.Error()
	}
	for _, secret := range []string{token, forged, token[:8], forged[:8]} {
		if strings.Contains(texts, secret) {
			t.Errorf("Verify quotes %q:\n%s", secret, texts)
		}
	}
}

// TestSummarizeLifeEnds: progress is not shown next to a job claimed after it, a
// drain is shown with its reason, and an orphan whose job another slot completed
// since is not listed.
func TestSummarizeLifeEnds(t *testing.T) {
	db, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in, out := "in", "out"
	for _, e := range []journal.Event{
		{Slot: "slot-0", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: "tok-0-0123456789", DisplayName: "w0"},
		{Slot: "slot-0", Kind: journal.KindClaimed, Job: 1, Input: &in},
		{Slot: "slot-0", Kind: journal.KindProgress, Job: 1, Progress: "job 1 at 90%"},
		{Slot: "slot-0", Kind: journal.KindCompletionPending, Job: 1, Output: &out},
		{Slot: "slot-0", Kind: journal.KindSessionLost, Reason: "timed out"}, // job 1's output orphaned
		{Slot: "slot-0", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: "tok-0-bis-0123456", DisplayName: "w0b"},
		{Slot: "slot-0", Kind: journal.KindClaimed, Job: 2, Input: &in}, // no progress for job 2 yet
		{Slot: "slot-1", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: "tok-1-0123456789", DisplayName: "w1"},
		{Slot: "slot-1", Kind: journal.KindClaimed, Job: 1, Input: &in},
		{Slot: "slot-1", Kind: journal.KindCompletionPending, Job: 1, Output: &out},
		{Slot: "slot-1", Kind: journal.KindCompletionSettled, Job: 1, Outcome: journal.OutcomeAccepted},
		{Slot: "slot-1", Kind: journal.KindDrained, Reason: "SIGTERM"},
	} {
		if _, err := db.Append(e); err != nil {
			t.Fatalf("%s: %v", e.Kind, err)
		}
	}
	s, err := postmortem.Summarize(db, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.Slots[0].Job == nil || s.Slots[0].Job.Number != 2 || s.Slots[0].Progress != "" {
		t.Errorf("slot-0 shows job %+v with progress %q, want job 2 and no progress (job 1's is stale)", s.Slots[0].Job, s.Slots[0].Progress)
	}
	if d := s.Slots[1].Drained; d == nil || d.Reason != "SIGTERM" {
		t.Errorf("slot-1 drained = %+v, want SIGTERM", d)
	}
	if s.Slots[0].Drained != nil {
		t.Errorf("slot-0 shown as drained: %+v", s.Slots[0].Drained)
	}
	if len(s.Orphans) != 0 {
		t.Errorf("orphans %+v listed, want none: slot-1 completed job 1 since", s.Orphans)
	}
	var b bytes.Buffer
	if err := postmortem.Inspect(&b, db, postmortem.InspectOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "drained") || !strings.Contains(b.String(), "SIGTERM (a clean stop, not a crash)") {
		t.Errorf("inspect does not show the drain:\n%s", b.String())
	}
}
