package proxy_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/trackertest"
)

// TestRestartKeepsTokensAndHandsBack: a proxy stopped while its program
// holds a job, restarted on the same journal, recognises the program's
// local token, hands the held job back to a resent newJob (the program
// never saw the first answer, as when the proxy died mid-answer), and
// answers a resent completion as applied.
func TestRestartKeepsTokensAndHandsBack(t *testing.T) {
	srv := trackertest.Start(t, trackertest.Options{Jobs: []any{"j-1", "j-2", "j-3"}, Seed: 9})
	jpath := filepath.Join(t.TempDir(), "proxy.db")
	first := startProxy(t, srv.URL, func(c *proxy.Config) { c.Journal = jpath })

	reg := register(t, first.URL, "a")
	tok := `{"token":"` + reg.Token + `"}`
	code, body := post(t, first.URL+"/api/newJob", tok)
	if code != http.StatusOK {
		t.Fatalf("newJob: %d %s", code, body)
	}
	var job struct {
		Data   string
		Number int
	}
	if err := json.Unmarshal([]byte(body), &job); err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(); err != nil && !errors.Is(err, proxy.ErrStopped) {
		t.Fatalf("stopping the first proxy: %v", err)
	}

	second := startProxy(t, srv.URL, func(c *proxy.Config) { c.Journal = jpath })
	if code, body := post(t, second.URL+"/api/validateWorker", tok); code != http.StatusOK || body != "True" {
		t.Fatalf("validateWorker after the restart: %d %q, want True (the local token survives)", code, body)
	}
	code, body = post(t, second.URL+"/api/newJob", tok)
	var again struct {
		Data   string
		Number int
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &again) != nil || again != job {
		t.Fatalf("resent newJob after the restart: %d %s, want job %d handed back", code, body, job.Number)
	}
	done := `{"token":"` + reg.Token + `","data":"out"}`
	if code, body := post(t, second.URL+"/api/completeJob", done); code != http.StatusOK {
		t.Fatalf("completeJob: %d %s", code, body)
	}
	if code, body := post(t, second.URL+"/api/completeJob", done); code != http.StatusOK {
		t.Errorf("resent completeJob: %d %s, want 200", code, body)
	}
	v, _ := srv.Tracker.Job(job.Number)
	if v.State != trackertest.JobClosed || v.Completions["a"] != 1 || v.Outputs["a"] == nil || *v.Outputs["a"] != "out" {
		t.Errorf("job %d at the tracker: %s, %d completions, output %v; want closed once with \"out\"", job.Number, v.State, v.Completions["a"], v.Outputs["a"])
	}
	if held := srv.Tracker.JobCounts()[trackertest.JobHeld]; held != 0 {
		t.Errorf("%d jobs held at the tracker", held)
	}
}
