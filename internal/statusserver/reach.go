package statusserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Reachability follows whether the tracker answers, from the outcome of
// every request sent to it (Observe), for dcworker and dcproxy alike: GET
// /status, the live page and /metrics show it (Snapshot), and each program
// logs one line per change, which it words itself. An outage is logged
// once: by OnDown when it begins, or by the first caller of Announce.
type Reachability struct {
	host string
	// OnDown, if set, is called when an outage begins, with why the
	// request failed; it announces the outage. OnBack, if set, is called
	// when an announced outage ends, with how long it lasted. Both run
	// under the lock: they must not call back.
	OnDown func(host, why string)
	OnBack func(host string, after time.Duration)

	mu        sync.Mutex
	down      bool
	since     time.Time // of the current outage
	up        time.Time // when the last outage ended (zero before the first)
	lastErr   string
	announced bool // the current outage was logged
}

// NewReachability follows the tracker at trackerURL: its host is what the
// log lines name (never the user:password part).
func NewReachability(trackerURL string) *Reachability {
	host := trackerURL
	if u, err := url.Parse(trackerURL); err == nil && u.Host != "" {
		host = u.Host
	}
	return &Reachability{host: host}
}

// Host is the tracker's host, as the log lines name it.
func (r *Reachability) Host() string { return r.host }

// Observe records the outcome of one request, sent at began: no answer, or
// a 5xx or 429 answer, is a failure; any other answer means the tracker is
// reachable. A request its caller cancelled says nothing. Neither does a
// request sent before the current state began: an answer to a request sent
// before the outage began (and reported after another request failed)
// does not end it, and a failure of one sent before the outage ended does
// not start another. With several requests in flight, those would log an
// outage that ends at once, or a recovery followed by the same outage.
func (r *Reachability) Observe(began time.Time, resp *http.Response, err error) (failed bool) {
	var why string
	switch {
	case err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return false
	case err != nil:
		why = ShortNetError(err)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		why = fmt.Sprintf("answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case why != "" && !r.down && began.Before(r.up), why == "" && r.down && began.Before(r.since):
		// A request sent before the current state began.
	case why != "" && !r.down:
		r.down, r.since, r.lastErr, r.announced = true, time.Now(), why, false
		if r.OnDown != nil {
			r.OnDown(r.host, why)
			r.announced = true
		}
	case why != "":
		r.lastErr = why
	case r.down:
		if r.announced && r.OnBack != nil {
			r.OnBack(r.host, time.Since(r.since).Round(time.Second))
		}
		r.down, r.lastErr, r.announced, r.up = false, "", false, time.Now()
	}
	return why != ""
}

// Announce reports, the first time it is called in an outage, why the
// tracker is unreachable, and marks the outage announced (so that OnBack
// says when it ends); otherwise ok is false.
func (r *Reachability) Announce() (why string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down || r.announced {
		return "", false
	}
	r.announced = true
	return r.lastErr, true
}

// Snapshot is the reachability as /status and the page show it.
func (r *Reachability) Snapshot() Reach {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down {
		return Reach{Reachable: true}
	}
	since := r.since.UTC()
	return Reach{DownSince: &since, LastError: r.lastErr}
}
