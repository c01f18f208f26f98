package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/trackertest"
)

// Worker mode: the test binary re-executed as `dcworker run ARGS` (args in
// $DCWORKER_TEST_ARGS as JSON), for tests that signal or SIGKILL a worker
// process.
const envWorkerMode = "DCWORKER_TEST_WORKER_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(envWorkerMode); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			fmt.Fprintln(os.Stderr, "bad worker args:", err)
			os.Exit(2)
		}
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		err := worker.Command(context.Background(), argv, sigs, os.Stdout, os.Stderr, func(c *worker.Config) {
			c.ClientOptions = append(c.ClientOptions, fastClient()...)
			c.PollInterval = 50 * time.Millisecond
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "dcworker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fastClient makes the client wait and heartbeat at test speed.
func fastClient() []client.Option {
	return []client.Option{
		client.WithWaitBackoff(20*time.Millisecond, 100*time.Millisecond),
		client.WithHeartbeat(100 * time.Millisecond),
	}
}

// logWriter sends log lines to t.Log until the test ends.
type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testWriter(t testing.TB) *logWriter {
	w := &logWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return w
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startTracker(t testing.TB, jobs ...any) *trackertest.Server {
	t.Helper()
	return trackertest.Start(t, trackertest.Options{Stages: map[string]string{"a": "CPU"}, Jobs: jobs, Seed: 1, Logger: slog.New(slog.DiscardHandler)})
}

// script writes a /bin/sh script and returns its path.
func script(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func config(t testing.TB, url, scriptPath string) worker.Config {
	jpath := filepath.Join(t.TempDir(), "journal.db")
	t.Cleanup(func() { verifyJournal(t, jpath) })
	return worker.Config{
		TrackerURL:    url,
		Stage:         "a",
		Journal:       jpath,
		Command:       []string{"/bin/sh", scriptPath},
		RetryDelay:    -1,
		Grace:         2 * time.Second,
		EmptyPoll:     30 * time.Millisecond,
		PollInterval:  30 * time.Millisecond,
		ExitWhenEmpty: true,
		Logger:        testLogger(t),
		Stderr:        testWriter(t),
		ClientOptions: fastClient(),
	}
}

// start runs the engine in the background; the returned channel gets Run's
// error.
func start(t testing.TB, ctx context.Context, cfg worker.Config) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, cfg) }()
	return done
}

func run(t testing.TB, cfg worker.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := worker.Run(ctx, cfg); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func waitErr(t testing.TB, done <-chan error, d time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Run did not return within %v", d)
		return nil
	}
}

// waitFor polls cond until it is true or the time is up.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func job(t testing.TB, srv *trackertest.Server, n int) trackertest.JobView {
	t.Helper()
	v, ok := srv.Tracker.Job(n)
	if !ok {
		t.Fatalf("no job %d", n)
	}
	return v
}

func output(v trackertest.JobView, stage string) string {
	if p := v.Outputs[stage]; p != nil {
		return *p
	}
	return "<none>"
}

// events reads the journal's events of kind k (all kinds if k is "").
func events(t testing.TB, path string, k journal.Kind) []journal.Event {
	t.Helper()
	db, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []journal.Event
	err = db.Events(journal.Filter{}, func(e journal.Event) error {
		if k == "" || e.Kind == k {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// workerProcess starts the test binary as `dcworker run args...`.
func workerProcess(t testing.TB, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	b, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorkerMode+"="+string(b))
	var out strings.Builder
	w := &lockedWriter{w: &out}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// killGroupFrom kills the process group whose leader's pid is in file (the
// scripts write $$ there), so a command orphaned by a SIGKILLed worker does
// not outlive the test.
func killGroupFrom(t testing.TB, file string) {
	t.Cleanup(func() {
		b, err := os.ReadFile(file)
		if err != nil {
			return
		}
		var pid int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err == nil && pid > 1 {
			killGroup(pid)
		}
	})
}

// loopbackClient refuses to dial anything but loopback: the metadata client
// of every test, so no test can reach a real metadata service.
func loopbackClient() *http.Client {
	d := &net.Dialer{Timeout: time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, errors.New("test: refusing non-loopback " + addr)
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// verifyJournal checks, once the test is over, that the journal the worker
// left behind (if any) opens and verifies.
func verifyJournal(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return
	}
	db, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Errorf("journal %s does not open: %v", path, err)
		return
	}
	defer db.Close()
	for _, err := range db.Verify() {
		t.Errorf("journal %s: %v", path, err)
	}
}
