package session_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/distcompute/distcompute-go/session"
)

// TestAppliedEarlier checks the ErrAppliedEarlier rule: completeJob 403,
// flagInvalidData 403 and bye 404 mean "applied" only when an earlier
// attempt of the same call may have reached the tracker.
func TestAppliedEarlier(t *testing.T) {
	type call struct {
		name      string
		fn        func(context.Context, *session.Conn) error
		refusal   int
		body      string
		wantPlain error
	}
	calls := []call{
		{"completeJob", func(ctx context.Context, c *session.Conn) error {
			return c.CompleteJob(ctx, testToken, session.String("out"))
		}, 403, bodyNoJob, session.ErrNoJobHeld},
		{"flagInvalidData", func(ctx context.Context, c *session.Conn) error {
			return c.FlagInvalidData(ctx, testToken)
		}, 403, bodyNotWork, session.ErrNoJobHeld},
		{"bye", func(ctx context.Context, c *session.Conn) error {
			return c.Bye(ctx, testToken)
		}, 404, bodyNoWorker, session.ErrWorkerGone},
	}
	// first is what the first attempt meets; the second attempt gets the
	// refusal.
	firsts := []struct {
		name        string
		first       func(t *testing.T, w http.ResponseWriter, r *http.Request)
		wantApplied bool
	}{
		{"no earlier attempt", nil, false},
		{"after 500", func(_ *testing.T, w http.ResponseWriter, _ *http.Request) { answer(w, 500, bodyISE) }, true},
		{"after 502", func(_ *testing.T, w http.ResponseWriter, _ *http.Request) { answer(w, 502, htmlPage) }, true},
		{"after 503", func(_ *testing.T, w http.ResponseWriter, _ *http.Request) { answer(w, 503, "") }, true},
		{"after answer dropped", func(t *testing.T, w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			dropMidAnswer(t, w)
		}, true},
		{"after connection closed without answer", func(t *testing.T, w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.Close()
		}, true},
		{"after 429", func(_ *testing.T, w http.ResponseWriter, _ *http.Request) { answer(w, 429, "slow down") }, false},
	}
	for _, c := range calls {
		for _, f := range firsts {
			t.Run(c.name+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				srv, hits := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
					if n == 1 && f.first != nil {
						f.first(t, w, r)
						return
					}
					answer(w, c.refusal, c.body)
				})
				conn, _ := newConn(t, srv.URL, nil)
				err := c.fn(context.Background(), conn)
				want := c.wantPlain
				if f.wantApplied {
					want = session.ErrAppliedEarlier
				}
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
				if f.wantApplied && errors.Is(err, c.wantPlain) {
					t.Errorf("err = %v also wraps %v", err, c.wantPlain)
				}
				wantHits := int32(2)
				if f.first == nil {
					wantHits = 1
				}
				if got := hits.Load(); got != wantHits {
					t.Errorf("attempts = %d, want %d", got, wantHits)
				}
			})
		}
	}
}

// TestAppliedEarlierNotSent checks that a connection that could not be made
// (the request was never written) does not make a later refusal count as
// applied.
func TestAppliedEarlierNotSent(t *testing.T) {
	srv, hits := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 403, bodyNoJob) })
	var dials atomic.Int32
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) == 1 {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("refused by test")}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	c, _ := newConn(t, srv.URL, func(o *session.Options) { o.HTTPClient = &http.Client{Transport: tr} })
	err := c.CompleteJob(context.Background(), testToken, session.String("out"))
	if !errors.Is(err, session.ErrNoJobHeld) {
		t.Fatalf("err = %v, want ErrNoJobHeld (the first attempt never left)", err)
	}
	if dials.Load() != 2 || hits.Load() != 1 {
		t.Errorf("dials, hits = %d, %d; want 2, 1", dials.Load(), hits.Load())
	}
}

// TestAppliedEarlierOpaqueTransport checks that a transport that reports
// nothing of its progress counts as possibly having sent the request.
func TestAppliedEarlierOpaqueTransport(t *testing.T) {
	srv, _ := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 404, bodyNoWorker) })
	var calls atomic.Int32
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("opaque failure")
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	c, _ := newConn(t, srv.URL, func(o *session.Options) { o.HTTPClient = &http.Client{Transport: rt} })
	err := c.Bye(context.Background(), testToken)
	if !errors.Is(err, session.ErrAppliedEarlier) {
		t.Fatalf("err = %v, want ErrAppliedEarlier", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
