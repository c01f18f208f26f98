package crashtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/crashtest"
	"github.com/distcompute/distcompute-go/internal/faultnet"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// chaosConfig sizes an in-process network-chaos run.
type chaosConfig struct {
	Jobs            int
	WorkersPerStage int  // at most 4, so that no job reaches 5 flags at a stage
	Lone            bool // a journal per worker at both stages (default: a pool at stage a, lone clients at b)
	Timeout         time.Duration
}

// chaosSize: 1,000 jobs, or 200 under -race (the race detector slows the
// in-process client, HTTP stack and tracker about six times; the 1,000 jobs
// run under -race in TestChaosPipeline, with worker processes).
func chaosSize() chaosConfig {
	c := chaosConfig{Jobs: 1000, WorkersPerStage: 4, Lone: os.Getenv("CRASHTEST_CHAOS_LONE") != "", Timeout: 150 * time.Second}
	if raceEnabled {
		c.Jobs = 200
	}
	if full() {
		c.Jobs, c.Timeout = 2000, 15*time.Minute
	}
	if n, err := strconv.Atoi(os.Getenv("CRASHTEST_CHAOS_JOBS")); err == nil && n > 0 {
		c.Jobs = n
	}
	return c
}

// TestChaosInProcess runs the pipeline with in-process clients (so that the
// race detector sees the client under chaos) over the network chaos of issue
// 4, then checks the invariants of TestCrashPipeline.
func TestChaosInProcess(t *testing.T) {
	cfg := chaosSize()
	sd := seed(t)
	rng := rand.New(rand.NewSource(sd))
	inputs := makeJobs(rng, cfg.Jobs)
	srv := trackertest.Start(t, trackertest.Options{
		Stages: map[string]string{"a": "CPU", "b": "GPU"},
		Jobs:   inputs,
		Seed:   sd,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	dir := t.TempDir()
	t.Cleanup(func() { keepIfFailed(t, dir, fmt.Sprintf("crashtest-chaos-in-process-%d", sd)) })
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()

	var done atomic.Bool
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for !done.Load() {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if allClosed(srv.Tracker) {
				done.Store(true)
			}
		}
	}()

	retry := session.RetryPolicy{
		InitialInterval:     time.Millisecond,
		MaxInterval:         20 * time.Millisecond,
		Multiplier:          2,
		RandomizationFactor: 0.5,
		AttemptTimeout:      5 * time.Second,
		MaxRetryAfter:       50 * time.Millisecond,
	}
	var (
		mu       sync.Mutex
		computed []crashtest.Computation
		journals []string
		reports  []lifeReport
		clients  []*client.Client
		names    []string
		closers  []func() error
	)
	// One fault-injecting transport per stage, shared by that stage's
	// workers: at stage a a pool of clients on one journal (group commit),
	// at stage b lone clients with a journal each (at both with
	// CRASHTEST_CHAOS_LONE=1).
	transports := map[string]*faultnet.Transport{}
	for si, stage := range []string{"a", "b"} {
		ft := crashtest.ChaosTransport(sd + int64(si))
		transports[stage] = ft
		opts := []client.Option{
			client.WithNickname("chaos-" + stage),
			client.WithHTTPClient(ft.Client()),
			client.WithRetry(retry),
			client.WithHeartbeat(500 * time.Millisecond),
			client.WithVerbose(false),
			// Keep every event, so that the figures counted from the
			// journals are exact.
			client.WithJournalOptions(&journal.Options{Retention: -1}),
		}
		if cfg.Lone || stage == "b" {
			for i := 0; i < cfg.WorkersPerStage; i++ {
				path := filepath.Join(dir, fmt.Sprintf("chaos-%s-%d.db", stage, i))
				c, err := client.Init(ctx, srv.URL, stage, append(opts, client.WithJournal(path))...)
				if err != nil {
					t.Fatalf("init: %v", err)
				}
				t.Cleanup(func() { c.Close() }) // idempotent; for a failed start
				journals, clients, closers = append(journals, path), append(clients, c), append(closers, c.Close)
				names = append(names, fmt.Sprintf("chaos-%s-%d", stage, i))
			}
			continue
		}
		path := filepath.Join(dir, "chaos-"+stage+".db")
		pool, err := client.OpenPool(ctx, srv.URL, stage, cfg.WorkersPerStage, append(opts, client.WithJournal(path))...)
		if err != nil {
			t.Fatalf("open pool: %v", err)
		}
		t.Cleanup(func() { pool.Close() }) // idempotent; for a failed start
		journals, closers = append(journals, path), append(closers, pool.Close)
		for _, c := range pool.Clients() {
			clients = append(clients, c)
			names = append(names, fmt.Sprintf("chaos-%s-%s", stage, c.Slot()))
		}
	}
	for _, c := range clients {
		reports = append(reports, lifeReport{Life: "1", Report: c.Report()})
	}

	start := time.Now()
	// The first worker to fail stops the others (its held job would keep
	// the work from ever being done).
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if errs[i] != nil {
					stop()
				}
			}()
			errs[i] = crashtest.Work(wctx, c, crashtest.Config{
				Name:     names[i],
				Stage:    c.Stage(),
				Done:     done.Load,
				Steps:    2,
				FlagRate: 0.05,
				Flagged:  crashtest.MapFlagSet{},
				Record: func(rec crashtest.Computation) error {
					mu.Lock()
					computed = append(computed, rec)
					mu.Unlock()
					return nil
				},
			})
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", names[i], errs[i])
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, closeFn := range closers {
		errs = append(errs, closeFn())
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("workers failed after %s with %d of %d completions done: %v", elapsed, completions(srv.Tracker), 2*cfg.Jobs, err)
	}

	checkTracker(t, srv.Tracker, []string{"a", "b"}, inputs, false, computed, cfg.WorkersPerStage)
	jf := checkJournals(t, journals)
	checkOrphans(t, srv.Tracker, jf.orphans)
	rf := sumReports(reports)

	var fc faultnet.Counts
	for _, ft := range transports { // both stages
		c := ft.Counts()
		fc.Requests += c.Requests
		fc.DroppedRequest += c.DroppedRequest
		fc.DroppedAnswer += c.DroppedAnswer
		fc.Status502 += c.Status502
	}
	stats := srv.Tracker.Stats()
	t.Logf("faults: requests=%d dropped-request=%d dropped-answer=%d 502=%d", fc.Requests, fc.DroppedRequest, fc.DroppedAnswer, fc.Status502)
	t.Logf("tracker: completeJob %v, flagInvalidData %v, newJob %v, bye %v",
		stats["completeJob"].Status, stats["flagInvalidData"].Status, stats["newJob"].Status, stats["bye"].Status)
	t.Logf("replay reports: %s", rf)
	t.Logf("journals: %s", jf)
	if fc.DroppedAnswer == 0 || fc.DroppedRequest == 0 || fc.Status502 == 0 {
		t.Errorf("the chaos did not happen: %+v", fc)
	}
	line := fmt.Sprintf("crashtest: chaos-in-process(%s) jobs=%d stages=2 workers=%d requests=%d dropped-request=%d dropped-answer=%d 502=%d resubmitted=%d applied-earlier=%d completeJob-403=%d orphans=%d elapsed=%s seed=%d",
		map[bool]string{true: "lone", false: "pool+lone"}[cfg.Lone], cfg.Jobs, 2*cfg.WorkersPerStage, fc.Requests, fc.DroppedRequest, fc.DroppedAnswer, fc.Status502,
		rf.Resubmitted, jf.Completions["applied-earlier"], stats["completeJob"].Status[403], jf.Completions["orphaned"],
		elapsed.Round(time.Millisecond), sd)
	printFigures(t, line)
}
