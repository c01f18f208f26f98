package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// reachability follows whether the tracker answers, from every request the
// proxy sends it (its slot clients' and the requests it passes through; see
// reachTransport), as dcworker does: GET /status, the live page and
// /metrics show it, and the log says so in one line per change.
type reachability struct {
	host string
	log  *slog.Logger

	mu      sync.Mutex
	down    bool
	since   time.Time // of the current outage
	lastErr string
}

func newReachability(tracker *url.URL, log *slog.Logger) *reachability {
	return &reachability{host: tracker.Host, log: log} // never the user:password part
}

// observe records the outcome of one request: no answer, or a 5xx or 429
// answer, is a failure; any other answer means the tracker is reachable. A
// request its caller cancelled says nothing.
func (r *reachability) observe(resp *http.Response, err error) {
	var why string
	switch {
	case err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return
	case err != nil:
		why = statusserver.ShortNetError(err)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		why = fmt.Sprintf("answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case why != "" && !r.down:
		r.down, r.since, r.lastErr = true, time.Now(), why
		r.log.Warn(fmt.Sprintf("tracker %s unreachable: %s; the programs' calls wait and are retried", r.host, why))
	case why != "":
		r.lastErr = why
	case r.down:
		r.log.Info(fmt.Sprintf("tracker %s reachable again after %s", r.host, time.Since(r.since).Round(time.Second)))
		r.down, r.lastErr = false, ""
	}
}

func (r *reachability) snapshot() statusserver.Reach {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down {
		return statusserver.Reach{Reachable: true}
	}
	since := r.since.UTC()
	return statusserver.Reach{DownSince: &since, LastError: r.lastErr}
}

// reachTransport tells reach the outcome of every request to the tracker.
type reachTransport struct {
	next  http.RoundTripper
	reach *reachability
}

func (t reachTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	t.reach.observe(resp, err)
	return resp, err
}

// reachClient is hc with reachTransport around its transport.
func reachClient(hc *http.Client, reach *reachability) *http.Client {
	c := *hc
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = reachTransport{next, reach}
	return &c
}
