package proxy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/internal/upstreamtest"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/trackertest"
)

// runProgramProxy runs the proxy with -- python3 testdata/program.py MODE
// until every copy of the program has ended, and returns the program's
// directory (its "received" file).
func runProgramProxy(t *testing.T, jobs []any, mode string, mod func(*proxy.Config)) (*trackertest.Server, *runningProxy, string) {
	t.Helper()
	python, upstream := upstreamtest.Client(t)
	srv := trackertest.Start(t, trackertest.Options{Jobs: jobs, Seed: 3})
	dir := t.TempDir()
	rp := startProxy(t, srv.URL, func(c *proxy.Config) {
		c.Command = []string{python, "testdata/program.py", upstream, dir, mode}
		c.RestartDelay = 10 * time.Millisecond
		c.Stderr = os.Stderr
		if mod != nil {
			mod(c)
		}
	})
	select {
	case err := <-rp.done:
		rp.done <- err
		if err != nil {
			t.Fatalf("proxy: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the program did not finish within 2 minutes")
	}
	return srv, rp, dir
}

func received(t *testing.T, dir string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "received"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		out = append(out, strings.Fields(l))
	}
	return out
}

// TestProgramDiesJobHandedOver: the program dies (exit 1) holding a job;
// dcproxy restarts it and the restarted program's first newJob gets that
// job (not a fresh claim; the tracker never saw it released). Every job is
// then completed once.
func TestProgramDiesJobHandedOver(t *testing.T) {
	srv, _, dir := runProgramProxy(t, []any{"j-1", "j-2", "j-3"}, "die-once", nil)
	got := received(t, dir)
	if len(got) < 2 {
		t.Fatalf("received %v: want the job of the dead program and then others", got)
	}
	if got[0][0] == got[1][0] {
		t.Fatalf("the first two jobs went to one process (%v): the program did not die", got[:2])
	}
	if got[1][1] != got[0][1] {
		t.Errorf("the restarted program's first job is %s, want %s, the job its dead predecessor held", got[1][1], got[0][1])
	}
	for _, j := range srv.Tracker.Jobs() {
		if j.State != trackertest.JobClosed || j.Completions["a"] != 1 {
			t.Errorf("job %d: %s, completed %d times; want closed, once", j.Number, j.State, j.Completions["a"])
		}
		if held := srv.Tracker.JobCounts()[trackertest.JobHeld]; held != 0 {
			t.Errorf("%d jobs held", held)
		}
	}
}

// TestPoisonJob: a job that kills the program twice in a row (PoisonAfter
// 2) is released, recorded in the journal and never handed out again; the
// other jobs are completed.
func TestPoisonJob(t *testing.T) {
	srv, rp, dir := runProgramProxy(t, []any{"ok-1", "poison", "ok-2"}, "poison", func(c *proxy.Config) { c.PoisonAfter = 2 })
	poisonRuns := 0
	for _, r := range received(t, dir) {
		if len(r) == 3 && r[2] == "poison" {
			poisonRuns++
		}
	}
	if poisonRuns != 2 {
		t.Errorf("the poison job was handed out %d times, want 2 (PoisonAfter)", poisonRuns)
	}
	for _, j := range srv.Tracker.Jobs() {
		data := j.Data["a"]
		switch {
		case data != nil && *data == "poison":
			if j.State != trackertest.JobOpen || j.Completions["a"] != 0 {
				t.Errorf("poison job %d: %s, completed %d times; want open (released), never completed", j.Number, j.State, j.Completions["a"])
			}
		case j.State != trackertest.JobClosed || j.Completions["a"] != 1:
			t.Errorf("job %d: %s, completed %d times; want closed, once", j.Number, j.State, j.Completions["a"])
		}
	}
	db, err := journal.Open(rp.Journal, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	found := 0
	err = db.Events(journal.Filter{}, func(e journal.Event) error {
		if e.Kind == journal.KindFailed && strings.Contains(e.Reason, "poison") {
			found++
		}
		return nil
	})
	if err != nil || found != 1 {
		t.Errorf("poison records in the journal: %d (%v), want 1", found, err)
	}
}
