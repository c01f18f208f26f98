package crashtest

import (
	"math/rand"
	"net/http"
	"sync"
	"time"

	"github.com/distcompute/distcompute-go/internal/faultnet"
)

// ChaosFaults returns the network chaos (docs/DESIGN.md, "Fault model") as
// faultnet probabilities, seeded with seed. The effective rates per request:
// 20% dropped before sending, 20% applied by the tracker and the answer
// dropped, 5% answered 502. faultnet draws the three in that order, each only when the
// previous did not happen, so the configured probabilities are the
// conditional ones: 0.20, 0.20/0.80 and 0.05/0.60.
func ChaosFaults(seed int64) faultnet.Config {
	return faultnet.Config{
		Seed:        seed,
		DropRequest: 0.20,
		DropAnswer:  0.20 / 0.80,
		Status502:   0.05 / 0.60,
	}
}

// MaxLatency bounds the latency Jitter adds to every request.
const MaxLatency = 5 * time.Millisecond

// Jitter is an http.RoundTripper adding a uniform random latency in
// [0, MaxLatency) before each request. It is safe for concurrent use.
type Jitter struct {
	inner http.RoundTripper
	mu    sync.Mutex
	rng   *rand.Rand
}

// NewJitter wraps inner (nil: a clone of http.DefaultTransport).
func NewJitter(inner http.RoundTripper, seed int64) *Jitter {
	if inner == nil {
		inner = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Jitter{inner: inner, rng: rand.New(rand.NewSource(seed))}
}

// RoundTrip implements http.RoundTripper.
func (j *Jitter) RoundTrip(r *http.Request) (*http.Response, error) {
	j.mu.Lock()
	d := time.Duration(j.rng.Int63n(int64(MaxLatency)))
	j.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, r.Context().Err()
	}
	return j.inner.RoundTrip(r)
}

// ChaosTransport returns a faultnet.Transport with the network chaos
// (ChaosFaults) over a Jitter over a fresh clone of http.DefaultTransport.
func ChaosTransport(seed int64) *faultnet.Transport {
	return faultnet.New(NewJitter(nil, ^seed), ChaosFaults(seed))
}
