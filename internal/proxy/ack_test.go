package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/trackertest"
)

// TestAcceptedCompletionAnsweredBeforeItsRecord: with --ack tracker a
// completion the tracker accepted is answered 200 while the client has not
// yet recorded the outcome (it is stopped there), and the worker's next
// newJob is claimed only after that record: the journal holds the
// completion settled before the next claim, and the tracker has the job
// completed once.
func TestAcceptedCompletionAnsweredBeforeItsRecord(t *testing.T) {
	srv := trackertest.Start(t, trackertest.Options{Jobs: []any{"j-1", "j-2", "j-3"}, Seed: 3})
	stopped, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rp := startProxy(t, srv.URL, func(c *proxy.Config) {
		c.Ack = proxy.AckTracker
		proxy.SetHook(c, func(point, op string) {
			if point == "after-send" && op == "complete" {
				once.Do(func() {
					close(stopped)
					<-release // the outcome is recorded after this
				})
			}
		})
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	reg := register(t, rp.URL, "a")
	tok := `{"token":"` + reg.Token + `"}`
	var first struct{ Number int }
	if code, body := post(t, rp.URL+"/api/newJob", tok); code != http.StatusOK || json.Unmarshal([]byte(body), &first) != nil {
		t.Fatalf("newJob: %d %s", code, body)
	}

	type answer struct {
		code int
		body string
	}
	send := func(path, body string, to chan<- answer) {
		resp, err := http.Post(rp.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			to <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		to <- answer{resp.StatusCode, string(b)}
	}
	completed := make(chan answer, 1)
	go send("/api/completeJob", `{"token":"`+reg.Token+`","data":"out"}`, completed)
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("the completion never reached the tracker")
	}
	select {
	case a := <-completed:
		if a.code != http.StatusOK || a.body != "200 OK" {
			t.Fatalf("completeJob: %d %q, want 200 OK", a.code, a.body)
		}
	case <-time.After(time.Minute):
		t.Fatal("completeJob was not answered while its outcome waited to be recorded")
	}

	next := make(chan answer, 1)
	go send("/api/newJob", tok, next)
	close(release)
	a := <-next
	var second struct{ Number int }
	if a.code != http.StatusOK || json.Unmarshal([]byte(a.body), &second) != nil || second.Number == first.Number {
		t.Fatalf("next newJob: %d %s, want another job than %d", a.code, a.body, first.Number)
	}
	if err := rp.Stop(); err != nil && err != proxy.ErrStopped {
		t.Fatal(err)
	}

	if v, _ := srv.Tracker.Job(first.Number); v.Completions["a"] != 1 {
		t.Errorf("job %d completed %d times at the tracker, want 1", first.Number, v.Completions["a"])
	}
	db, err := journal.Open(rp.Journal, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var kinds []string
	err = db.Events(journal.Filter{}, func(e journal.Event) error {
		switch {
		case e.Kind == journal.KindCompletionSettled && e.Job == first.Number,
			e.Kind == journal.KindClaimed && e.Job == second.Number:
			kinds = append(kinds, string(e.Kind))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[0] != string(journal.KindCompletionSettled) {
		t.Errorf("journal: %v, want the completion of job %d settled before the claim of job %d", kinds, first.Number, second.Number)
	}
}
