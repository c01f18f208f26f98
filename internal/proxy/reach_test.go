package proxy_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/trackertest"
)

// TestStatusReach: GET /status and /metrics follow the tracker's
// reachability from the requests the proxy sends it, as dcworker's do: a
// 503 makes it unreachable (since when, and why), the next answer
// reachable again.
func TestStatusReach(t *testing.T) {
	srv := trackertest.Start(t, trackertest.Options{Jobs: []any{"j-1"}, Seed: 5})
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
	reach := func() proxy.Status {
		t.Helper()
		_, body := get(t, status+"/status")
		var s proxy.Status
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatalf("/status: %v\n%s", err, body)
		}
		if s.Reach == nil {
			t.Fatalf("/status has no tracker reachability:\n%s", body)
		}
		return s
	}
	metric := func(want string) {
		t.Helper()
		if _, m := get(t, status+"/metrics"); !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	register(t, rp.URL, "a")
	if s := reach(); !s.Reachable || s.DownSince != nil || s.LastError != "" {
		t.Errorf("after a registration: %+v, want reachable", *s.Reach)
	}
	metric("dcproxy_tracker_reachable 1")

	// jobCount is retried while the tracker answers 503; the program
	// hangs up once the proxy shows the tracker unreachable.
	srv.Tracker.SetFault(func(*http.Request, string) (trackertest.Fault, time.Duration) { return trackertest.Fault503, 0 })
	before := time.Now().UTC()
	ctx, cancel := context.WithCancel(context.Background())
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rp.URL+"/api/jobCount?stage=a", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	s := reach()
	for deadline := time.Now().Add(time.Minute); s.Reachable && time.Now().Before(deadline); s = reach() {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-answered; code != 0 {
		t.Errorf("jobCount answered %d while the tracker answers 503, want the proxy to keep retrying", code)
	}
	if s.Reachable || s.DownSince == nil || s.DownSince.Before(before.Add(-time.Second)) || !strings.Contains(s.LastError, "503") {
		t.Errorf("while the tracker answers 503: %+v, want unreachable since the first 503", *s.Reach)
	}
	metric("dcproxy_tracker_reachable 0")

	srv.Tracker.SetFault(nil)
	if code, body := get(t, rp.URL+"/api/jobCount?stage=a"); code != http.StatusOK || body != "1" {
		t.Fatalf("jobCount: %d %q", code, body)
	}
	if s := reach(); !s.Reachable || s.DownSince != nil || s.LastError != "" {
		t.Errorf("after the tracker answered again: %+v, want reachable", *s.Reach)
	}
	metric("dcproxy_tracker_reachable 1")
}
