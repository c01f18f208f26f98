package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// reachability follows whether the tracker answers, from every request the
// proxy sends it (its slot clients' and the requests it passes through; see
// reachTransport), as dcworker does: GET /status, the live page and
// /metrics show it, and the log says so in one line per change.
type reachability struct{ *statusserver.Reachability }

func newReachability(tracker *url.URL, log *slog.Logger) *reachability {
	r := statusserver.NewReachability(tracker.String())
	r.OnDown = func(host, why string) {
		log.Warn(fmt.Sprintf("tracker %s unreachable: %s; the programs' calls wait and are retried", host, why))
	}
	r.OnBack = func(host string, after time.Duration) {
		log.Info(fmt.Sprintf("tracker %s reachable again after %s", host, after))
	}
	return &reachability{r}
}

func (r *reachability) observe(began time.Time, resp *http.Response, err error) {
	r.Observe(began, resp, err)
}

func (r *reachability) snapshot() statusserver.Reach { return r.Snapshot() }

// reachTransport tells reach the outcome of every request to the tracker.
type reachTransport struct {
	next  http.RoundTripper
	reach *reachability
}

func (t reachTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	began := time.Now()
	resp, err := t.next.RoundTrip(req)
	t.reach.observe(began, resp, err)
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
