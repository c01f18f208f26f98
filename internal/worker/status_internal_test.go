package worker

import (
	"log/slog"
	"net"
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

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://alice:S3cretPass@tracker:8080/x": "http://alice:xxxxx@tracker:8080/x",
		"https://tracker.example/":               "https://tracker.example/",
		"http://bob@tracker":                     "http://bob@tracker",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// ":PORT" is allowed, and said: the listener's address is unspecified.
func TestEveryInterface(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9090}, true},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9090}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}, false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 9090}, false},
	} {
		if got := everyInterface(tt.addr); got != tt.want {
			t.Errorf("everyInterface(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}
