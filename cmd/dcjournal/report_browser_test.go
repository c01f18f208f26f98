package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/browsertest"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// screenshotDir is where the browser tests save their screenshots: $DCTEST_SCREENSHOTS
// (to refresh docs/), else the test's temporary directory.
func screenshotDir() string { return os.Getenv("DCTEST_SCREENSHOTS") }

// fleetworkerMain: fleetworker URL JOURNAL SLOTS DIEAT. A pool of SLOTS workers on one
// journal that claim jobs until the stage is empty: each logs progress, checkpoints
// every 5th job, flags every 41st as invalid the first time this process sees it
// (the tracker re-opens a flagged job), and completes the others. With DIEAT > 0
// the process SIGKILLs itself at its DIEAT-th completion, after the completion is
// journaled and before it is sent.
func fleetworkerMain() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: fleetworker URL JOURNAL SLOTS DIEAT")
		os.Exit(2)
	}
	url, path := os.Args[1], os.Args[2]
	slots, _ := strconv.Atoi(os.Args[3])
	dieAt, _ := strconv.Atoi(os.Args[4])
	var completions atomic.Int64
	var flagged sync.Map // job numbers flagged by this process
	ctx := context.Background()
	pool, err := client.OpenPool(hooks.With(ctx, func(p hooks.Point, op string) {
		if dieAt > 0 && p == hooks.AfterJournal && op == "complete" && completions.Add(1) == int64(dieAt) {
			if self, err := os.FindProcess(os.Getpid()); err == nil {
				self.Kill() // SIGKILL on Unix, TerminateProcess on Windows
			}
			select {}
		}
	}), url, "a", slots,
		client.WithJournal(path), client.WithNickname("fleet"), client.WithVerbose(false),
		client.WithRetry(session.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaxElapsedTime: 20 * time.Second}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetworker:", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, c := range pool.Clients() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if !c.HasJob() {
					err := c.NewJob(ctx)
					if errors.Is(err, client.ErrNoJobs) {
						return
					}
					if err != nil {
						fmt.Fprintln(os.Stderr, "fleetworker: claim:", err)
						failed.Store(true)
						return
					}
				}
				n := c.JobID()
				c.Log("downloading")
				if n%5 == 0 {
					if err := c.Checkpoint(ctx, []byte("half")); err != nil {
						fmt.Fprintln(os.Stderr, "fleetworker: checkpoint:", err)
					}
				}
				c.Log("resizing")
				var err error
				if _, again := flagged.LoadOrStore(n, true); n%41 == 0 && !again {
					err = c.FlagInvalidData(ctx)
				} else {
					err = c.CompleteJob(ctx, fmt.Sprintf("shard %d done", n))
				}
				if err != nil && !errors.Is(err, client.ErrWorkerGone) {
					fmt.Fprintln(os.Stderr, "fleetworker: settle:", err)
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	pool.Close()
	if failed.Load() {
		os.Exit(1)
	}
}

// fleetRun runs a real crashed fleet: a pool of slots workers in a child process
// over jobs jobs, SIGKILLed half-way mid-completion; the tracker then times every
// worker out (its clock moves 3 hours) before the pool restarts on the same journal,
// recovers (a completion orphaned, held jobs lost), and finishes the stage. It
// returns the journal's path.
func fleetRun(t *testing.T, dir string, slots, jobs int) string {
	t.Helper()
	var js []any
	for i := 1; i <= jobs; i++ {
		js = append(js, map[string]any{"shard": i})
	}
	clock := trackertest.NewFakeClock(time.Now())
	srv := trackertest.Start(t, trackertest.Options{Project: "fleet", Jobs: js, Clock: clock, Seed: 1})
	path := filepath.Join(dir, "spot-17.db")
	life := func(dieAt int) *os.ProcessState {
		var stderr bytes.Buffer
		cmd := exec.Command("fleetworker", srv.URL, path, strconv.Itoa(slots), strconv.Itoa(dieAt))
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("fleetworker: %v", err)
		}
		if stderr.Len() > 0 {
			t.Logf("fleetworker stderr:\n%s", stderr.String())
		}
		return cmd.ProcessState
	}
	if ps := life(jobs / 2); ps.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("first life ended with %v, want SIGKILL", ps)
	}
	clock.Advance(3 * time.Hour) // every worker times out while the process is down
	if ps := life(0); !ps.Success() {
		t.Fatalf("second life ended with %v", ps)
	}
	for _, j := range srv.Tracker.Jobs() {
		if j.State != trackertest.JobClosed {
			t.Errorf("job %d is %s after the run", j.Number, j.State)
		}
	}
	return path
}

// TestReportInBrowser renders the report of a real crashed 32-slot run of 3,000 jobs
// in headless Chromium: 32 lanes, bars (aggregated at this size, single when zoomed),
// recovery marks and dead gaps are drawn, and hovering shows what they hold.
func TestReportInBrowser(t *testing.T) {
	tab := browsertest.Start(t, 4*time.Minute) // skips early when there is no browser
	dir := t.TempDir()
	t0 := time.Now()
	path := fleetRun(t, dir, 32, 3000)
	t.Logf("fleet run: %v", time.Since(t0).Round(time.Millisecond))
	out := filepath.Join(dir, "fleet.html")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"report", path, "--out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("report: %v\n%s", err, stderr.String())
	}
	t.Log(strings.TrimSpace(stdout.String()))
	browsertest.Open(t, tab, "file://"+out)

	if n := browsertest.Eval[int](t, tab, `document.querySelectorAll("rect.lane").length`); n != 32 {
		t.Errorf("%d lanes drawn, want 32", n)
	}
	drawn := browsertest.Eval[int](t, tab, `document.querySelectorAll(".bar, .agg").length`)
	if drawn < 32 {
		t.Errorf("%d bars and aggregates drawn, want at least one per lane", drawn)
	}
	if n := browsertest.Eval[int](t, tab, `document.querySelectorAll(".mark.recovery").length`); n < 1 {
		t.Errorf("no recovery mark drawn")
	}
	if n := browsertest.Eval[int](t, tab, `document.querySelectorAll("rect.gap").length`); n < 1 {
		t.Errorf("no dead gap shaded")
	}
	if n := browsertest.Eval[int](t, tab, `document.querySelectorAll("#orphans tr, #recoveries tr").length`); n < 2 {
		t.Errorf("the recoveries table is empty")
	}
	browsertest.Screenshot(t, tab, screenshotDir(), "report-fleet.png")

	// In a narrow window the bars are too thin: aggregates say what they hold, and
	// clicking one zooms in until single bars show.
	browsertest.Resize(t, tab, 640, browsertest.ViewportHeight)
	if n := browsertest.Eval[int](t, tab, `document.querySelectorAll(".agg").length`); n == 0 {
		t.Errorf("no aggregate drawn for 3,000 jobs in 640 pixels")
	} else {
		browsertest.Hover(t, tab, ".agg")
		browsertest.WaitFor(t, tab, `document.getElementById("tip").style.display === "block" && /\d+ jobs/.test(document.getElementById("tip").innerText)`)
		for i := 0; i < 8 && browsertest.Eval[int](t, tab, `document.querySelectorAll(".bar").length`) == 0; i++ {
			browsertest.Click(t, tab, ".agg")
		}
	}
	browsertest.Hover(t, tab, ".bar")
	browsertest.WaitFor(t, tab, `document.getElementById("tip").style.display === "block"`)
	tip := browsertest.Eval[string](t, tab, `document.getElementById("tip").innerText`)
	if !strings.Contains(tip, "claimed") || !strings.Contains(tip, "job ") {
		t.Errorf("hovering a bar shows %q, want the job and its claimed event", tip)
	}
	browsertest.Click(t, tab, ".bar")
	if d := browsertest.Eval[string](t, tab, `document.getElementById("detail").innerText`); !strings.Contains(d, "claimed") {
		t.Errorf("clicking a bar keeps %q below, want its events", d)
	}
	browsertest.Resize(t, tab, browsertest.ViewportWidth, browsertest.ViewportHeight)
	browsertest.Screenshot(t, tab, screenshotDir(), "report-fleet-zoomed.png")
}
