package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// fastRetry gives up after 5 attempts, so that tests of unconfirmed actions
// are fast and a single lost answer is always retried.
var fastRetry = session.RetryPolicy{
	InitialInterval: 2 * time.Millisecond,
	MaxInterval:     10 * time.Millisecond,
	MaxRetries:      4, // bounded by count, not time: robust on a loaded machine
	AttemptTimeout:  2 * time.Second,
	MaxRetryAfter:   10 * time.Millisecond,
}

// syncBuffer is a bytes.Buffer safe for concurrent writes (log capture).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one test's world: a tracker, a journal file, and captured logs.
type env struct {
	t       *testing.T
	srv     *trackertest.Server
	tr      *trackertest.Tracker
	clock   *trackertest.FakeClock
	path    string
	logs    *syncBuffer
	ctx     context.Context
	extra   []client.Option
	clients []*client.Client

	tokMu  sync.Mutex
	tokens map[string]bool // every token seen, to check the logs
}

func newEnv(t *testing.T, topts trackertest.Options, extra ...client.Option) *env {
	t.Helper()
	if topts.Clock == nil {
		topts.Clock = trackertest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	if topts.Seed == 0 {
		topts.Seed = 1
	}
	e := &env{t: t, path: filepath.Join(t.TempDir(), "journal.db"), logs: &syncBuffer{}, extra: extra}
	e.clock, _ = topts.Clock.(*trackertest.FakeClock)
	e.srv = trackertest.Start(t, topts)
	e.tr = e.srv.Tracker
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e.ctx = ctx
	t.Cleanup(func() {
		for _, c := range e.clients {
			c.Close()
		}
		e.verify()
		// No log line may hold a token in full.
		logs := e.logs.String()
		for _, w := range e.workersEver() {
			if bytes.Contains([]byte(logs), []byte(w)) {
				t.Errorf("a token appears in full in the logs")
			}
		}
	})
	return e
}

// noteTokens remembers every token the tracker knows now.
func (e *env) noteTokens() {
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	if e.tokens == nil {
		e.tokens = map[string]bool{}
	}
	for _, w := range e.tr.Workers() {
		e.tokens[w.Token] = true
	}
}

func (e *env) workersEver() []string {
	e.noteTokens()
	e.tokMu.Lock()
	defer e.tokMu.Unlock()
	var out []string
	for tok := range e.tokens {
		out = append(out, tok)
	}
	return out
}

func (e *env) opts(more ...client.Option) []client.Option {
	o := []client.Option{
		client.WithJournal(e.path),
		client.WithJournalOptions(&journal.Options{NoSync: true}),
		client.WithLogger(slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		client.WithRetry(fastRetry),
		client.WithHeartbeat(time.Hour), // tests that need a heartbeat set their own
		client.WithWaitBackoff(2*time.Millisecond, 10*time.Millisecond),
	}
	o = append(o, e.extra...)
	return append(o, more...)
}

// init starts a client on the env's journal; it is closed at cleanup.
func (e *env) init(stage string, more ...client.Option) *client.Client {
	e.t.Helper()
	c, err := client.Init(e.ctx, e.srv.URL, stage, e.opts(more...)...)
	if err != nil {
		e.t.Fatalf("Init: %v", err)
	}
	e.clients = append(e.clients, c)
	e.noteTokens()
	return c
}

// crash leaves the journal as a killed process would: what its last commit
// made durable, without the deferred claim or the buffered progress that a
// Close would still write. It takes a snapshot of the committed state (a
// read transaction: exactly what survives a SIGKILL after the fsync), closes
// c to stop its goroutines and free the file, and puts the snapshot back.
// Tests that need a real SIGKILL of a process are in readme_test.go and
// internal/crashtest.
func (e *env) crash(c *client.Client) {
	e.t.Helper()
	e.noteTokens()
	var snap bytes.Buffer
	if _, err := c.Journal().WriteSnapshot(&snap); err != nil {
		e.t.Fatalf("snapshot: %v", err)
	}
	if err := c.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	if err := os.WriteFile(e.path, snap.Bytes(), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// journal opens the env's journal (no client may have it open).
func (e *env) journal() *journal.DB {
	e.t.Helper()
	db, err := journal.Open(e.path, &journal.Options{NoSync: true})
	if err != nil {
		e.t.Fatalf("journal.Open: %v", err)
	}
	return db
}

func (e *env) verify() {
	if _, err := os.Stat(e.path); errors.Is(err, fs.ErrNotExist) {
		return // no client ever opened it
	}
	db, err := journal.Open(e.path, &journal.Options{ReadOnly: true})
	if err != nil {
		e.t.Errorf("the journal does not open after the test: %v", err)
		return
	}
	defer db.Close()
	for _, err := range db.Verify() {
		e.t.Errorf("journal does not verify: %v", err)
	}
}

// events returns the kinds (and outcomes) of the slot's events, in order.
func (e *env) events(slot string) []journal.Event {
	e.t.Helper()
	db := e.journal()
	defer db.Close()
	var evs []journal.Event
	if err := db.Events(journal.Filter{Slot: slot}, func(ev journal.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func hasEvent(evs []journal.Event, kind journal.Kind, outcome string) bool {
	for _, ev := range evs {
		if ev.Kind == kind && (outcome == "" || ev.Outcome == outcome) {
			return true
		}
	}
	return false
}

// advancePastIdle moves the tracker's clock past the idle timeout and sweeps.
func (e *env) advancePastIdle() {
	e.noteTokens()
	e.clock.Advance(trackertest.DefaultIdleTimeout + time.Minute)
	e.tr.CheckIdle()
}

// crashHook panics at the armed point, as a SIGKILL there would stop the
// program; the test recovers the panic and reopens the journal.
type crashHook struct {
	mu    sync.Mutex
	point hooks.Point
	op    string
}

type crashed struct{}

func (h *crashHook) arm(p hooks.Point, op string) {
	h.mu.Lock()
	h.point, h.op = p, op
	h.mu.Unlock()
}

func (h *crashHook) fn(p hooks.Point, op string) {
	h.mu.Lock()
	hit := h.point == p && h.op == op
	if hit {
		h.point, h.op = "", ""
	}
	h.mu.Unlock()
	if hit {
		panic(crashed{})
	}
}

// mustCrash runs f, which must be stopped by the armed crash hook.
func mustCrash(t *testing.T, f func() error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crashed); !ok {
				panic(r)
			}
		}
	}()
	err := f()
	t.Fatalf("the crash hook was not reached (err %v)", err)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func wantNoErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

// modes runs f in the tracker's contract mode and in Quirks mode.
func modes(t *testing.T, f func(t *testing.T, quirks bool)) {
	for _, q := range []bool{false, true} {
		name := "contract"
		if q {
			name = "quirks"
		}
		t.Run(name, func(t *testing.T) { f(t, q) })
	}
}

func strp(s string) *string { return &s }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
