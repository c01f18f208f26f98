package proxy_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/trackertest"
)

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, u, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStatusHoldsNoSecret drives a local worker through a job with plain
// HTTP and checks /status, /metrics and the live page (dcworker's, package
// statusserver): the counters move, and neither the local token nor the
// tracker's appears.
func TestStatusHoldsNoSecret(t *testing.T) {
	srv := trackertest.Start(t, trackertest.Options{Jobs: []any{"j-1", "j-2"}, Seed: 5})
	addrCh := make(chan net.Addr, 1)
	rp := startProxy(t, srv.URL, func(c *proxy.Config) {
		c.StatusAddr = "127.0.0.1:0"
		c.StatusListening = func(a net.Addr) { addrCh <- a }
	})
	var status string
	select {
	case a := <-addrCh:
		status = "http://" + a.String()
	case <-time.After(time.Minute):
		t.Fatal("the status server did not start")
	}
	reg := register(t, rp.URL, "a")
	tok := `{"token":"` + reg.Token + `"}`
	if code, body := post(t, rp.URL+"/api/newJob", tok); code != http.StatusOK {
		t.Fatalf("newJob: %d %s", code, body)
	}
	if code, body := post(t, rp.URL+"/api/completeJob", `{"token":"`+reg.Token+`","data":"out"}`); code != http.StatusOK || body != "200 OK" {
		t.Fatalf("completeJob: %d %s", code, body)
	}
	// A resend of the same completion (the upstream client resends after a
	// broken connection) is answered as applied; another output is not.
	if code, body := post(t, rp.URL+"/api/completeJob", `{"token":"`+reg.Token+`","data":"out"}`); code != http.StatusOK {
		t.Errorf("resent completeJob: %d %s, want 200", code, body)
	}
	if code, body := post(t, rp.URL+"/api/completeJob", `{"token":"`+reg.Token+`","data":"other"}`); code != http.StatusForbidden || body != "You do not have an open job." {
		t.Errorf("second completeJob with other output: %d %q, want the tracker's 403", code, body)
	}

	_, st := get(t, status+"/status")
	_, metrics := get(t, status+"/metrics")
	_, page := get(t, status+"/page.json")
	_, html := get(t, status+"/")
	workers := srv.Tracker.Workers()
	if len(workers) != 1 {
		t.Fatalf("the tracker has %d workers, want 1", len(workers))
	}
	for name, secret := range map[string]string{"local": reg.Token, "tracker": workers[0].Token} {
		for path, body := range map[string]string{"/status": st, "/metrics": metrics, "/page.json": page} {
			if strings.Contains(body, secret) || strings.Contains(body, secret[:9]) {
				t.Errorf("%s shows more than 8 characters of the %s token", path, name)
			}
		}
	}
	// dcworker's page and metrics, with the proxy's name and counters.
	if !strings.Contains(html, "<title>dcproxy</title>") {
		t.Errorf("GET / is not the live page titled dcproxy")
	}
	var ps struct {
		Name          string
		Slots         []struct{ Worker, State string }
		Events        []struct{ Kind string }
		CounterLabels [][2]string `json:"counter_labels"`
	}
	if err := json.Unmarshal([]byte(page), &ps); err != nil {
		t.Fatalf("/page.json: %v\n%s", err, page)
	}
	if ps.Name != "dcproxy" || len(ps.Slots) != 1 || ps.Slots[0].Worker != workers[0].DisplayName || ps.Slots[0].State != "idle" ||
		len(ps.Events) == 0 || len(ps.CounterLabels) == 0 {
		t.Errorf("/page.json: %s", page)
	}
	for _, m := range []string{`dcproxy_slots{state="idle"} 1`, "dcproxy_draining 0", "go_goroutines", "process_open_fds"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s:\n%s", m, metrics)
		}
	}
	if !strings.Contains(st, workers[0].DisplayName) {
		t.Errorf("/status does not name the worker %s:\n%s", workers[0].DisplayName, st)
	}
	if reg.Token == workers[0].Token {
		t.Errorf("the program was given the tracker's token")
	}
	var s proxy.Status
	if err := json.Unmarshal([]byte(st), &s); err != nil {
		t.Fatalf("/status: %v\n%s", err, st)
	}
	if s.Counters["completed"] != 1 || s.Counters["claims"] != 1 || s.Counters["resends_answered"] != 1 {
		t.Errorf("counters %v, want 1 claim, 1 completion, 1 resend answered", s.Counters)
	}
	if !strings.Contains(metrics, "dcproxy_jobs_completed_total 1\n") {
		t.Errorf("/metrics lacks dcproxy_jobs_completed_total 1:\n%s", metrics)
	}
	if n := srv.Tracker.Leaderboard()["n"]; n != 1 {
		t.Errorf("completions at the tracker: %d, want 1", n)
	}
}

// register registers a local worker (nickname "n") at stage and returns the
// proxy's answer.
func register(t *testing.T, proxyURL, stage string) (reg struct{ Token string }) {
	t.Helper()
	code, body := get(t, proxyURL+"/api/new?"+url.Values{"nickname": {"n"}, "stage": {stage}}.Encode())
	if code != http.StatusOK {
		t.Fatalf("register: %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &reg); err != nil {
		t.Fatal(err)
	}
	return reg
}
