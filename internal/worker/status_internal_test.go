package worker

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// More than maxSnapshots snapshots at once are answered 503, not queued.
func TestJournalSnapshotsBounded(t *testing.T) {
	e := &engine{cfg: Config{StatusJournal: true}, log: slog.New(slog.DiscardHandler), snapshots: make(chan struct{}, maxSnapshots)}
	for range maxSnapshots {
		e.snapshots <- struct{}{} // snapshots in progress
	}
	rec := httptest.NewRecorder()
	e.serveJournal(rec, httptest.NewRequest(http.MethodGet, "/journal", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("snapshot beyond the bound: %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
}
