package faultnet_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/faultnet"
)

// counter is a server that counts the requests it applied.
func counter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, "200 OK")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func post(t *testing.T, c *http.Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest("POST", url+"/api/completeJob", strings.NewReader(`{"token":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err == nil {
		defer resp.Body.Close()
		io.ReadAll(resp.Body)
	}
	return resp, err
}

func TestForcedFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      faultnet.Fault
		wantErr    bool
		wantStatus int
		wantApply  int64
	}{
		{"none", faultnet.None, false, 200, 1},
		{"drop request", faultnet.DropRequest, true, 0, 0},
		{"drop answer", faultnet.DropAnswer, true, 0, 1},
		{"502", faultnet.Status502, false, 502, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, applied := counter(t)
			tr := faultnet.New(nil, faultnet.Config{})
			tr.Next(tt.fault)
			resp, err := post(t, tr.Client(), srv.URL)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, faultnet.ErrInjected) {
				t.Errorf("err = %v, want it to wrap ErrInjected", err)
			}
			if err == nil && resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := applied.Load(); got != tt.wantApply {
				t.Errorf("server applied %d requests, want %d", got, tt.wantApply)
			}
			// The forced fault is used once: the next request goes through.
			resp, err = post(t, tr.Client(), srv.URL)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("second request: %v, %v; want 200", resp, err)
			}
		})
	}
}

func TestProbabilitiesAndCounts(t *testing.T) {
	srv, applied := counter(t)
	cfg := faultnet.Config{Seed: 42, DropRequest: 0.2, DropAnswer: 0.2, Status502: 0.2}
	run := func() faultnet.Counts {
		tr := faultnet.New(nil, cfg)
		for i := 0; i < 500; i++ {
			post(t, tr.Client(), srv.URL)
		}
		return tr.Counts()
	}
	applied.Store(0)
	c := run()
	if c.Requests != 500 {
		t.Errorf("Requests = %d, want 500", c.Requests)
	}
	// p(drop request)=0.2, p(drop answer)=0.8*0.2=0.16, p(502)=0.8*0.8*0.2=0.128.
	check := func(name string, got int, want float64) {
		if g := float64(got) / 500; g < want-0.06 || g > want+0.06 {
			t.Errorf("%s rate = %.3f, want about %.3f", name, g, want)
		}
	}
	check("drop request", c.DroppedRequest, 0.2)
	check("drop answer", c.DroppedAnswer, 0.16)
	check("502", c.Status502, 0.128)
	wantApplied := int64(500 - c.DroppedRequest - c.Status502)
	if got := applied.Load(); got != wantApplied {
		t.Errorf("server applied %d, want %d (all but dropped requests and 502s)", got, wantApplied)
	}
	// Same seed, same faults.
	if c2 := run(); c2 != c {
		t.Errorf("same seed gave %+v then %+v", c, c2)
	}
}

func TestLatency(t *testing.T) {
	srv, _ := counter(t)
	tr := faultnet.New(nil, faultnet.Config{Latency: 30 * time.Millisecond})
	start := time.Now()
	if _, err := post(t, tr.Client(), srv.URL); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("request took %v, want at least 30ms", d)
	}
	if got := tr.Counts().Delayed; got != 1 {
		t.Errorf("Delayed = %d, want 1", got)
	}

	// The latency ends with the request's context.
	tr = faultnet.New(nil, faultnet.Config{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	start = time.Now()
	if _, err := tr.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled request took %v", d)
	}
}

func TestMatch(t *testing.T) {
	srv, applied := counter(t)
	tr := faultnet.New(nil, faultnet.Config{
		DropRequest: 1,
		Match:       func(r *http.Request) bool { return r.URL.Path == "/api/bye" },
	})
	if _, err := post(t, tr.Client(), srv.URL); err != nil {
		t.Fatalf("non-matching request failed: %v", err)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/bye", nil)
	if _, err := tr.Client().Do(req); !errors.Is(err, faultnet.ErrInjected) {
		t.Fatalf("matching request: err = %v, want injected", err)
	}
	if got := applied.Load(); got != 1 {
		t.Errorf("applied = %d, want 1", got)
	}
	c := tr.Counts()
	if c.Requests != 2 || c.DroppedRequest != 1 {
		t.Errorf("counts = %+v, want 2 requests, 1 dropped", c)
	}
}
