package session_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/session"
)

// wantServerError checks that err is a *ServerError with the given status.
func wantServerError(t *testing.T, err error, status int) *session.ServerError {
	t.Helper()
	var se *session.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want *session.ServerError", err, err)
	}
	if se.Status != status {
		t.Fatalf("ServerError.Status = %d, want %d (err %v)", se.Status, status, err)
	}
	return se
}

// TestFailureModes runs every endpoint against one httptest server per
// failure mode and checks the error class and the number of attempts.
func TestFailureModes(t *testing.T) {
	type handler = func(n int, w http.ResponseWriter, r *http.Request)
	modes := []struct {
		name     string
		handler  func(t *testing.T, ep endpoint) handler
		adjust   func(*session.Options)
		wantHits int32
		// atLeast: wantHits is a floor, not a count (an attempt that
		// answers late on a loaded machine times out too, and is retried).
		atLeast bool
		check   func(t *testing.T, err error)
	}{
		{
			name: "200",
			handler: func(_ *testing.T, ep endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 200, ep.okBody) }
			},
			wantHits: 1,
		},
		{
			name: "500 always",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 500, bodyISE) }
			},
			wantHits: 4,
			check: func(t *testing.T, err error) {
				se := wantServerError(t, err, 500)
				if se.Body != bodyISE {
					t.Errorf("Body = %q, want %q", se.Body, bodyISE)
				}
			},
		},
		{
			name: "502 then 200",
			handler: func(_ *testing.T, ep endpoint) handler {
				return func(n int, w http.ResponseWriter, _ *http.Request) {
					if n == 1 {
						answer(w, 502, htmlPage)
						return
					}
					answer(w, 200, ep.okBody)
				}
			},
			wantHits: 2,
		},
		{
			name: "503 always",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 503, "busy") }
			},
			wantHits: 4,
			check:    func(t *testing.T, err error) { wantServerError(t, err, 503) },
		},
		{
			name: "429 then 200",
			handler: func(_ *testing.T, ep endpoint) handler {
				return func(n int, w http.ResponseWriter, _ *http.Request) {
					if n == 1 {
						answer(w, 429, "slow down")
						return
					}
					answer(w, 200, ep.okBody)
				}
			},
			wantHits: 2,
		},
		{
			name: "429 always",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 429, "slow down") }
			},
			wantHits: 4,
			check:    func(t *testing.T, err error) { wantServerError(t, err, 429) },
		},
		{
			name: "dropped mid-answer then 200",
			handler: func(t *testing.T, ep endpoint) handler {
				return func(n int, w http.ResponseWriter, _ *http.Request) {
					if n == 1 {
						dropMidAnswer(t, w)
						return
					}
					answer(w, 200, ep.okBody)
				}
			},
			wantHits: 2,
		},
		{
			name: "dropped mid-answer always",
			handler: func(t *testing.T, _ endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { dropMidAnswer(t, w) }
			},
			wantHits: 4,
			check: func(t *testing.T, err error) {
				var se *session.ServerError
				if errors.As(err, &se) {
					t.Fatalf("err = %v, want a transport error, not *ServerError", err)
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("err = %v, want it to wrap io.ErrUnexpectedEOF", err)
				}
			},
		},
		{
			name: "answer over the size limit",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 200, strings.Repeat("x", 1000)) }
			},
			adjust:   func(o *session.Options) { o.MaxResponseBytes = 64 },
			wantHits: 1,
			check: func(t *testing.T, err error) {
				wantServerError(t, err, 200)
				if !errors.Is(err, session.ErrResponseTooLarge) {
					t.Errorf("err = %v, want ErrResponseTooLarge", err)
				}
			},
		},
		{
			name: "HTML error page with 200",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "text/html")
					_, _ = io.WriteString(w, htmlPage)
				}
			},
			wantHits: 1,
			check:    func(t *testing.T, err error) { wantServerError(t, err, 200) },
		},
		{
			name: "HTML page with 404 (wrong base URL)",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 404, htmlPage) }
			},
			wantHits: 1,
			check:    func(t *testing.T, err error) { wantServerError(t, err, 404) },
		},
		{
			name: "404 Not Found (unknown path)",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 404, "Not Found") }
			},
			wantHits: 1,
			check:    func(t *testing.T, err error) { wantServerError(t, err, 404) },
		},
		{
			name: "401 not retried",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 401, "Unauthorized") }
			},
			wantHits: 1,
			check:    func(t *testing.T, err error) { wantServerError(t, err, 401) },
		},
		{
			name: "405 not retried",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 405, "Method Not Allowed") }
			},
			wantHits: 1,
			check:    func(t *testing.T, err error) { wantServerError(t, err, 405) },
		},
		{
			name: "422 not retried",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) {
					answer(w, 422, `{"detail":[{"loc":["body","token"],"msg":"field required","type":"value_error.missing"}]}`)
				}
			},
			wantHits: 1,
			check: func(t *testing.T, err error) {
				var ve *session.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want *ValidationError", err)
				}
				if len(ve.Detail) != 1 || ve.Detail[0].Msg != "field required" || ve.Detail[0].Type != "value_error.missing" {
					t.Errorf("Detail = %+v, want one 'field required'", ve.Detail)
				}
				if !strings.Contains(err.Error(), "body.token: field required") {
					t.Errorf("err = %q, want it to name body.token", err)
				}
			},
		},
		{
			name: "400 not retried",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 400, "Bad Request") }
			},
			wantHits: 1,
			check: func(t *testing.T, err error) {
				if err == nil {
					t.Fatal("err = nil, want an error")
				}
			},
		},
		{
			name: "307 redirect not followed",
			handler: func(*testing.T, endpoint) handler {
				return func(_ int, w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/elsewhere" {
						answer(w, 200, bodyOK)
						return
					}
					w.Header().Set("Location", "/elsewhere")
					w.WriteHeader(307)
				}
			},
			wantHits: 1,
			check:    func(t *testing.T, err error) { wantServerError(t, err, 307) },
		},
		{
			name: "attempt timeout then 200",
			handler: func(_ *testing.T, ep endpoint) handler {
				return func(n int, w http.ResponseWriter, r *http.Request) {
					if n == 1 {
						_, _ = io.ReadAll(r.Body) // so that the server notices the client hanging up
						select {
						case <-r.Context().Done():
						case <-time.After(30 * time.Second):
						}
						return
					}
					answer(w, 200, ep.okBody)
				}
			},
			adjust:   func(o *session.Options) { o.Retry.AttemptTimeout = 300 * time.Millisecond },
			wantHits: 2,
			atLeast:  true,
		},
	}
	for _, m := range modes {
		for _, ep := range endpoints() {
			t.Run(m.name+"/"+ep.name, func(t *testing.T) {
				t.Parallel()
				srv, hits := server(t, m.handler(t, ep))
				c, _ := newConn(t, srv.URL, m.adjust)
				err := ep.call(context.Background(), c)
				if got := hits.Load(); got != m.wantHits && !(m.atLeast && got > m.wantHits) {
					t.Errorf("attempts = %d, want %d", got, m.wantHits)
				}
				if m.check == nil {
					if err != nil {
						t.Fatalf("err = %v, want nil", err)
					}
					return
				}
				m.check(t, err)
				if !strings.HasPrefix(err.Error(), "session: "+ep.name+": ") {
					t.Errorf("err = %q, want prefix %q", err, "session: "+ep.name+": ")
				}
			})
		}
	}
}

// closedURL returns the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestUnreachable(t *testing.T) {
	for _, ep := range endpoints() {
		t.Run(ep.name, func(t *testing.T) {
			c, logs := newConn(t, closedURL(t), nil)
			err := ep.call(context.Background(), c)
			if !errors.Is(err, errConnRefused) {
				t.Fatalf("err = %v, want %v", err, errConnRefused)
			}
			var se *session.ServerError
			if errors.As(err, &se) {
				t.Errorf("err = %v, want no *ServerError", err)
			}
			if got := strings.Count(logs.String(), "session: retrying"); got != 3 {
				t.Errorf("retry notices = %d, want 3 (MaxRetries)", got)
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	t.Run("before the call", func(t *testing.T) {
		for _, ep := range endpoints() {
			srv, hits := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 200, ep.okBody) })
			c, _ := newConn(t, srv.URL, nil)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := ep.call(ctx, c)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: err = %v, want context.Canceled", ep.name, err)
			}
			if got := hits.Load(); got != 0 {
				t.Errorf("%s: attempts = %d, want 0", ep.name, got)
			}
		}
	})
	t.Run("during the backoff wait", func(t *testing.T) {
		srv, hits := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 500, bodyISE) })
		c, _ := newConn(t, srv.URL, func(o *session.Options) {
			o.Retry.InitialInterval = 10 * time.Second
			o.Retry.MaxInterval = 10 * time.Second
		})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := c.CompleteJob(ctx, testToken, session.String("x"))
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("returned after %v, want at once after the cancel", elapsed)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if !strings.Contains(err.Error(), "500") {
			t.Errorf("err = %q, want it to mention the last error (500)", err)
		}
		if got := hits.Load(); got != 1 {
			t.Errorf("attempts = %d, want 1", got)
		}
	})
	t.Run("while the tracker is unreachable", func(t *testing.T) {
		c, _ := newConn(t, closedURL(t), func(o *session.Options) {
			o.Retry.MaxRetries = 0
			o.Retry.InitialInterval = 20 * time.Millisecond
			o.Retry.MaxInterval = 20 * time.Millisecond
		})
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		err := c.Bye(ctx, testToken)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), errConnRefused.Error()) {
			t.Errorf("err = %q, want it to mention the last failure", err)
		}
	})
	t.Run("during an attempt", func(t *testing.T) {
		srv, _ := server(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		})
		c, _ := newConn(t, srv.URL, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.NewJob(ctx, testToken)
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("returned after %v, want at once after the deadline", elapsed)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		retryAfter    func() string
		maxRetryAfter time.Duration
		wantMin       time.Duration
		wantMax       time.Duration
	}{
		{"429 seconds", 429, func() string { return "1" }, 2 * time.Second, 900 * time.Millisecond, 5 * time.Second},
		{"503 seconds capped", 503, func() string { return "3600" }, 200 * time.Millisecond, 150 * time.Millisecond, 5 * time.Second},
		{"429 HTTP date capped", 429, func() string { return time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat) }, 300 * time.Millisecond, 250 * time.Millisecond, 5 * time.Second},
		{"429 HTTP date in the past", 429, func() string { return time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat) }, 2 * time.Second, 0, time.Second},
		{"429 unreadable", 429, func() string { return "soon" }, 2 * time.Second, 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var first, second atomic.Int64 // UnixNano of the attempts
			srv, hits := server(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					first.Store(time.Now().UnixNano())
					w.Header().Set("Retry-After", tt.retryAfter())
					answer(w, tt.status, "wait")
					return
				}
				second.Store(time.Now().UnixNano())
				answer(w, 200, "7")
			})
			c, _ := newConn(t, srv.URL, func(o *session.Options) { o.Retry.MaxRetryAfter = tt.maxRetryAfter })
			n, err := c.JobCount(context.Background(), "a")
			if err != nil || n != 7 {
				t.Fatalf("JobCount = %d, %v; want 7, nil", n, err)
			}
			if hits.Load() != 2 {
				t.Fatalf("attempts = %d, want 2", hits.Load())
			}
			gap := time.Duration(second.Load() - first.Load())
			if gap < tt.wantMin || gap > tt.wantMax {
				t.Errorf("wait between attempts = %v, want between %v and %v", gap, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func TestMaxElapsedTime(t *testing.T) {
	// The budget bounds the retries; how many fit in it depends on the
	// machine. Each attempt on loopback takes milliseconds and the waits 10
	// to 20 ms, but a loaded machine can spend the whole budget on the
	// first attempt, which is then rightly the last: the budget doubles
	// until the first attempt left room for a retry. One attempt that gave
	// up with room left is the failure.
	for budget := time.Second; ; budget *= 2 {
		srv, hits := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 502, htmlPage) })
		c, _ := newConn(t, srv.URL, func(o *session.Options) {
			o.Retry.MaxRetries = 0
			o.Retry.InitialInterval = 10 * time.Millisecond
			o.Retry.MaxInterval = 20 * time.Millisecond
			o.Retry.MaxElapsedTime = budget
		})
		start := time.Now()
		err := c.Bye(context.Background(), testToken)
		elapsed := time.Since(start)
		if elapsed > budget+10*time.Second {
			t.Errorf("gave up after %v, want about %v", elapsed, budget)
		}
		wantServerError(t, err, 502)
		if hits.Load() >= 2 {
			return
		}
		if elapsed < budget-50*time.Millisecond {
			t.Fatalf("one attempt, given up after %v of a %v budget: want a retry within the budget", elapsed, budget)
		}
		if budget >= 16*time.Second {
			t.Fatalf("the first attempt took the whole budget (%v of %v) at every size: the machine is too slow for this test", elapsed, budget)
		}
		t.Logf("the first attempt used the %v budget (%v): doubling it", budget, elapsed)
	}
}

func TestRetryLogging(t *testing.T) {
	srv, _ := server(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			answer(w, 500, bodyISE)
			return
		}
		answer(w, 200, "True")
	})
	c, logs := newConn(t, srv.URL, nil)
	alive, err := c.IsAlive(context.Background(), testToken)
	if err != nil || !alive {
		t.Fatalf("IsAlive = %v, %v; want true, nil", alive, err)
	}
	out := logs.String()
	if got := strings.Count(out, "level=WARN msg=\"session: retrying\""); got != 2 {
		t.Errorf("retry notices = %d, want 2\n%s", got, out)
	}
	if got := strings.Count(out, "session: recovered"); got != 1 {
		t.Errorf("recovery notices = %d, want 1\n%s", got, out)
	}
	if !strings.Contains(out, "endpoint=validateWorker") {
		t.Errorf("log lacks endpoint=validateWorker:\n%s", out)
	}
}
