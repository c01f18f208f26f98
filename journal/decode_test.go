package journal

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fastSeeds are records decodeEventFast reads (from encodeEvent) and
// records it must leave to encoding/json.
func fastSeeds() [][]byte {
	in, out := "job input \u00e9 1", "output"
	at := time.Date(2026, 1, 2, 3, 4, 5, 600700000, time.UTC)
	var seeds [][]byte
	for _, e := range []Event{
		{Version: 4, Seq: 1, Time: at, Slot: "s", Kind: KindRegistered, URL: "http://127.0.0.1:8080", Stage: "a",
			Nickname: "n", Token: "0123456789abcdef", DisplayName: "d", Project: "p", StageName: "sn"},
		{Version: 4, Seq: 2, Time: at, Slot: "s", Kind: KindClaimed, Job: 17, Input: &in},
		{Version: 4, Seq: 3, Time: at.Truncate(time.Second), Slot: "s", Kind: KindProgress, Job: 17, Progress: "step 1 of 1"},
		{Version: 4, Seq: 4, Time: at, Slot: "s", Kind: KindCompletionPending, Job: 17, Output: &out},
		{Version: 4, Seq: 5, Time: at, Slot: "s", Kind: KindCompletionSettled, Job: 17, Outcome: OutcomeAccepted},
		{Version: 4, Seq: 6, Time: at, Slot: "s", Kind: KindOrphanResolved, Job: -3, OrphanSeq: 4, Outcome: OutcomeResubmitted, Reason: "r"},
		{Version: 4, Seq: 7, Time: at, Slot: "s", Kind: KindFailed, Reason: "a \"quoted\" <reason>\n"},
		{Version: 4, Seq: 8, Time: at, Slot: "s", Kind: KindCheckpoint, Job: 1, Checkpoint: []byte("cp")},
		{Version: 4, Seq: 9, Time: at, Slot: "s", Kind: KindReplayed, Report: json.RawMessage(`{"a":1}`)},
		{Version: 4, Seq: 10, Time: at.In(time.FixedZone("x", 3600)), Slot: "s", Kind: KindClosed},
		{Version: 4, Seq: 11, Slot: "s", Kind: KindByePending},
	} {
		b, err := encodeEvent(e)
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, b)
	}
	for _, s := range []string{
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed","job":1,"job":2}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed","reason":"x","job":1}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed","Job":1}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed","input":null}`,
		`{"v":4,"seq":01,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed"}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05.500Z","slot":"s","kind":"closed"}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s\xff","kind":"closed"}`,
		`{"v":-0,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed"}`,
		`{"v":4,"seq":99999999999999999999,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed"}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"new-kind"}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed"} `,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"closed"`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"failed","reason":"\ud83d\ude00"}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"failed","reason":"\x"}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"failed","reason":"\u12"}`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"failed","reason":"a\"`,
		`{"v":4,"seq":1,"time":"2026-01-02T03:04:05Z","slot":"s","kind":"failed","reason":"\u00e9\/\b\f\r\t\u2028"}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// The events a job cycle writes decode through the fast path; records it
// cannot read exactly as encoding/json does go to encoding/json.
func TestDecodeEventFastUsed(t *testing.T) {
	seeds := fastSeeds()
	for i, b := range seeds {
		want := i < 7 || strings.Contains(string(b), `\u00e9`) || strings.Contains(string(b), `"kind":"bye-pending"`) || strings.Contains(string(b), "new-kind")
		if _, ok := decodeEventFast(b); ok != want {
			t.Errorf("seed %d: fast path %v, want %v: %s", i, ok, want, b)
		}
	}
}

// FuzzDecodeEventFast: whatever decodeEventFast accepts, encoding/json
// decodes to the same Event.
func FuzzDecodeEventFast(f *testing.F) {
	for _, b := range fastSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeEventFast(data)
		if !ok {
			return
		}
		var slow Event
		if err := strictUnmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, data)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path and encoding/json differ on %q:\n%#v\n%#v", data, fast, slow)
		}
	})
}
