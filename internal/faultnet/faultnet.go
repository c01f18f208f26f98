// Package faultnet injects network faults into HTTP clients for tests.
//
// A Transport wraps an http.RoundTripper and, for each request, may drop the
// request before it leaves (the server never sees it), drop the answer after the
// server applied the request, answer 502 Bad Gateway without reaching the server,
// or add latency. Faults are drawn from a seeded RNG, so a failing run can be
// reproduced from its seed; faults can also be forced for the next requests with
// Transport.Next, for tests that need one exact failure at one exact place.
package faultnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"sync"
	"time"
)

// Fault is one kind of injected failure.
type Fault int

const (
	// None lets the request through untouched.
	None Fault = iota
	// DropRequest fails the request before it is sent: the inner transport is
	// never called, so the server never sees it.
	DropRequest
	// DropAnswer sends the request, lets the server apply it, discards the
	// answer and returns an error, as a connection cut mid-answer would.
	DropAnswer
	// Status502 answers 502 Bad Gateway without reaching the server, as a proxy
	// in front of a dead tracker does.
	Status502
)

// String names the fault for logs and test output.
func (f Fault) String() string {
	switch f {
	case None:
		return "none"
	case DropRequest:
		return "drop-request"
	case DropAnswer:
		return "drop-answer"
	case Status502:
		return "502"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// ErrInjected is wrapped by every error the Transport invents, so tests can tell
// injected failures from real ones with errors.Is.
var ErrInjected = errors.New("faultnet: injected fault")

// Config sets the probability of each fault. Probabilities are in [0, 1] and are
// drawn in this order for each request: DropRequest, DropAnswer, Status502 (at
// most one of them happens), then Latency independently.
type Config struct {
	// Seed seeds the RNG; the same seed and the same sequence of requests give
	// the same faults.
	Seed int64

	DropRequest float64 // probability of DropRequest
	DropAnswer  float64 // probability of DropAnswer
	Status502   float64 // probability of Status502

	// Latency is added before the request is sent, with probability
	// LatencyProb (0 with a non-zero Latency means always). The wait ends early
	// with the request's context.
	Latency     time.Duration
	LatencyProb float64

	// Match, if set, limits random faults and latency to requests for which it
	// returns true (e.g. only POST /api/completeJob). Forced faults (Next)
	// also only apply to matching requests.
	Match func(*http.Request) bool
}

// Counts says how many requests went through the Transport and how many of each
// fault it injected.
type Counts struct {
	Requests       int // every RoundTrip call
	DroppedRequest int
	DroppedAnswer  int
	Status502      int
	Delayed        int
}

// Transport is an http.RoundTripper injecting faults. It is safe for concurrent
// use. The zero value is not usable; call New.
type Transport struct {
	inner http.RoundTripper

	mu     sync.Mutex
	cfg    Config
	rng    *rand.Rand
	forced []Fault
	counts Counts
}

// New wraps inner (nil: http.DefaultTransport) with fault injection per cfg.
func New(inner http.RoundTripper, cfg Config) *Transport {
	if inner == nil {
		inner = http.DefaultTransport
	}
	return &Transport{inner: inner, cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed))}
}

// SetConfig replaces the probabilities (and Match) from now on; the RNG keeps
// its state (cfg.Seed is ignored).
func (t *Transport) SetConfig(cfg Config) {
	t.mu.Lock()
	t.cfg = cfg
	t.mu.Unlock()
}

// Next forces the given faults, in order, on the next matching requests, before
// any random draw. Next(DropAnswer) makes the next matching request be applied
// by the server and its answer lost.
func (t *Transport) Next(faults ...Fault) {
	t.mu.Lock()
	t.forced = append(t.forced, faults...)
	t.mu.Unlock()
}

// Counts returns a copy of the counters.
func (t *Transport) Counts() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts
}

// Client returns an *http.Client using the Transport, not following redirects
// (as session.Conn expects of its client).
func (t *Transport) Client() *http.Client {
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// decide draws the fault and latency for one request.
func (t *Transport) decide(r *http.Request) (Fault, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts.Requests++
	if t.cfg.Match != nil && !t.cfg.Match(r) {
		return None, 0
	}
	f := None
	if len(t.forced) > 0 {
		f = t.forced[0]
		t.forced = t.forced[1:]
	} else {
		// Always draw three numbers so the sequence does not depend on
		// which probabilities are zero.
		p1, p2, p3 := t.rng.Float64(), t.rng.Float64(), t.rng.Float64()
		switch {
		case p1 < t.cfg.DropRequest:
			f = DropRequest
		case p2 < t.cfg.DropAnswer:
			f = DropAnswer
		case p3 < t.cfg.Status502:
			f = Status502
		}
	}
	var d time.Duration
	if t.cfg.Latency > 0 && (t.cfg.LatencyProb == 0 || t.rng.Float64() < t.cfg.LatencyProb) {
		d = t.cfg.Latency
		t.counts.Delayed++
	}
	switch f {
	case DropRequest:
		t.counts.DroppedRequest++
	case DropAnswer:
		t.counts.DroppedAnswer++
	case Status502:
		t.counts.Status502++
	}
	return f, d
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	f, d := t.decide(r)
	if d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			closeBody(r)
			return nil, r.Context().Err()
		}
	}
	switch f {
	case DropRequest:
		closeBody(r)
		return nil, fmt.Errorf("%w: request to %s dropped before sending", ErrInjected, r.URL.Path)
	case Status502:
		closeBody(r)
		body := "Bad Gateway"
		return &http.Response{
			Status:        "502 Bad Gateway",
			StatusCode:    http.StatusBadGateway,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			Body:          io.NopCloser(bytes.NewBufferString(body)),
			ContentLength: int64(len(body)),
			Request:       r,
		}, nil
	case DropAnswer:
		resp, err := t.inner.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		// Read the whole answer so the server has finished applying and
		// answering before we pretend the connection broke.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%w: answer from %s dropped after the server applied it", ErrInjected, r.URL.Path)
	}
	return t.inner.RoundTrip(r)
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}
