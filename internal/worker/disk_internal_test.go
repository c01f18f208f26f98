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
	"github.com/distcompute/distcompute-go/internal/statusserver"
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
	e.disk = statusserver.NewDiskState(statusserver.DiskConfig{Path: "/j.db", Log: log, Deadline: time.Hour, Expired: func(time.Time, error) {}})
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
	e.disk.Failed(0, "the output of job 7 (3 bytes)", errFull, time.Second, time.Now())
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
