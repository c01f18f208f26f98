package preempt_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/preempt"
)

// loopbackOnly is an http.Client whose dialer refuses every address that is
// not loopback, and records what it refused. Every test in this package
// sends its requests through one, so no test can reach the real metadata
// service even by mistake.
type loopbackOnly struct {
	mu      sync.Mutex
	refused []string
}

func (l *loopbackOnly) client() *http.Client {
	d := &net.Dialer{Timeout: time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				l.mu.Lock()
				l.refused = append(l.refused, addr)
				l.mu.Unlock()
				return nil, errors.New("test transport: refusing non-loopback address " + addr)
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func (l *loopbackOnly) refusedAddrs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.refused...)
}

func watch(t *testing.T, p preempt.Provider, addr string, timeout time.Duration) (preempt.Notice, error) {
	t.Helper()
	lo := &loopbackOnly{}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	n, err := preempt.Watch(ctx, p, &preempt.Options{
		Addr: addr, HTTPClient: lo.client(), Interval: 20 * time.Millisecond,
	})
	if got := lo.refusedAddrs(); len(got) > 0 {
		t.Errorf("watcher tried to dial non-loopback addresses %v", got)
	}
	return n, err
}

// flip is a notice that becomes true after n polls.
type flip struct{ polls, after atomic.Int64 }

func (f *flip) now() bool { return f.polls.Add(1) > f.after.Load() }

func TestAWS(t *testing.T) {
	var f flip
	f.after.Store(3)
	var tokens atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "missing ttl", http.StatusBadRequest)
			return
		}
		tokens.Add(1)
		w.Write([]byte("tok-123"))
	})
	mux.HandleFunc("GET /latest/meta-data/spot/instance-action", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-aws-ec2-metadata-token") != "tok-123" {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		if !f.now() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"action":"terminate","time":"2026-11-26T23:00:00Z"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	n, err := watch(t, preempt.AWS, srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n.Provider != preempt.AWS || n.Action != "terminate" || n.Time.IsZero() {
		t.Errorf("notice = %+v", n)
	}
	if got := tokens.Load(); got != 1 {
		t.Errorf("token requests = %d, want 1 (reused)", got)
	}
}

func TestAWSWithoutIMDSv2(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /latest/meta-data/spot/instance-action", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"action":"stop","time":"2026-11-26T23:00:00Z"}`))
	})
	srv := httptest.NewServer(mux) // PUT /latest/api/token answers 404
	defer srv.Close()
	n, err := watch(t, preempt.AWS, srv.URL, 5*time.Second)
	if err != nil || n.Action != "stop" {
		t.Fatalf("Watch = %+v, %v", n, err)
	}
}

func TestGCP(t *testing.T) {
	var f flip
	f.after.Store(2)
	var longPolls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/computeMetadata/v1/instance/preempted" || r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "bad request", http.StatusForbidden)
			return
		}
		if r.URL.Query().Get("wait_for_change") == "true" {
			longPolls.Add(1)
		}
		w.Header().Set("ETag", "e1")
		if f.now() {
			w.Write([]byte("TRUE"))
			return
		}
		w.Write([]byte("FALSE"))
	}))
	defer srv.Close()
	n, err := watch(t, preempt.GCP, srv.URL, 5*time.Second)
	if err != nil || n.Action != "preempted" || n.Provider != preempt.GCP {
		t.Fatalf("Watch = %+v, %v", n, err)
	}
	if longPolls.Load() == 0 {
		t.Error("watcher never long-polled with wait_for_change=true")
	}
}

func TestAzure(t *testing.T) {
	var f flip
	f.after.Store(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metadata/scheduledevents" || r.URL.Query().Get("api-version") != "2020-07-01" || r.Header.Get("Metadata") != "true" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if !f.now() {
			w.Write([]byte(`{"DocumentIncarnation":1,"Events":[{"EventId":"x","EventType":"Freeze","NotBefore":""}]}`))
			return
		}
		w.Write([]byte(`{"DocumentIncarnation":2,"Events":[{"EventId":"y","EventType":"Preempt","ResourceType":"VirtualMachine","Resources":["vm1"],"EventStatus":"Scheduled","NotBefore":"Thu, 26 Nov 2026 23:00:00 GMT"}]}`))
	}))
	defer srv.Close()
	n, err := watch(t, preempt.Azure, srv.URL, 5*time.Second)
	if err != nil || n.Action != "Preempt" || n.Time.IsZero() {
		t.Fatalf("Watch = %+v, %v", n, err)
	}
}

func TestNoNoticeUntilContextEnds(t *testing.T) {
	for _, p := range []preempt.Provider{preempt.AWS, preempt.GCP, preempt.Azure} {
		t.Run(string(p), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case strings.HasPrefix(r.URL.Path, "/computeMetadata"):
					w.Write([]byte("FALSE"))
				case strings.HasPrefix(r.URL.Path, "/metadata"):
					w.Write([]byte(`{"DocumentIncarnation":0,"Events":[]}`))
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			_, err := watch(t, p, srv.URL, 150*time.Millisecond)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want deadline exceeded", err)
			}
		})
	}
}

func TestUnreachableKeepsTrying(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = watch(t, preempt.AWS, addr, 150*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

// TestDefaultAddressNeverDialled checks that, without Addr, the watcher
// targets DefaultAddr — and that the test transport stops that request
// before anything leaves the machine. Tests must always pass a fake address.
func TestDefaultAddressNeverDialled(t *testing.T) {
	if preempt.DefaultAddr != "169.254.169.254" {
		t.Fatalf("DefaultAddr = %q", preempt.DefaultAddr)
	}
	if got := (&preempt.Options{}).BaseURL(); got != "http://169.254.169.254" {
		t.Errorf("BaseURL() = %q", got)
	}
	for _, p := range []preempt.Provider{preempt.AWS, preempt.GCP, preempt.Azure} {
		lo := &loopbackOnly{}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := preempt.Watch(ctx, p, &preempt.Options{HTTPClient: lo.client(), Interval: 10 * time.Millisecond})
		cancel()
		if err == nil {
			t.Fatalf("%s: Watch against the default address succeeded", p)
		}
		refused := lo.refusedAddrs()
		if len(refused) == 0 {
			t.Fatalf("%s: the watcher did not target the default address", p)
		}
		for _, a := range refused {
			if a != preempt.DefaultAddr+":80" {
				t.Errorf("%s: refused %q, want %s:80", p, a, preempt.DefaultAddr)
			}
		}
	}
}

func TestParseProvider(t *testing.T) {
	for in, want := range map[string]preempt.Provider{"aws": preempt.AWS, "GCP": preempt.GCP, " azure ": preempt.Azure} {
		if got, err := preempt.ParseProvider(in); err != nil || got != want {
			t.Errorf("ParseProvider(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := preempt.ParseProvider("oracle"); !errors.Is(err, preempt.ErrUnknownProvider) {
		t.Errorf("ParseProvider(oracle) err = %v", err)
	}
}
