package client_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// TestWorkerLoop runs the upstream README's loop: init, job count, claim,
// log, complete (string and JSON output), no jobs, bye.
func TestWorkerLoop(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		e := newEnv(t, trackertest.Options{Quirks: quirks, Project: "LAION-5B",
			Jobs: []any{"plain input", map[string]any{"url": "s3://x"}}})
		c := e.init("A", client.WithNickname("Cluster 2 on AWS"))
		if c.DisplayName() == "" || c.Project() != "LAION-5B" || c.StageName() != "CPU" || c.Stage() != "a" {
			t.Fatalf("identity = %q %q %q %q", c.DisplayName(), c.Project(), c.StageName(), c.Stage())
		}
		if n, err := c.JobCount(e.ctx); err != nil || n != 2 {
			t.Fatalf("JobCount = %d, %v; want 2", n, err)
		}
		done := map[int]bool{}
		for i := 0; i < 2; i++ {
			wantNoErr(t, "NewJob", c.NewJob(e.ctx))
			if !c.HasJob() || c.JobID() == 0 || c.Resumed() {
				t.Fatalf("after NewJob: HasJob %v JobID %d Resumed %v", c.HasJob(), c.JobID(), c.Resumed())
			}
			job := c.Job()
			switch job.Kind() {
			case session.KindString:
				if job.Text() != "plain input" {
					t.Errorf("string job = %q", job.Text())
				}
			case session.KindJSON:
				var v struct{ URL string }
				if err := job.Unmarshal(&v); err != nil || v.URL != "s3://x" {
					t.Errorf("JSON job = %q (%v)", job.Text(), err)
				}
			default:
				t.Fatalf("job kind %v", job.Kind())
			}
			for k := 0; k < 10; k++ {
				c.Log("working")
			}
			n := c.JobID()
			var out any = map[string]any{"file": "s3://job.tar", "total_scraped": 123}
			if job.Kind() == session.KindString {
				out = "done " + job.Text()
			}
			wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, out))
			if c.HasJob() {
				t.Errorf("HasJob after CompleteJob")
			}
			done[n] = true
		}
		wantErrIs(t, "NewJob on empty queue", c.NewJob(e.ctx), client.ErrNoJobs)
		wantErrIs(t, "CompleteJob without job", c.CompleteJob(e.ctx, "x"), client.ErrNoJobHeld)
		for n := range done {
			j, _ := e.tr.Job(n)
			if j.State != trackertest.JobState("closed") || j.Completions["a"] != 1 {
				t.Errorf("job %d: state %s completions %v", n, j.State, j.Completions)
			}
			out := j.Outputs["a"]
			if out == nil || !(strings.HasPrefix(*out, "done ") || strings.HasPrefix(*out, session.JSONPrefix)) {
				t.Errorf("job %d output = %v", n, out)
			}
		}
		wantNoErr(t, "Bye", c.Bye(e.ctx))
		if alive, err := c.IsAlive(e.ctx); alive || err != nil {
			t.Errorf("IsAlive after Bye = %v, %v", alive, err)
		}
		if ws := e.tr.Workers(); len(ws) != 0 {
			t.Errorf("workers after bye: %d", len(ws))
		}
		wantNoErr(t, "Close", c.Close())
		wantErrIs(t, "NewJob after Close", c.NewJob(e.ctx), client.ErrClosed)
		evs := e.events(client.DefaultSlot)
		if !hasEvent(evs, journal.KindClosed, "") || !hasEvent(evs, journal.KindCompletionSettled, journal.OutcomeAccepted) {
			t.Errorf("journal lacks closed or accepted completion: %v", evs)
		}
	})
}

func TestInitErrors(t *testing.T) {
	e := newEnv(t, trackertest.Options{})
	tests := []struct {
		name  string
		stage string
		opts  []client.Option
		want  error
	}{
		{"stage GPU", "GPU", nil, client.ErrInvalidStage},
		{"stage z", "z", nil, client.ErrInvalidStage},
		{"disabled stage", "c", nil, client.ErrStageDisabled},
		{"long nickname", "a", []client.Option{client.WithNickname(strings.Repeat("n", 129))}, client.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Init(e.ctx, e.srv.URL, tt.stage, e.opts(tt.opts...)...)
			wantErrIs(t, "Init", err, tt.want)
		})
	}
}

func TestCompleteJobPayloads(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"1", "2", "3", "4", "5"}})
	c := e.init("a")
	raw := json.RawMessage(`[1,2]`)
	js, _ := session.JSON([]int{3})
	tests := []struct {
		name string
		out  any
		want string
	}{
		{"string", "text", "text"},
		{"raw", raw, session.JSONPrefix + "[1,2]"},
		{"payload", js, session.JSONPrefix + "[3]"},
		{"struct", struct {
			A int `json:"a"`
		}{7}, session.JSONPrefix + `{"a":7}`},
	}
	for _, tt := range tests {
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		n := c.JobID()
		wantNoErr(t, tt.name, c.CompleteJob(e.ctx, tt.out))
		j, _ := e.tr.Job(n)
		if got := j.Outputs["a"]; got == nil || *got != tt.want {
			t.Errorf("%s: output %v, want %q", tt.name, got, tt.want)
		}
	}
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	for _, bad := range []any{nil, 5, session.Null(), "x"[:0] + ""} {
		if bad == "" {
			continue
		}
		wantErrIs(t, "CompleteJob bad output", c.CompleteJob(e.ctx, bad), client.ErrInvalidArgument)
	}
	if !c.HasJob() {
		t.Fatalf("a refused output released the job")
	}
}

// TestCrashAfterJournalBeforeSend: the completion is recorded, the process
// dies before sending it; the next Init resends it.
func TestCrashAfterJournalBeforeSend(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		t.Run("appended directly", func(t *testing.T) {
			e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}})
			c := e.init("a")
			wantNoErr(t, "NewJob", c.NewJob(e.ctx))
			wantNoErr(t, "Checkpoint", c.Checkpoint(e.ctx, []byte("cp"))) // the claim is deferred: this makes it durable
			n := c.JobID()
			e.crash(c)
			db := e.journal()
			if _, err := db.Append(journal.Event{Slot: client.DefaultSlot, Kind: journal.KindCompletionPending, Job: n, Output: strp("out")}); err != nil {
				t.Fatal(err)
			}
			db.Close()
			c = e.init("a")
			if rep := c.Report(); len(rep.Resubmitted) != 1 || rep.Resubmitted[0] != n || rep.SessionLost {
				t.Fatalf("report = %+v, want job %d resubmitted", rep, n)
			}
			if j, _ := e.tr.Job(n); j.Completions["a"] != 1 || *j.Outputs["a"] != "out" {
				t.Fatalf("job %d: %+v", n, j)
			}
			if len(e.tr.Workers()) != 1 {
				t.Errorf("workers = %d, want the same one", len(e.tr.Workers()))
			}
			wantErrIs(t, "NewJob", c.NewJob(e.ctx), client.ErrNoJobs)
		})
		t.Run("hook", func(t *testing.T) {
			h := &crashHook{}
			e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}}, client.WithHook(h.fn))
			c := e.init("a")
			wantNoErr(t, "NewJob", c.NewJob(e.ctx))
			n := c.JobID()
			h.arm(hooks.AfterJournal, "complete")
			mustCrash(t, func() error { return c.CompleteJob(e.ctx, "out") })
			if j, _ := e.tr.Job(n); j.Completions["a"] != 0 {
				t.Fatalf("completion sent before the crash point")
			}
			e.crash(c)
			c = e.init("a")
			if rep := c.Report(); len(rep.Resubmitted) != 1 {
				t.Fatalf("report = %+v", rep)
			}
			if j, _ := e.tr.Job(n); j.Completions["a"] != 1 {
				t.Fatalf("job %d not completed once: %v", n, j.Completions)
			}
		})
	})
}

// TestCrashAfterSendBeforeRecorded: the tracker applied the completion, the
// process died before recording the answer; the resend's 403 is recorded as
// applied earlier, and the job is completed exactly once.
func TestCrashAfterSendBeforeRecorded(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		h := &crashHook{}
		e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}}, client.WithHook(h.fn))
		c := e.init("a")
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		n := c.JobID()
		h.arm(hooks.AfterSend, "complete")
		mustCrash(t, func() error { return c.CompleteJob(e.ctx, "out") })
		e.crash(c)
		c = e.init("a")
		if rep := c.Report(); len(rep.AppliedEarlier) != 1 || rep.AppliedEarlier[0] != n {
			t.Fatalf("report = %+v, want job %d applied earlier", rep, n)
		}
		if j, _ := e.tr.Job(n); j.Completions["a"] != 1 {
			t.Fatalf("job %d completions %v, want 1", n, j.Completions)
		}
		e.crash(c)
		if !hasEvent(e.events(client.DefaultSlot), journal.KindCompletionSettled, journal.OutcomeAppliedEarlier) {
			t.Errorf("no applied-earlier settle in the journal")
		}
	})
}

// TestAnswerLost: the tracker applies the completion and hangs up. Within
// the call, the retry's 403 is recognised as applied earlier; across
// processes (retries given up), the next start resends and records it so.
func TestAnswerLost(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"1", "2"}})
		dropOnce := func() {
			dropped := false
			e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
				if ep == "completeJob" && !dropped {
					dropped = true
					return trackertest.FaultDropAnswer, 0
				}
				return trackertest.FaultNone, 0
			})
		}
		c := e.init("a")
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		n := c.JobID()
		dropOnce()
		wantNoErr(t, "CompleteJob with lost answer", c.CompleteJob(e.ctx, "out"))
		if j, _ := e.tr.Job(n); j.Completions["a"] != 1 {
			t.Fatalf("completions %v", j.Completions)
		}

		// Every attempt's answer is lost: the call gives up, the completion
		// stays pending, and the next start settles it as applied earlier.
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		n = c.JobID()
		e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
			if ep == "completeJob" {
				return trackertest.FaultDropAnswer, 0
			}
			return trackertest.FaultNone, 0
		})
		err := c.CompleteJob(e.ctx, "out")
		wantErrIs(t, "CompleteJob with every answer lost", err, client.ErrUnconfirmed)
		e.tr.SetFault(nil)
		e.crash(c)
		c = e.init("a")
		rep := c.Report()
		if len(rep.AppliedEarlier)+len(rep.Resubmitted) != 1 {
			t.Fatalf("report = %+v", rep)
		}
		if j, _ := e.tr.Job(n); j.Completions["a"] != 1 {
			t.Fatalf("job %d completions %v, want 1", n, j.Completions)
		}
		e.crash(c)
		evs := e.events(client.DefaultSlot)
		if !hasEvent(evs, journal.KindCompletionSettled, journal.OutcomeAppliedEarlier) {
			t.Errorf("no applied-earlier in the journal")
		}
	})
}

// TestProgressSupersededNotSent: a Log text that a newer text or the job's
// completion supersedes before it is due is never sent: a job that logs and
// completes costs newJob and completeJob only. (The text waits an hour
// here, so nothing is due during the test.)
func TestProgressSupersededNotSent(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in 1", "in 2"}})
	c := e.init("a", client.WithProgressDelay(time.Hour))
	for i := range 2 {
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		c.Log(fmt.Sprintf("job %d: half way", i))
		c.Log(fmt.Sprintf("job %d: almost", i))
		wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, "out"))
	}
	st := e.tr.Stats()
	if n := st["updateProgress"].Requests; n != 0 {
		t.Errorf("%d updateProgress requests, want 0: every text was superseded", n)
	}
	if n, m := st["newJob"].Requests, st["completeJob"].Requests; n != 2 || m != 2 {
		t.Errorf("newJob %d, completeJob %d requests, want 2 and 2", n, m)
	}
}

// TestProgressLatestSent: the text that is still current when it is due is
// sent, the latest of those logged.
func TestProgressLatestSent(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in"}})
	c := e.init("a", client.WithProgressDelay(time.Millisecond))
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	c.Log("half way")
	c.Log("almost")
	eventually(t, "the latest text at the tracker", func() bool {
		w := e.tr.Workers()
		return len(w) == 1 && w[0].Progress == "almost"
	})
}
