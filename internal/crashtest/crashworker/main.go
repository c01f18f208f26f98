// Command crashworker is the worker process of the crash suite
// (internal/crashtest): a journaled client that works a stage until the test
// says all is done, and kills itself with SIGKILL at a chosen point.
//
// It is configured by environment variables, set by the test:
//
//	CRASH_URL, CRASH_STAGE      tracker URL and stage letter
//	CRASH_JOURNAL               journal path (the same one on every restart)
//	CRASH_NAME                  nickname; also names the worker in records
//	CRASH_DIR                   directory for the side files: computed.jsonl
//	                            (what was computed, written before submitting),
//	                            flagged.txt (jobs this worker flagged),
//	                            reports.jsonl (the replay report of each start)
//	CRASH_DONE                  a file whose existence means all work is done
//	CRASH_LIFE                  number of this start, copied into reports
//	CRASH_POINT, CRASH_N        kill point and which occurrence of it kills:
//	                            "after-journal:OP" or "after-send:OP" (OP one of
//	                            register, claim, complete, flag, bye, checkpoint)
//	                            or "mid-job" (halfway through the Nth job);
//	                            empty: never kill itself
//	CRASH_STEPS, CRASH_STEP_DELAY   shape of one job's computation
//	CRASH_FLAG_RATE, CRASH_FLAG_FIRST   flagging (see crashtest.Config)
//	CRASH_HEARTBEAT             client heartbeat interval
//	CRASH_CHAOS_SEED            if set, requests go through the network chaos
//	                            (crashtest.ChaosTransport), seeded;
//	                            a clean exit appends the fault counts to
//	                            faults.jsonl
//	CRASH_RETENTION             journal.Options.Retention (default: default)
//	CRASH_RELEASE               "1": client.WithRelease (a held job is handed
//	                            back to the tracker on restart, not resumed)
//	CRASH_LOG                   log level for stderr (default warn)
//
// Exit status: 0 when the work is done (after bye), 75 when the tracker
// deleted the worker (client.ErrWorkerGone; the test restarts it), 1 on any
// other error.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/crashtest"
	"github.com/distcompute/distcompute-go/internal/faultnet"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// exitWorkerGone is the exit status for client.ErrWorkerGone (EX_TEMPFAIL).
const exitWorkerGone = 75

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, client.ErrWorkerGone):
		fmt.Fprintln(os.Stderr, "crashworker:", err)
		os.Exit(exitWorkerGone)
	default:
		fmt.Fprintln(os.Stderr, "crashworker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(or(getenv("CRASH_LOG"), "warn"))); err != nil {
		return fmt.Errorf("CRASH_LOG: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	name, stage, dir := getenv("CRASH_NAME"), getenv("CRASH_STAGE"), getenv("CRASH_DIR")
	steps, err := atoi(getenv, "CRASH_STEPS", 4)
	if err != nil {
		return err
	}
	stepDelay, err := duration(getenv, "CRASH_STEP_DELAY", time.Millisecond)
	if err != nil {
		return err
	}
	heartbeat, err := duration(getenv, "CRASH_HEARTBEAT", 100*time.Millisecond)
	if err != nil {
		return err
	}
	flagRate, err := strconv.ParseFloat(or(getenv("CRASH_FLAG_RATE"), "0"), 64)
	if err != nil {
		return fmt.Errorf("CRASH_FLAG_RATE: %w", err)
	}
	killAt, err := atoi(getenv, "CRASH_N", 1)
	if err != nil {
		return err
	}
	point := getenv("CRASH_POINT")

	// The hook may be called from the client's goroutines, so count atomically.
	var seen atomic.Int64
	hook := func(p hooks.Point, op string) {
		if point != "" && string(p)+":"+op == point && seen.Add(1) == int64(killAt) {
			die()
		}
	}
	var midJob func(int)
	if point == "mid-job" {
		midJob = func(int) {
			if seen.Add(1) == int64(killAt) {
				die()
			}
		}
	}

	flagged, err := openFlagSet(filepath.Join(dir, "flagged.txt"))
	if err != nil {
		return err
	}
	defer flagged.Close()
	computed, err := os.OpenFile(filepath.Join(dir, "computed.jsonl"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer computed.Close()

	retry := session.RetryPolicy{
		InitialInterval:     5 * time.Millisecond,
		MaxInterval:         50 * time.Millisecond,
		Multiplier:          2,
		RandomizationFactor: 0.5,
		AttemptTimeout:      5 * time.Second,
		MaxRetryAfter:       100 * time.Millisecond,
	}
	opts := []client.Option{
		client.WithJournal(getenv("CRASH_JOURNAL")),
		client.WithNickname(name),
		client.WithLogger(logger),
		client.WithRetry(retry),
		client.WithHeartbeat(heartbeat),
	}
	var chaos *faultnet.Transport
	if v := getenv("CRASH_CHAOS_SEED"); v != "" {
		seed, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("CRASH_CHAOS_SEED: %w", err)
		}
		chaos = crashtest.ChaosTransport(seed)
		opts = append(opts, client.WithHTTPClient(chaos.Client()))
	}
	if getenv("CRASH_RELEASE") == "1" {
		opts = append(opts, client.WithRelease())
	}
	if v := getenv("CRASH_RETENTION"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("CRASH_RETENTION: %w", err)
		}
		opts = append(opts, client.WithJournalOptions(&journal.Options{Retention: n}))
	}
	c, err := client.Init(hooks.With(ctx, hook), getenv("CRASH_URL"), stage, opts...)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer c.Close()
	if err := appendJSON(filepath.Join(dir, "reports.jsonl"), struct {
		Life   string `json:"life"`
		Report any    `json:"report"`
	}{getenv("CRASH_LIFE"), c.Report()}); err != nil {
		return err
	}

	donePath := getenv("CRASH_DONE")
	err = crashtest.Work(ctx, c, crashtest.Config{
		Name:  name,
		Stage: stage,
		Done: func() bool {
			_, err := os.Stat(donePath)
			return err == nil
		},
		Steps:      steps,
		StepDelay:  stepDelay,
		Checkpoint: true,
		FlagRate:   flagRate,
		FlagFirst:  getenv("CRASH_FLAG_FIRST") == "1",
		Flagged:    flagged,
		Record: func(rec crashtest.Computation) error {
			// One write of one line to an O_APPEND file: a SIGKILL after it
			// returns cannot lose it (it is in the page cache).
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			_, err = computed.Write(append(b, '\n'))
			return err
		},
		MidJob: midJob,
	})
	if err != nil {
		return err
	}
	if chaos != nil {
		if err := appendJSON(filepath.Join(dir, "faults.jsonl"), chaos.Counts()); err != nil {
			return err
		}
	}
	return c.Close()
}

// die kills the process the hard way: no deferred calls, no flush, no Close
// (SIGKILL on Unix, TerminateProcess on Windows).
func die() {
	if self, err := os.FindProcess(os.Getpid()); err == nil {
		_ = self.Kill()
	}
	select {}
}

// fileFlagSet is a crashtest.FlagSet kept in a file, one key a line, so it
// survives restarts.
type fileFlagSet struct {
	mu   sync.Mutex
	f    *os.File
	keys map[string]bool
}

func openFlagSet(path string) (*fileFlagSet, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s := &fileFlagSet{f: f, keys: map[string]bool{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s.keys[sc.Text()] = true
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *fileFlagSet) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

func (s *fileFlagSet) Add(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = true
	_, err := s.f.WriteString(key + "\n")
	return err
}

func (s *fileFlagSet) Close() error { return s.f.Close() }

func appendJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func or(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

func atoi(getenv func(string) string, key string, def int) (int, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return n, nil
}

func duration(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}
