package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/trackertest"
)

// lockedBuffer is a log destination the test reads while the proxy writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestNoClaimWhileOutputHeld: while one program's output is held in memory
// because the journal refuses it (here an output bigger than the journal's
// size limit, as on a nearly full disk), another program's newJob waits
// instead of claiming, although its small claim record would fit: a claim
// must not pass while an output waits. Before, the second program got a
// job at once.
func TestNoClaimWhileOutputHeld(t *testing.T) {
	srv := trackertest.Start(t, trackertest.Options{Jobs: []any{"j-1", "j-2", "j-3", "j-4"}, Seed: 5})
	logs := &lockedBuffer{}
	rp := startProxy(t, srv.URL, func(c *proxy.Config) {
		c.JournalMaxSize = 1 << 20
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLog{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	a, b := newProgram(t, rp.URL), newProgram(t, rp.URL)
	ta, tb := a.register(), b.register()
	a.newJob(ta)

	// a's output cannot be journaled: its completeJob waits (the proxy
	// holds the call and tries again) until the proxy stops.
	big := strings.Repeat("x", 2<<20)
	aDone := make(chan error, 1)
	go func() { aDone <- a.try("/api/completeJob", fmt.Sprintf(`{"token":%q,"data":%q}`, ta, big)) }()
	waitLog(t, logs, "cannot be written")

	bDone := make(chan error, 1)
	go func() { bDone <- b.try("/api/newJob", fmt.Sprintf(`{"token":%q}`, tb)) }()
	// b's newJob must not be answered, nor a job claimed for it at the
	// tracker, while a's output waits. Before the fix, both happened within
	// a few milliseconds; a second is generous on a loaded machine, and a
	// slow machine can only make this check pass on the old code, never
	// fail on the new.
	select {
	case err := <-bDone:
		t.Fatalf("the second program's newJob was answered (%v) while the first one's output was held in memory", err)
	case <-time.After(time.Second):
	}
	if held := heldJobs(srv); held != 1 {
		t.Errorf("%d jobs held at the tracker while an output waited to be journaled; want 1 (the first program's)", held)
	}
	if strings.Contains(logs.String(), "writable again") {
		t.Errorf("the spell ended while the output was still held:\n%s", logs.String())
	}
	_ = rp.Stop()
	for _, ch := range []chan error{aDone, bDone} {
		select {
		case <-ch:
		case <-time.After(time.Minute):
			t.Fatal("a program's call was not ended by the proxy's stop")
		}
	}
}

// testLog shows the proxy's log in the test's output with -v.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	if testing.Verbose() {
		l.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// try posts body to path on another goroutine than the test's: it returns
// an error unless the answer is 200.
func (p *program) try(path, body string) error {
	resp, err := p.hc.Post(p.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return nil
}

func waitLog(t *testing.T, logs *lockedBuffer, line string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(logs.String(), line) {
			return
		}
	}
	t.Fatalf("no %q line within a minute:\n%s", line, logs.String())
}

func heldJobs(srv *trackertest.Server) int {
	n := 0
	for _, w := range srv.Tracker.Workers() {
		if w.Job != 0 {
			n++
		}
	}
	return n
}
