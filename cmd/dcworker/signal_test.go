package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lineWatcher is stderr for run: it tells when a line containing a word was written.
type lineWatcher struct {
	mu   sync.Mutex
	text strings.Builder
	word string
	seen chan struct{}
	once sync.Once
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text.Write(p)
	if strings.Contains(w.text.String(), w.word) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.String()
}

// TestSIGTERMNothingToDrain: SIGTERM while the tracker cannot be reached at start
// (nothing claimed, nothing pending) stops dcworker at once with exit 0, not after
// the grace period; and says nothing about draining commands it does not have.
func TestSIGTERMNothingToDrain(t *testing.T) {
	stderr := &lineWatcher{word: "unreachable", seen: make(chan struct{})}
	sigs := make(chan os.Signal, 2)
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), sigs, []string{"run", "--tracker", "http://127.0.0.1:1", "--grace", "10m",
			"--journal", filepath.Join(t.TempDir(), "j.db"), "--", "/bin/true"}, discard{}, stderr)
	}()
	select {
	case <-stderr.seen:
	case err := <-done:
		t.Fatalf("dcworker returned %v before the tracker was found unreachable:\n%s", err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("no unreachable line within a minute:\n%s", stderr.String())
	}
	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if code := exitCode(err, discard{}); code != 0 {
			t.Errorf("exit %d (%v), want 0", code, err)
		}
	case <-time.After(time.Minute): // the grace period is 10 minutes: this is not it
		t.Fatalf("dcworker did not stop within a minute of SIGTERM with nothing to drain:\n%s", stderr.String())
	}
	if n := strings.Count(stderr.String(), "unreachable"); n != 1 {
		t.Errorf("%d unreachable lines, want 1:\n%s", n, stderr.String())
	}
}
