package client_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	"github.com/distcompute/distcompute-go/trackertest"
)

// readmeWorker extracts the Go worker of README.md (the first ```go block
// after "## A worker in Go"), points it at url instead of the README's
// example tracker (the only change), and builds it in a module of its own,
// as a user who copies it would.
func readmeWorker(t *testing.T, url string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "## A worker in Go")
	if !ok {
		t.Fatal(`README.md has no "## A worker in Go" section`)
	}
	_, rest, ok = strings.Cut(rest, "```go\n")
	code, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("README.md: no ```go block in the Go worker section")
	}
	const example = `"https://tracker.example.com/"`
	if n := strings.Count(code, example); n != 1 {
		t.Fatalf("README's worker names the example tracker %d times, want 1", n)
	}
	code = strings.Replace(code, example, strconv.Quote(url), 1)

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := "module readmeworker\n\ngo 1.26\n\nrequire github.com/distcompute/distcompute-go v0.0.0\n\nreplace github.com/distcompute/distcompute-go => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum, "main.go": []byte(code)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(dir, "worker")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	cmd.Dir = dir
	// The module's requirements come from this repository's go.sum and the
	// module cache: nothing is fetched.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building README's worker: %v\n%s", err, out)
	}
	return bin
}

var progressStep = regexp.MustCompile(`"progress":\s*"(\d+) / 100`)

// TestReadmeWorkerResumesAfterSIGKILL builds README's Go worker unchanged,
// SIGKILLs it in the middle of a job (after a checkpoint), starts it again
// on the same journal and checks that it goes on from its checkpoint: the
// job is claimed once, never released, completed once with the output the
// program computes, and no checkpoint step is done twice.
func TestReadmeWorkerResumesAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program: not in -short")
	}
	srv := trackertest.Start(t, trackertest.Options{Project: "readme", Seed: 7})
	bin := readmeWorker(t, srv.URL)
	dir := t.TempDir()
	jpath := filepath.Join(dir, "journal.db")

	// The kill comes when the tracker sees progress past step killAt of the
	// job: the checkpoint of step 10*(killAt/10) is then durable.
	const killAt = 25
	var mu sync.Mutex
	armed := false
	killNow := make(chan struct{}, 1)
	srv.Tracker.SetFault(func(r *http.Request, endpoint string) (trackertest.Fault, time.Duration) {
		if endpoint != "updateProgress" {
			return trackertest.FaultNone, 0
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		m := progressStep.FindSubmatch(body)
		if m == nil {
			return trackertest.FaultNone, 0
		}
		step, _ := strconv.Atoi(string(m[1]))
		mu.Lock()
		defer mu.Unlock()
		if armed && step >= killAt {
			armed = false
			killNow <- struct{}{}
		}
		return trackertest.FaultNone, 0
	})

	run := func(life string) (*exec.Cmd, *bytes.Buffer) {
		var out bytes.Buffer
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "DISTCOMPUTE_JOURNAL="+jpath, "NO_COLOR=1")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", life, err)
		}
		return cmd, &out
	}

	// A job that ends before the kill lands (a slow machine sends progress
	// late) does not count: another job is added and the kill tried again.
	var job int
	var first *exec.Cmd
	for attempt := 1; job == 0; attempt++ {
		if attempt > 5 {
			t.Fatalf("no kill landed mid-job in 5 jobs")
		}
		n := srv.Tracker.AddJobs(fmt.Sprintf("shard-%04d", attempt))[0]
		mu.Lock()
		armed = true
		mu.Unlock()
		if first == nil {
			first, _ = run("first life")
		}
		select {
		case <-killNow:
		case <-time.After(60 * time.Second):
			first.Process.Kill()
			t.Fatal("the worker never reported progress past step 25")
		}
		if j := trackerJob(t, srv.Tracker, n); j.State == trackertest.JobClosed {
			continue // done before the kill
		}
		if err := first.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = first.Wait()
		job = n
	}

	second, out := run("second life")
	deadline := time.Now().Add(60 * time.Second)
	for trackerJob(t, srv.Tracker, job).State != trackertest.JobClosed {
		if time.Now().After(deadline) {
			second.Process.Kill()
			t.Fatalf("job %d not completed after the restart; worker output:\n%s", job, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second life: %v\n%s", err, out)
	}

	j := trackerJob(t, srv.Tracker, job)
	want := fmt.Sprintf(`<!json!>{"file":"%s.tar","total_scraped":123}`, *j.Data["a"])
	if j.Completions["a"] != 1 || j.Outputs["a"] == nil || *j.Outputs["a"] != want {
		t.Errorf("job %d: %d completions, output %v, want 1 and %s", job, j.Completions["a"], j.Outputs["a"], want)
	}
	// Each job claimed exactly once: the killed job was handed back by the
	// journal, not released and claimed again.
	if got, jobs := srv.Tracker.Stats()["newJob"].Status[http.StatusOK], len(srv.Tracker.Jobs()); got != jobs {
		t.Errorf("newJob answered 200 %d times for %d jobs: a job was released and claimed again", got, jobs)
	}

	db, err := journal.Open(jpath, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The journal keeps the newest checkpoint of a job only, but the
	// progress text written with each checkpoint ("i / 100") stays: the
	// steps must only go up, across the kill.
	var steps []int
	var lastCheckpoint string
	resumed := false
	err = db.Events(journal.Filter{Job: job}, func(e journal.Event) error {
		switch e.Kind {
		case journal.KindCheckpoint:
			lastCheckpoint = string(e.Checkpoint)
		case journal.KindProgress:
			var i int
			if _, err := fmt.Sscanf(e.Progress, "%d / 100", &i); err == nil {
				steps = append(steps, i)
			}
		case journal.KindReleased:
			return fmt.Errorf("job %d released (seq %d): %s", job, e.Seq, e.Reason)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Events(journal.Filter{}, func(e journal.Event) error {
		if e.Kind == journal.KindReplayed {
			var r replay.Report
			if err := json.Unmarshal(e.Report, &r); err != nil {
				return err
			}
			for _, n := range r.Resumed {
				resumed = resumed || n == job
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !resumed {
		t.Errorf("no replay report names job %d resumed", job)
	}
	if !slices.IsSorted(steps) || len(slices.Compact(slices.Clone(steps))) != len(steps) || len(steps) < 2 || steps[0] > killAt {
		t.Errorf("progress of job %d in the journal: steps %v, want several, rising across the kill after step %d (a step seen twice was redone)", job, steps, killAt)
	}
	if lastCheckpoint != "100" {
		t.Errorf("newest checkpoint of job %d = %q, want 100", job, lastCheckpoint)
	}
	if !t.Failed() {
		t.Logf("job %d killed after step %d, resumed from its checkpoint, completed once", job, killAt)
	}
}

func trackerJob(t *testing.T, tr *trackertest.Tracker, n int) trackertest.JobView {
	t.Helper()
	for _, j := range tr.Jobs() {
		if j.Number == n {
			return j
		}
	}
	t.Fatalf("tracker has no job %d", n)
	return trackertest.JobView{}
}
