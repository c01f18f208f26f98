package statusserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// Reachability: a failure (no answer, 5xx, 429) begins an outage, which is
// announced once (OnDown, or the first Announce); any other answer ends it,
// and OnBack says so only for an announced outage; a cancelled request says
// nothing. The host never carries the URL's user:password.
func TestReachability(t *testing.T) {
	answer := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	for _, announceByOnDown := range []bool{true, false} {
		var log []string
		r := statusserver.NewReachability("http://user:secret@tracker.example:8080/")
		if r.Host() != "tracker.example:8080" {
			t.Fatalf("Host() = %q", r.Host())
		}
		if announceByOnDown {
			r.OnDown = func(host, why string) { log = append(log, "down "+host+": "+why) }
		}
		r.OnBack = func(host string, after time.Duration) { log = append(log, "back "+host) }

		if r.Observe(time.Now(), nil, context.Canceled) || !r.Snapshot().Reachable {
			t.Fatal("a cancelled request changed the reachability")
		}
		if !r.Observe(time.Now(), answer(503), nil) {
			t.Fatal("a 503 was not a failure")
		}
		s := r.Snapshot()
		if s.Reachable || s.DownSince == nil || s.LastError != "answered 503 Service Unavailable" {
			t.Fatalf("after a 503: %+v", s)
		}
		if !r.Observe(time.Now(), nil, refused) || !r.Observe(time.Now(), answer(429), nil) {
			t.Fatal("no answer, or a 429, was not a failure")
		}
		if s2 := r.Snapshot(); !s2.DownSince.Equal(*s.DownSince) || s2.LastError != "answered 429 Too Many Requests" {
			t.Fatalf("a second failure moved the outage's start or kept the first error: %+v", s2)
		}
		why, ok := r.Announce()
		if ok == announceByOnDown {
			t.Fatalf("OnDown set: %v; Announce() = %q, %v", announceByOnDown, why, ok)
		}
		if _, again := r.Announce(); again {
			t.Fatal("Announce said yes twice in one outage")
		}
		if r.Observe(time.Now(), answer(404), nil) || !r.Snapshot().Reachable {
			t.Fatal("a 404 answer did not end the outage")
		}
		r.Observe(time.Now(), answer(200), nil)
		want := []string{"back tracker.example:8080"}
		if announceByOnDown {
			want = append([]string{"down tracker.example:8080: answered 503 Service Unavailable"}, want...)
		}
		if fmt.Sprint(log) != fmt.Sprint(want) || strings.Contains(fmt.Sprint(log), "secret") {
			t.Errorf("OnDown set: %v; lines %q, want %q", announceByOnDown, log, want)
		}
	}
	// An outage nobody announced ends without a line.
	r := statusserver.NewReachability("http://tracker.example/")
	r.OnBack = func(string, time.Duration) { t.Error("OnBack for an outage never announced") }
	r.Observe(time.Now(), answer(502), nil)
	r.Observe(time.Now(), answer(200), nil)
}

// With several requests in flight, one sent before the current state began
// and answered after it does not change it: an answer to a request sent
// before the outage began does not end it (it would end after 0 s), and a
// failure of one sent before the outage ended does not begin another.
func TestReachabilityRequestsInFlight(t *testing.T) {
	var log []string
	r := statusserver.NewReachability("http://tracker.example/")
	r.OnDown = func(host, why string) { log = append(log, "down") }
	r.OnBack = func(string, time.Duration) { log = append(log, "back") }
	answer := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

	sentBefore := time.Now() // a request sent while the tracker answered
	r.Observe(time.Now(), nil, refused)
	if r.Observe(sentBefore, answer(200), nil) || r.Snapshot().Reachable {
		t.Fatal("the answer to a request sent before the outage ended it")
	}
	sentDuring := time.Now() // a request sent in the outage
	r.Observe(time.Now(), answer(200), nil)
	if !r.Snapshot().Reachable {
		t.Fatal("an answer to a request sent in the outage did not end it")
	}
	if !r.Observe(sentDuring, nil, refused) || !r.Snapshot().Reachable {
		t.Fatal("a failure of a request sent before the outage ended began another (or was not counted a failure)")
	}
	r.Observe(time.Now(), nil, refused)
	if r.Snapshot().Reachable {
		t.Fatal("a failure of a request sent after the outage ended did not begin another")
	}
	if fmt.Sprint(log) != "[down back down]" {
		t.Errorf("lines %q, want [down back down]", log)
	}
}
