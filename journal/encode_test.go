package journal_test

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

// sameAsJSON fails the test unless enc(v) gives exactly json.Marshal(v)'s
// bytes, or both fail.
func sameAsJSON[T any](t *testing.T, what string, enc func(T) ([]byte, error), v T) {
	t.Helper()
	got, gerr := enc(v)
	want, werr := json.Marshal(v)
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("%s: error %v, json.Marshal's %v\nvalue %#v", what, gerr, werr, v)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from json.Marshal:\n got %s\nwant %s\nvalue %#v", what, got, want, v)
	}
}

// oddStrings are strings that exercise every escape of encoding/json.
var oddStrings = []string{
	"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr",
	"\b\f\x00\x01\x1f\x7f", "line\u2028sep\u2029para", "héllo wörld ✓ 🚀", "bad \xff utf8 \xc3",
	"\xed\xa0\x80 surrogate", "trunc \xe2\x82", "<!json!>{\"n\":1}", "\u00e9\u0301", "\ufffd",
}

// randString returns a random string: often plain, sometimes with escapes,
// random bytes or odd runes.
func randString(rng *rand.Rand) string {
	switch rng.Intn(6) {
	case 0:
		return ""
	case 1:
		return oddStrings[rng.Intn(len(oddStrings))]
	case 2:
		b := make([]byte, rng.Intn(24))
		rng.Read(b)
		return string(b)
	case 3:
		var sb strings.Builder
		for range rng.Intn(12) {
			sb.WriteRune(rune(rng.Intn(0x2100)))
		}
		return sb.String()
	default:
		return "w-" + strings.Repeat("x", rng.Intn(40))
	}
}

var zones = []*time.Location{
	time.UTC, time.FixedZone("east", 5*3600+30*60), time.FixedZone("west", -8*3600),
	time.FixedZone("sec", 3600+17), time.FixedZone("far", 30*3600), time.FixedZone("farw", -24*3600),
}

// randTime returns a random time: mostly UTC now-ish with or without
// nanoseconds, sometimes zero, in a zone, or outside years 0..9999.
func randTime(rng *rand.Rand) time.Time {
	switch rng.Intn(8) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(rng.Int63n(1<<40)-1<<39, rng.Int63n(1e9)).In(zones[rng.Intn(len(zones))])
	case 2:
		return time.Date(10000+rng.Intn(5), 1, 2, 3, 4, 5, 6, time.UTC)
	case 3:
		return time.Date(-rng.Intn(3), 1, 2, 3, 4, 5, 0, time.UTC)
	case 4:
		return time.Date(2026, 11, 27, 0, 0, 0, rng.Intn(1000)*1000, time.UTC)
	default:
		return time.Unix(1_790_000_000+rng.Int63n(1e6), rng.Int63n(1e9)).UTC()
	}
}

// perturb changes some of e's fields to random values.
func perturbEvent(rng *rand.Rand, e journal.Event) journal.Event {
	if rng.Intn(3) != 0 {
		return e
	}
	ps := func(s *string) {
		if rng.Intn(3) == 0 {
			*s = randString(rng)
		}
	}
	for _, p := range []*string{&e.Slot, &e.URL, &e.Stage, &e.Nickname, &e.Token, &e.DisplayName, &e.Project,
		&e.StageName, &e.Progress, &e.Outcome, &e.Reason, (*string)(&e.Kind)} {
		ps(p)
	}
	if rng.Intn(4) == 0 {
		s := randString(rng)
		e.Input = &s
	}
	if rng.Intn(4) == 0 {
		s := randString(rng)
		e.Output = &s
	}
	if rng.Intn(4) == 0 {
		e.Checkpoint = make([]byte, rng.Intn(50))
		rng.Read(e.Checkpoint)
	}
	if rng.Intn(4) == 0 {
		e.Job = rng.Intn(1<<31) - 1<<30
		e.Version = rng.Intn(5) - 1
		e.Seq, e.OrphanSeq = rng.Uint64(), rng.Uint64()>>uint(rng.Intn(64))
	}
	if rng.Intn(3) == 0 {
		e.Time = randTime(rng)
	}
	if rng.Intn(6) == 0 {
		e.Report = json.RawMessage([]string{`{"a": [1, 2]}`, `{"x":"<&>"}`, `[]`, `{bad`, ` {"s":"\u2028"} `}[rng.Intn(5)])
	}
	return e
}

// perturbState changes some of s's times and strings.
func perturbState(rng *rand.Rand, s journal.State) journal.State {
	if rng.Intn(3) != 0 {
		return s
	}
	s.LastTime = randTime(rng)
	if rng.Intn(3) == 0 {
		s.Progress = randString(rng)
	}
	if s.Session != nil && rng.Intn(2) == 0 {
		ss := *s.Session
		ss.Since, ss.Token, ss.URL = randTime(rng), randString(rng), randString(rng)
		if rng.Intn(3) == 0 {
			ss = journal.Session{}
		}
		s.Session = &ss
	}
	if s.Job != nil && rng.Intn(2) == 0 {
		j := *s.Job
		j.Since = randTime(rng)
		in := randString(rng)
		j.Input = &in
		s.Job = &j
	}
	if s.Completion != nil && rng.Intn(2) == 0 {
		c := *s.Completion
		c.Since, c.Job.Since, c.Output = randTime(rng), randTime(rng), randString(rng)
		s.Completion = &c
	}
	if rng.Intn(8) == 0 {
		s.FlagPending, s.ByePending, s.Closed = rng.Intn(2) == 0, rng.Intn(2) == 0, rng.Intn(2) == 0
	}
	if rng.Intn(8) == 0 {
		s.LastReport = json.RawMessage(`{"resumed": [1]}`)
	}
	return s
}

// TestEncodeMatchesJSON: the hand-written record encoders give
// json.Marshal's bytes for the events and states of random histories
// (journaltest.RandomEvent folded with journal.Fold), as written and with
// random strings, times and fields mixed in: 20,000 events (1,500 under
// the race detector or -short), then every rune below U+3000 and every
// byte.
func TestEncodeMatchesJSON(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	n := 20000
	if raceEnabled || testing.Short() {
		n = 1500 // the race detector makes encoding/json many times slower
	}
	var states [8]journal.State
	for i := range states {
		states[i].Slot = "s" + string(rune('0'+i))
	}
	var seq uint64
	base := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		k := rng.Intn(len(states))
		e := journaltest.RandomEvent(rng, states[k], nil, 20)
		seq++
		e.Version, e.Seq = journal.FormatVersion, seq
		e.Time = base.Add(time.Duration(rng.Int63n(int64(time.Hour))))
		if rng.Intn(2) == 0 {
			e.Time = e.Time.Truncate(time.Second)
		}
		sameAsJSON(t, "event", journal.EncodeEvent, e)
		states[k] = journal.Fold(states[k], e)
		sameAsJSON(t, "state", journal.EncodeState, states[k])
		sameAsJSON(t, "perturbed event", journal.EncodeEvent, perturbEvent(rng, e))
		sameAsJSON(t, "perturbed state", journal.EncodeState, perturbState(rng, states[k]))
		if rng.Intn(50) == 0 {
			states[k] = journal.State{Slot: states[k].Slot}
		}
	}
	sameAsJSON(t, "zero event", journal.EncodeEvent, journal.Event{})
	sameAsJSON(t, "zero state", journal.EncodeState, journal.State{})
	sameAsJSON(t, "empty session", journal.EncodeState, journal.State{Slot: "s", Session: &journal.Session{}})
	sameAsJSON(t, "empty completion", journal.EncodeState, journal.State{Slot: "s", Completion: &journal.Completion{}})
	empty := ""
	sameAsJSON(t, "empty input", journal.EncodeEvent, journal.Event{Input: &empty, Output: &empty, Checkpoint: []byte{}})
	sameAsJSON(t, "empty job", journal.EncodeState, journal.State{Job: &journal.Job{Input: &empty, Checkpoint: []byte{}}})
	for _, s := range oddStrings {
		sameAsJSON(t, "odd string", journal.EncodeEvent, journal.Event{Slot: s, Reason: s, Input: &s})
	}
	for r := rune(0); r < 0x3000; r++ {
		s := string(r)
		sameAsJSON(t, "rune", journal.EncodeEvent, journal.Event{Slot: s})
	}
	for b := 0; b < 256; b++ {
		s := string([]byte{byte(b)})
		sameAsJSON(t, "byte", journal.EncodeEvent, journal.Event{Slot: s})
	}
}

// FuzzEncodeMatchesJSON: for any field values, the hand-written record
// encoders give json.Marshal's bytes (or both fail).
func FuzzEncodeMatchesJSON(f *testing.F) {
	f.Add("s00", "checkpoint", "tok<&>", "in\u2028put", []byte("ckpt"), int64(1_790_000_000), int64(123456789), 0, 7, uint64(9), true, "")
	f.Add("s\xff", "x\x00y", "", "", []byte{}, int64(-62135596800), int64(0), 3600+17, -1, uint64(0), false, `{"a": 1}`)
	f.Add("é", "\b\f\t", "\"\\", "", []byte{0xff, 0}, int64(253402300800), int64(1), -86400, 1<<40, uint64(1<<63), true, "[1, <]")
	f.Fuzz(func(t *testing.T, slot, str, tok, input string, ckpt []byte, sec, nsec int64, offset int, job int, seq uint64, flag bool, report string) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("z", offset))
		if offset == 0 {
			tm = tm.UTC()
		}
		e := journal.Event{Version: job % 3, Seq: seq, Time: tm, Slot: slot, Kind: journal.Kind(str),
			URL: str, Stage: tok, Nickname: input, Token: tok, DisplayName: slot, Project: str, StageName: input,
			Job: job, Progress: str, Checkpoint: ckpt, Outcome: tok, Reason: input, OrphanSeq: seq / 3}
		if flag {
			e.Input, e.Output = &input, &str
		}
		if report != "" {
			e.Report = json.RawMessage(report)
		}
		sameAsJSON(t, "event", journal.EncodeEvent, e)
		s := journal.State{Slot: slot, FlagPending: flag, ByePending: !flag, Closed: job%2 == 0,
			Progress: str, LastSeq: seq, LastTime: tm}
		if job%3 != 0 {
			s.Session = &journal.Session{URL: str, Token: tok, Since: tm}
		}
		if job%5 != 0 {
			s.Job = &journal.Job{Number: job, Stage: tok, Since: tm, Checkpoint: ckpt}
			if flag {
				s.Job.Input = &input
			}
		}
		if job%7 != 0 {
			s.Completion = &journal.Completion{Job: journal.Job{Number: -job, Input: e.Input, Checkpoint: ckpt}, Output: input, Seq: seq, Since: tm}
		}
		if report != "" && utf8.ValidString(report) {
			s.LastReport = json.RawMessage(report)
		}
		sameAsJSON(t, "state", journal.EncodeState, s)
	})
}

// BenchmarkEncodeRecords: the hand-written encoders against json.Marshal
// on the records a BenchmarkAppendSlots commit writes per append (a
// checkpoint event and the state of a slot holding a checkpointed job).
func BenchmarkEncodeRecords(b *testing.B) {
	now := time.Now().UTC()
	e := journal.Event{Version: journal.FormatVersion, Seq: 123456, Time: now, Slot: "s07", Kind: journal.KindCheckpoint,
		Job: 8, Checkpoint: []byte(strings.Repeat("c", 64))}
	s := journal.State{Slot: "s07", Session: &journal.Session{Stage: "a", Token: "0123456789abcdef", Since: now},
		Job: &journal.Job{Number: 8, Stage: "a", Since: now, Checkpoint: e.Checkpoint}, LastSeq: 123456, LastTime: now}
	for _, bc := range []struct {
		name string
		fn   func() ([]byte, error)
	}{
		{"event/json", func() ([]byte, error) { return json.Marshal(e) }},
		{"event/hand", func() ([]byte, error) { return journal.EncodeEvent(e) }},
		{"state/json", func() ([]byte, error) { return json.Marshal(s) }},
		{"state/hand", func() ([]byte, error) { return journal.EncodeState(s) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
