package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writes (a log that
// timer goroutines write to), for this package's tests, internal and
// external.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *SyncBuffer) lines() []string {
	return strings.Split(strings.TrimSpace(s.String()), "\n")
}

var errFull = fmt.Errorf("client: %w: journal is full: %w", client.ErrNotRecorded, syscall.ENOSPC)

// The journal's state changes make one log line each; attempts that
// change nothing make none; claims wait while something is held.
func TestDiskStateSpell(t *testing.T) {
	var buf SyncBuffer
	d := newDiskState("/j.db", slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, func(time.Time, error) { t.Error("deadline passed") })
	if claim, _, _ := d.mayClaim(0); !claim {
		t.Fatal("a writable journal refuses a claim")
	}
	woken := d.failed(0, "the output of job 7 (3 bytes)", errFull, time.Second, time.Now())
	d.failed(0, "the output of job 7 (3 bytes)", errFull, 2*time.Second, time.Now()) // a retry: no line
	js := d.snapshot()
	if js.Writable || len(js.Held) != 1 || js.Failures != 2 || js.NextRetry == nil || !strings.Contains(js.Error, "no space left") {
		t.Fatalf("status while full: %+v", js)
	}
	claim, probe, wait := d.mayClaim(1)
	if claim || probe || wait == nil {
		t.Fatalf("slot 1 may claim (%v) or probe (%v) while slot 0 holds an output", claim, probe)
	}
	d.failed(1, "the output of job 9 (3 bytes)", errFull, time.Second, time.Now()) // one more held: one line
	d.ok(1, time.Now())                                                            // slot 1's got through: slot 0 still waits
	select {
	case <-woken:
	default:
		t.Error("a write that got through did not wake the other holder")
	}
	if d.snapshot().Writable {
		t.Fatal("writable again while slot 0 still holds its output")
	}
	d.ok(0, time.Now())
	select {
	case <-wait:
	default:
		t.Fatal("the end of the spell did not wake the waiting claim")
	}
	if js := d.snapshot(); !js.Writable || len(js.Held) != 0 || js.Error != "" {
		t.Fatalf("status after the spell: %+v", js)
	}
	lines := buf.lines()
	want := []string{"cannot be written: no job is claimed until it can", "still cannot be written: one more thing held in memory",
		"took a record held in memory; others still wait", "writable again"}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant it to say %q", i+1, lines[i], w)
		}
	}
}

// A write that began before the spell and is reported after it began (it
// reached the disk just before another slot's failed) does not end the
// spell: on a loaded machine that made a second spell at once, with a
// "writable again" line after 0 s between the two. Nor does a failure
// begun before the spell ended start another.
func TestDiskStateSuccessBeforeSpell(t *testing.T) {
	var buf SyncBuffer
	d := newDiskState("/j.db", slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, func(time.Time, error) {})
	began := time.Now() // slot 1 starts a claim
	d.failed(0, "", errFull, time.Second, time.Now())
	d.ok(1, began) // slot 1's claim is reported after slot 0's failure
	if js := d.snapshot(); js.Writable {
		t.Fatalf("a write begun before the spell ended it: %+v\n%s", js, buf.String())
	}
	if claim, _, _ := d.mayClaim(1); claim {
		t.Fatal("slot 1 may claim during the spell")
	}
	began = time.Now()  // slot 1 starts a write
	d.ok(0, time.Now()) // the probe, begun during the spell
	if js := d.snapshot(); !js.Writable {
		t.Fatalf("a probe begun during the spell did not end it: %+v", js)
	}
	// The other way round: slot 1's write failed before the probe found
	// the journal writable, and is reported after.
	d.failed(1, "the output of job 9 (3 bytes)", errFull, time.Second, began)
	if js := d.snapshot(); !js.Writable {
		t.Fatalf("a write begun before the spell ended started a new one: %+v", js)
	}
	d.failed(1, "the output of job 9 (3 bytes)", errFull, time.Second, time.Now()) // its next attempt
	if js := d.snapshot(); js.Writable || len(js.Held) != 1 {
		t.Fatalf("a write begun after the spell ended failed, and no new spell: %+v", js)
	}
	lines := buf.lines()
	want := []string{"cannot be written", "writable again", "cannot be written"}
	if len(lines) != len(want) {
		t.Fatalf("log lines:\n%s", buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant it to say %q", i+1, lines[i], w)
		}
	}
}

// With nothing held, one slot at a time probes the journal; the others
// wait for the end of the spell.
func TestDiskStateProbe(t *testing.T) {
	d := newDiskState("/j.db", slog.New(slog.DiscardHandler), time.Hour, func(time.Time, error) {})
	d.failed(0, "", errFull, time.Second, time.Now()) // a refused claim: nothing held
	if _, probe, _ := d.mayClaim(0); !probe {
		t.Fatal("slot 0 may not probe with nothing held")
	}
	if claim, probe, wait := d.mayClaim(1); claim || probe || wait == nil {
		t.Fatal("a second slot probes too")
	}
	d.drop(0)
	if _, probe, _ := d.mayClaim(1); !probe {
		t.Fatal("the prober's role is not handed on")
	}
}

// The deadline fires once the journal stayed unwritable that long, not
// after a spell that ended.
func TestDiskStateDeadline(t *testing.T) {
	fired := make(chan error, 1)
	d := newDiskState("/j.db", slog.New(slog.DiscardHandler), 50*time.Millisecond, func(_ time.Time, err error) { fired <- err })
	d.failed(0, "x", errFull, time.Second, time.Now())
	d.ok(0, time.Now())
	d.failed(0, "x", errFull, time.Second, time.Now())
	select {
	case err := <-fired:
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("deadline with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the deadline never passed")
	}
	if got := len(fired); got != 0 {
		t.Errorf("the deadline fired %d more times", got)
	}
}

func TestParseJournalDeadline(t *testing.T) {
	cfg, _, err := ParseRunArgs([]string{"--tracker", "http://h", "--", "sh"}, discard{}, discard{})
	if err != nil || cfg.JournalDeadline != DefaultJournalDeadline {
		t.Fatalf("default --journal-deadline: %v (%v), want %v", cfg.JournalDeadline, err, DefaultJournalDeadline)
	}
	cfg, _, err = ParseRunArgs([]string{"--tracker", "http://h", "--journal-deadline", "90s", "--", "sh"}, discard{}, discard{})
	if err != nil || cfg.JournalDeadline != 90*time.Second {
		t.Fatalf("--journal-deadline 90s: %v (%v)", cfg.JournalDeadline, err)
	}
	if _, _, err := ParseRunArgs([]string{"--tracker", "http://h", "--journal-deadline", "0s", "--", "sh"}, discard{}, discard{}); !errors.Is(err, ErrUsage) {
		t.Fatalf("--journal-deadline 0s: %v, want a usage error", err)
	}
}

// /status and /metrics show the journal's state.
func TestDiskStateServed(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	e := &engine{cfg: Config{TrackerURL: "http://127.0.0.1:1", Stage: "a", Journal: "/j.db"}, log: log, m: newMetrics(1),
		reach: newReachability("http://127.0.0.1:1", log)}
	e.initDrain()
	e.disk = newDiskState("/j.db", log, time.Hour, func(time.Time, error) {})
	get := func(path string) string {
		rec := httptest.NewRecorder()
		e.statusHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Body.String()
	}
	if body := get("/status"); !strings.Contains(body, `"journal_writable": true`) || !strings.Contains(body, `"held_in_memory": []`) {
		t.Errorf("/status while writable:\n%s", body)
	}
	if body := get("/metrics"); !strings.Contains(body, "dcworker_journal_writable 1") || !strings.Contains(body, "dcworker_journal_write_failures_total 0") {
		t.Errorf("/metrics while writable lacks the journal's gauges")
	}
	e.disk.failed(0, "the output of job 7 (3 bytes)", errFull, time.Second, time.Now())
	var st Status
	if err := json.Unmarshal([]byte(get("/status")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Writable || !strings.Contains(st.Error, "no space left on device") || len(st.Held) != 1 || st.Since == nil || st.Deadline == nil || st.NextRetry == nil || st.Failures != 1 {
		t.Errorf("/status while full: %+v", st.JournalStatus)
	}
	body := get("/metrics")
	for _, want := range []string{"dcworker_journal_writable 0", "dcworker_journal_write_failures_total 1", "dcworker_held_in_memory 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics while full lacks %q", want)
		}
	}
}
