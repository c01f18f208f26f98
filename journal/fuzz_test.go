package journal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/distcompute/distcompute-go/journal"
)

var eventSeeds = []string{
	`{"v":1,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"registered","url":"http://t","stage":"a","token":"abc"}`,
	`{"v":1,"seq":2,"time":"2026-01-02T03:04:05.123456789Z","slot":"s","kind":"claimed","job":7,"input":"<!json!>{\"a\":1}"}`,
	`{"v":1,"seq":3,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"checkpoint","job":7,"checkpoint":"AAEC"}`,
	`{"v":1,"seq":4,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"completion-pending","job":7,"output":"out"}`,
	`{"v":1,"seq":5,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"replayed","report":{"resumed":[1,2]}}`,
	`{"v":2,"seq":5,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"replayed"}`,
	`{"v":1,"seq":0,"slot":"s","kind":"closed"}`,
	`{"v":1,"seq":9,"slot":"","kind":"closed"}`,
	`{"v":1,"seq":9,"slot":"s","kind":"nope"}`,
	`{"v":1,"seq":9,"slot":"s","kind":"closed"} trailing`,
	`[]`, `null`, ``, `{`, `{"v":"1"}`,
}

// FuzzDecodeEvent: the record decoder never panics, and what it accepts
// re-encodes to a record that decodes to the same event.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := journal.DecodeEvent(data)
		if err != nil {
			if !errors.Is(err, journal.ErrCorrupt) && !errors.Is(err, journal.ErrNewerFormat) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrNewerFormat", err)
			}
			return
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("accepted event does not re-encode: %v", err)
		}
		e2, err := journal.DecodeEvent(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, again)
		}
		third, _ := json.Marshal(e2)
		if !bytes.Equal(again, third) {
			t.Fatalf("round trip changed the event:\n%s\n%s", again, third)
		}
		_ = journal.Fold(journal.State{}, e) // Fold accepts anything decodable
		_ = e.Redacted().String()
	})
}

// FuzzDecodeState: the state decoder never panics and round-trips.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"slot":"s","session":{"token":"t","since":"2026-01-02T03:04:05Z"},"job":{"number":3,"input":"x","since":"2026-01-02T03:04:05Z","checkpoint":"AAE="},"progress":"p","last_seq":9}`))
	f.Add([]byte(`{"slot":"s","completion":{"job":{"number":1},"output":"o","seq":4},"flag_pending":true,"last_report":{"a":[1]}}`))
	f.Add([]byte(`{"slot":""}`))
	f.Add([]byte(`{"slot":"s","last_report":{`))
	f.Add([]byte(`nonsense`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := journal.DecodeState(data)
		if err != nil {
			if !errors.Is(err, journal.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("accepted state does not re-encode: %v", err)
		}
		s2, err := journal.DecodeState(again)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v\n%s", err, again)
		}
		if !s.Equal(s2) {
			t.Fatalf("round trip changed the state:\n%s", again)
		}
		_ = s.Redacted()
		_ = journal.Fold(s, journal.Event{Slot: "x", Seq: 1, Kind: journal.KindCheckpoint, Job: 3})
	})
}

// TestFoldIsPure: Fold never changes what its input state points to.
func TestFoldIsPure(t *testing.T) {
	in := "in"
	s := journal.State{Slot: "s", Session: &journal.Session{Token: "t", Stage: "a"},
		Job: &journal.Job{Number: 1, Input: &in, Checkpoint: []byte("c0")}}
	before, _ := json.Marshal(s)
	for _, e := range []journal.Event{
		{Slot: "s", Kind: journal.KindCheckpoint, Job: 1, Checkpoint: []byte("c1")},
		{Slot: "s", Kind: journal.KindCompletionPending, Job: 1},
		{Slot: "s", Kind: journal.KindClosed},
		{Slot: "s", Kind: journal.KindSessionLost},
		{Slot: "s", Kind: journal.KindRegistered, Token: "u"},
	} {
		_ = journal.Fold(s, e)
		if after, _ := json.Marshal(s); !bytes.Equal(before, after) {
			t.Fatalf("Fold(%s) changed its input: %s -> %s", e.Kind, before, after)
		}
	}
}
