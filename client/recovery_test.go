package client_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/faultnet"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// TestWorkerDeletedWhileDown: the process dies with its completion pending;
// while it is down the tracker deletes the worker and re-opens the job. On
// restart the output is orphaned and a new worker registered; when the job
// comes round again the orphan is submitted instead of redoing the work.
func TestWorkerDeletedWhileDown(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		for _, resubmit := range []bool{true, false} {
			name := "resubmit"
			if !resubmit {
				name = "no-resubmit"
			}
			t.Run(name, func(t *testing.T) {
				h := &crashHook{}
				e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}},
					client.WithHook(h.fn), client.WithResubmitOrphans(resubmit))
				c := e.init("a")
				oldName := c.DisplayName()
				wantNoErr(t, "NewJob", c.NewJob(e.ctx))
				n := c.JobID()
				h.arm(hooks.AfterJournal, "complete")
				mustCrash(t, func() error { return c.CompleteJob(e.ctx, "the output") })
				e.crash(c)
				e.advancePastIdle()
				if j, _ := e.tr.Job(n); j.State != "open" {
					t.Fatalf("job %d state %s after the sweep, want open", n, j.State)
				}

				c = e.init("a")
				rep := c.Report()
				if !rep.SessionLost || len(rep.Orphaned) != 1 || rep.Orphaned[0] != n || !rep.Reregistered {
					t.Fatalf("report = %+v, want session lost, job %d orphaned, reregistered", rep, n)
				}
				if c.DisplayName() == oldName {
					t.Errorf("same display name after re-registration")
				}
				if orphans := orphansOf(t, c); len(orphans) != 1 || orphans[0].Output != "the output" {
					t.Fatalf("orphans = %+v", orphans)
				}
				err := c.NewJob(e.ctx)
				if !resubmit {
					wantNoErr(t, "NewJob", err)
					if c.JobID() != n {
						t.Fatalf("claimed %d, want %d", c.JobID(), n)
					}
					return
				}
				wantErrIs(t, "NewJob after the orphan was submitted", err, client.ErrNoJobs)
				if got := c.Resubmitted(); len(got) != 1 || got[0] != n {
					t.Errorf("Resubmitted = %v", got)
				}
				j, _ := e.tr.Job(n)
				if j.Completions["a"] != 1 || *j.Outputs["a"] != "the output" {
					t.Fatalf("job %d: completions %v outputs %v", n, j.Completions, j.Outputs)
				}
				if orphans := orphansOf(t, c); len(orphans) != 0 {
					t.Errorf("orphans left: %+v", orphans)
				}
				e.crash(c)
				if !hasEvent(e.events(client.DefaultSlot), journal.KindOrphanResolved, journal.OutcomeResubmitted) {
					t.Errorf("no orphan-resolved event")
				}
			})
		}
	})
}

func orphansOf(t *testing.T, c *client.Client) []journal.Orphan {
	t.Helper()
	o, err := c.Journal().Orphans()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestResumeWithCheckpoint: a held job comes back after a restart, with its
// last checkpoint, under the same worker.
func TestResumeWithCheckpoint(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}})
		c := e.init("a")
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		n, name := c.JobID(), c.DisplayName()
		wantNoErr(t, "Checkpoint", c.Checkpoint(e.ctx, []byte("step 1")))
		c.Log("half way") // buffered: made durable by the next checkpoint's commit
		wantNoErr(t, "Checkpoint", c.Checkpoint(e.ctx, []byte("step 2")))
		e.crash(c)

		c = e.init("a")
		if rep := c.Report(); len(rep.Resumed) != 1 || rep.Resumed[0] != n || rep.SessionLost {
			t.Fatalf("report = %+v", rep)
		}
		if !c.Resumed() || c.JobID() != n || string(c.LastCheckpoint()) != "step 2" || c.Job().Text() != "in" || c.DisplayName() != name {
			t.Fatalf("resumed %v job %d checkpoint %q data %q name %q", c.Resumed(), c.JobID(), c.LastCheckpoint(), c.Job().Text(), c.DisplayName())
		}
		w := e.tr.Workers()
		if len(w) != 1 || w[0].Progress != "half way" {
			t.Errorf("workers = %+v, want one, refreshed with its progress", w)
		}
		wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, "out"))
		if j, _ := e.tr.Job(n); j.Completions["a"] != 1 {
			t.Fatalf("completions %v", j.Completions)
		}
		wantErrIs(t, "Checkpoint without job", c.Checkpoint(e.ctx, nil), client.ErrNoJobHeld)
	})
}

// TestReleaseMode: WithRelease hands a held job back with bye and registers
// afresh.
func TestReleaseMode(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}})
		c := e.init("a")
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		wantNoErr(t, "Checkpoint", c.Checkpoint(e.ctx, []byte("cp"))) // the claim is deferred: this makes it durable
		n := c.JobID()
		e.crash(c)
		c = e.init("a", client.WithRelease())
		if rep := c.Report(); len(rep.Released) != 1 || rep.Released[0] != n || !rep.Reregistered {
			t.Fatalf("report = %+v", rep)
		}
		if c.HasJob() {
			t.Errorf("job held after release")
		}
		if j, _ := e.tr.Job(n); j.State != "open" {
			t.Errorf("job state %s, want open", j.State)
		}
		if w := e.tr.Workers(); len(w) != 1 {
			t.Errorf("workers = %d, want 1 (old one said bye)", len(w))
		}
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	})
}

// TestPendingFlagAndByeResent: a flag and a bye recorded and never sent are
// sent on the next start.
func TestPendingFlagAndByeResent(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		t.Run("flag", func(t *testing.T) {
			h := &crashHook{}
			e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}}, client.WithHook(h.fn))
			c := e.init("a")
			wantNoErr(t, "NewJob", c.NewJob(e.ctx))
			n := c.JobID()
			h.arm(hooks.AfterJournal, "flag")
			mustCrash(t, func() error { return c.FlagInvalidData(e.ctx) })
			e.crash(c)
			c = e.init("a")
			if rep := c.Report(); len(rep.FlagsResent) != 1 || rep.FlagsResent[0] != n || len(rep.Resumed) != 0 {
				t.Fatalf("report = %+v", rep)
			}
			if j, _ := e.tr.Job(n); j.Flags["a"] != 1 || j.State != "open" {
				t.Fatalf("job %+v", j)
			}
		})
		t.Run("flag answer lost", func(t *testing.T) {
			h := &crashHook{}
			e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}}, client.WithHook(h.fn))
			c := e.init("a")
			wantNoErr(t, "NewJob", c.NewJob(e.ctx))
			n := c.JobID()
			h.arm(hooks.AfterSend, "flag")
			mustCrash(t, func() error { return c.FlagInvalidData(e.ctx) })
			e.crash(c)
			c = e.init("a")
			if rep := c.Report(); len(rep.FlagsResent) != 1 {
				t.Fatalf("report = %+v", rep)
			}
			if j, _ := e.tr.Job(n); j.Flags["a"] != 1 {
				t.Fatalf("flags %v, want 1", j.Flags)
			}
		})
		t.Run("bye", func(t *testing.T) {
			h := &crashHook{}
			e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}}, client.WithHook(h.fn))
			c := e.init("a")
			wantNoErr(t, "NewJob", c.NewJob(e.ctx))
			n := c.JobID()
			h.arm(hooks.AfterJournal, "bye")
			mustCrash(t, func() error { return c.Bye(e.ctx) })
			e.crash(c)
			c = e.init("a")
			if rep := c.Report(); !rep.ByeResent || !rep.Reregistered {
				t.Fatalf("report = %+v", rep)
			}
			if j, _ := e.tr.Job(n); j.State != "open" {
				t.Fatalf("job state %s", j.State)
			}
			if w := e.tr.Workers(); len(w) != 1 || w[0].DisplayName != c.DisplayName() {
				t.Fatalf("workers %+v", w)
			}
		})
	})
}

// TestUnconfirmedCompletion: the tracker is down (5xx) until the retry
// policy gives up: the completion stays pending, is never lost, and NewJob
// resends it before claiming.
func TestUnconfirmedCompletion(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"1", "2"}})
		c := e.init("a")
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		n := c.JobID()
		e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
			return trackertest.Fault503, 0
		})
		err := c.CompleteJob(e.ctx, "out")
		var se *client.ServerError
		if !errors.As(err, &se) || se.Status != 503 {
			t.Fatalf("CompleteJob while down: %v, want a ServerError 503", err)
		}
		wantErrIs(t, "CompleteJob while down", err, client.ErrUnconfirmed)
		if err := c.NewJob(e.ctx); err == nil {
			t.Fatalf("NewJob claimed while the completion was unconfirmed")
		}
		e.tr.SetFault(nil)
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		if j, _ := e.tr.Job(n); j.Completions["a"] != 1 {
			t.Fatalf("job %d completions %v", n, j.Completions)
		}
		if c.JobID() == n || c.JobID() == 0 {
			t.Fatalf("claimed %d", c.JobID())
		}
	})
}

// TestFaultnetAnswerLost drives the client through the faultnet transport:
// answers lost after the tracker applied completions.
func TestFaultnetAnswerLost(t *testing.T) {
	ft := faultnet.New(nil, faultnet.Config{
		Match: func(r *http.Request) bool { return r.URL.Path == "/api/completeJob" },
	})
	e := newEnv(t, trackertest.Options{Jobs: []any{"1", "2", "3"}}, client.WithHTTPClient(ft.Client()))
	c := e.init("a")
	for i := 0; i < 3; i++ {
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		ft.Next(faultnet.DropAnswer)
		wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, "out"))
	}
	for _, j := range e.tr.Jobs() {
		if j.Completions["a"] != 1 {
			t.Errorf("job %d completions %v", j.Number, j.Completions)
		}
	}
	if got := ft.Counts().DroppedAnswer; got != 3 {
		t.Errorf("dropped answers = %d", got)
	}
}

// TestStageBNull (Quirks): the upstream tracker serves null data at stage b.
func TestStageBNull(t *testing.T) {
	e := newEnv(t, trackertest.Options{Quirks: true, Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: []any{"in"}})
	a := e.init("a", client.WithSlot("a"))
	wantNoErr(t, "NewJob a", a.NewJob(e.ctx))
	wantNoErr(t, "CompleteJob a", a.CompleteJob(e.ctx, map[string]any{"k": 1}))
	b := e.init("b", client.WithSlot("b"), client.WithJournalDB(a.Journal()))
	wantNoErr(t, "NewJob b", b.NewJob(e.ctx))
	if !b.HasJob() || !b.Job().IsNull() || b.Job().Kind() != session.KindNull {
		t.Fatalf("stage b job: has %v kind %v", b.HasJob(), b.Job().Kind())
	}
	b.Close()
	a.Close()
	c := e.init("b", client.WithSlot("b"))
	if !c.Resumed() || !c.Job().IsNull() {
		t.Fatalf("resumed null job: resumed %v kind %v", c.Resumed(), c.Job().Kind())
	}
	wantNoErr(t, "CompleteJob b", c.CompleteJob(e.ctx, "final"))
}

// TestFifthFlagFails (Quirks): the 5th flag of a job at stage b answers
// 422; the client says so clearly, records it, and stays usable.
func TestFifthFlagFails(t *testing.T) {
	e := newEnv(t, trackertest.Options{Quirks: true, Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: []any{"in"}})
	a := e.init("a", client.WithSlot("a"))
	wantNoErr(t, "NewJob a", a.NewJob(e.ctx))
	wantNoErr(t, "CompleteJob a", a.CompleteJob(e.ctx, "to b"))
	b := e.init("b", client.WithSlot("b"), client.WithJournalDB(a.Journal()))
	for i := 1; i <= 4; i++ {
		wantNoErr(t, "NewJob b", b.NewJob(e.ctx))
		wantNoErr(t, "flag", b.FlagInvalidData(e.ctx))
	}
	wantNoErr(t, "NewJob b", b.NewJob(e.ctx))
	n := b.JobID()
	err := b.FlagInvalidData(e.ctx)
	var verr *client.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("5th flag: %v, want a ValidationError", err)
	}
	if !b.HasJob() || b.JobID() != n {
		t.Fatalf("job no longer held after the failed flag")
	}
	if alive, err := b.IsAlive(e.ctx); !alive || err != nil {
		t.Fatalf("IsAlive = %v, %v", alive, err)
	}
	wantNoErr(t, "CompleteJob after the failed flag", b.CompleteJob(e.ctx, "done anyway"))
	if j, _ := e.tr.Job(n); j.Completions["b"] != 1 {
		t.Fatalf("completions %v", j.Completions)
	}
	b.Close()
	a.Close()
	evs := e.events("b")
	if !hasEvent(evs, journal.KindFlagSettled, journal.OutcomeFailed) {
		t.Errorf("no failed flag-settled event")
	}
}

// TestProgressOver255: progress text over 255 characters is cut (the
// tracker would answer a misleading 404) and the worker stays alive.
func TestProgressOver255(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in"}})
	c := e.init("a")
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	long := strings.Repeat("é", 300)
	c.Log(long)
	eventually(t, "progress at the tracker", func() bool {
		w := e.tr.Workers()
		return len(w) == 1 && strings.HasPrefix(w[0].Progress, "é")
	})
	w := e.tr.Workers()[0]
	if utf8.RuneCountInString(w.Progress) != 255 || !strings.HasPrefix(long, w.Progress) {
		t.Fatalf("progress of %d characters", utf8.RuneCountInString(w.Progress))
	}
	if c.SessionsLost() != 0 {
		t.Fatalf("session lost")
	}
	wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, "out"))
}

// TestLogUnreachable: Log returns at once when the tracker is unreachable.
func TestLogUnreachable(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in"}})
	c := e.init("a")
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	e.srv.Close()
	start := time.Now()
	for i := 0; i < 1000; i++ {
		c.Log("step")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("1000 Log calls took %v with the tracker down", d)
	}
}

// TestHeartbeat: the heartbeat keeps an idle worker (waiting for jobs)
// alive past the idle timeout; polling newJob alone would not.
func TestHeartbeat(t *testing.T) {
	e := newEnv(t, trackertest.Options{})
	c := e.init("a", client.WithHeartbeat(5*time.Millisecond))
	ctx, cancel := context.WithCancel(e.ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.WaitForJob(ctx) }()
	for i := 0; i < 4; i++ {
		seen := e.clock.Now()
		e.clock.Advance(trackertest.DefaultIdleTimeout / 2)
		eventually(t, "a heartbeat", func() bool {
			w := e.tr.Workers()
			return len(w) == 1 && w[0].LastSeen.After(seen)
		})
		e.tr.CheckIdle()
	}
	if c.SessionsLost() != 0 || len(e.tr.Workers()) != 1 {
		t.Fatalf("worker lost while waiting: %d", c.SessionsLost())
	}
	e.tr.AddJobs("late job")
	select {
	case err := <-errc:
		wantNoErr(t, "WaitForJob", err)
	case <-time.After(10 * time.Second):
		t.Fatal("WaitForJob did not return")
	}
	cancel()
	if !c.HasJob() || c.Job().Text() != "late job" {
		t.Fatalf("job %q", c.Job().Text())
	}
	wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, "x"))
	ctx, cancel = context.WithTimeout(e.ctx, 30*time.Millisecond)
	defer cancel()
	wantErrIs(t, "WaitForJob cancelled", c.WaitForJob(ctx), context.DeadlineExceeded)
}

// TestWaitForJobEndedDuringAnswer: when ctx ends just after the tracker
// answered "no jobs", WaitForJob reports ctx's error, not the empty stage.
// (CI once saw ErrNoJobs here when a 30 ms deadline passed mid-request.)
func TestWaitForJobEndedDuringAnswer(t *testing.T) {
	var cancel atomic.Pointer[context.CancelFunc]
	hook := func(p hooks.Point, op string) {
		if f := cancel.Load(); f != nil && p == hooks.AfterSend && op == "claim" {
			(*f)()
		}
	}
	e := newEnv(t, trackertest.Options{}, client.WithHook(hook))
	c := e.init("a")
	ctx, stop := context.WithCancel(e.ctx)
	defer stop()
	cancel.Store(&stop)
	err := c.WaitForJob(ctx)
	wantErrIs(t, "WaitForJob", err, context.Canceled)
	if errors.Is(err, client.ErrNoJobs) {
		t.Fatalf("err = %v, also ErrNoJobs", err)
	}
}

// TestCloseStopsHeartbeatRegistration: the heartbeat's fresh registration
// may wait up to 30 s for a slow tracker, but Close cancels it at once.
func TestCloseStopsHeartbeatRegistration(t *testing.T) {
	e := newEnv(t, trackertest.Options{})
	c := e.init("a", client.WithHeartbeat(5*time.Millisecond))
	registering := make(chan struct{}, 1)
	e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
		switch ep {
		case "updateProgress":
			return trackertest.FaultDropRequest, 0
		case "new": // register
			select {
			case registering <- struct{}{}:
			default:
			}
			return trackertest.FaultNone, time.Hour
		}
		return trackertest.FaultNone, 0
	})
	e.advancePastIdle()
	select {
	case <-registering:
	case <-time.After(10 * time.Second):
		t.Fatal("the heartbeat did not register afresh")
	}
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v while the heartbeat was registering", d)
	}
}

// TestHeartbeatDetectsLoss: a worker deleted by the tracker (heartbeat too
// slow) is detected by the liveness check and replaced; SessionLost fires.
func TestHeartbeatDetectsLoss(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}})
		c := e.init("a", client.WithHeartbeat(5*time.Millisecond))
		lost := c.SessionLost()
		name := c.DisplayName()
		// Stop the heartbeat from refreshing the worker: drop its progress.
		e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
			if ep == "updateProgress" {
				return trackertest.FaultDropRequest, 0
			}
			return trackertest.FaultNone, 0
		})
		e.advancePastIdle()
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("SessionLost did not fire")
		}
		e.tr.SetFault(nil)
		eventually(t, "a fresh registration", func() bool {
			w := e.tr.Workers()
			return len(w) == 1 && w[0].DisplayName != name
		})
		eventually(t, "the client's new identity", func() bool { return c.DisplayName() != name })
		if c.SessionsLost() != 1 {
			t.Errorf("SessionsLost = %d", c.SessionsLost())
		}
		if alive, err := c.IsAlive(e.ctx); !alive || err != nil {
			t.Errorf("IsAlive = %v, %v", alive, err)
		}
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		e.noteTokens()
		c.Close()
		if !hasEvent(e.events(client.DefaultSlot), journal.KindSessionLost, "") {
			t.Errorf("no session-lost event")
		}
	})
}

// TestLossWhileHoldingJob: the worker is deleted while it works on a job.
// CompleteJob returns ErrWorkerGone and keeps the output as an orphan,
// which is submitted when the job is claimed again.
func TestLossWhileHoldingJob(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		e := newEnv(t, trackertest.Options{Quirks: quirks, Jobs: []any{"in"}})
		c := e.init("a")
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		n := c.JobID()
		e.advancePastIdle()
		err := c.CompleteJob(e.ctx, "late output")
		wantErrIs(t, "CompleteJob of a lost job", err, client.ErrWorkerGone)
		wantErrIs(t, "CompleteJob of a lost job", err, client.ErrOrphaned)
		select {
		case <-c.SessionLost():
		default:
			t.Errorf("SessionLost not closed")
		}
		if o := orphansOf(t, c); len(o) != 1 || o[0].Job != n {
			t.Fatalf("orphans %+v", o)
		}
		wantErrIs(t, "NewJob", c.NewJob(e.ctx), client.ErrNoJobs)
		if j, _ := e.tr.Job(n); j.Completions["a"] != 1 || *j.Outputs["a"] != "late output" {
			t.Fatalf("job %+v", j)
		}
		if got := c.Resubmitted(); len(got) != 1 {
			t.Errorf("Resubmitted = %v", got)
		}
	})
}

// TestLossFoundByHeartbeatWhileHoldingJob: the heartbeat finds the worker
// gone while a job is held; the program learns it from SessionLost, IsAlive
// and FlagInvalidData.
func TestLossFoundByHeartbeatWhileHoldingJob(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in"}})
	c := e.init("a", client.WithHeartbeat(5*time.Millisecond))
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
		if ep == "updateProgress" {
			return trackertest.FaultDropRequest, 0
		}
		return trackertest.FaultNone, 0
	})
	e.advancePastIdle()
	<-c.SessionLost()
	e.tr.SetFault(nil)
	if alive, err := c.IsAlive(e.ctx); alive || err != nil {
		t.Fatalf("IsAlive with the job lost = %v, %v", alive, err)
	}
	wantErrIs(t, "FlagInvalidData", c.FlagInvalidData(e.ctx), client.ErrWorkerGone)
	wantErrIs(t, "CompleteJob", c.CompleteJob(e.ctx, "x"), client.ErrWorkerGone)
	if alive, err := c.IsAlive(e.ctx); !alive || err != nil {
		t.Fatalf("IsAlive after the loss was recorded = %v, %v", alive, err)
	}
	e.noteTokens()
}

// TestOtherTracker: a journal slot of another tracker is settled against
// that tracker (job released by bye) before registering with the new one.
func TestOtherTracker(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"old"}})
	c := e.init("a")
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	wantNoErr(t, "Checkpoint", c.Checkpoint(e.ctx, []byte("cp"))) // the claim is deferred: this makes it durable
	n := c.JobID()
	e.crash(c)
	other := trackertest.Start(t, trackertest.Options{Jobs: []any{"new"}, Seed: 2})
	c2, err := client.Init(e.ctx, other.URL, "a", e.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	e.clients = append(e.clients, c2)
	if rep := c2.Report(); len(rep.Released) != 1 || !rep.Closed {
		t.Fatalf("report %+v", rep)
	}
	if j, _ := e.tr.Job(n); j.State != "open" || len(e.tr.Workers()) != 0 {
		t.Fatalf("old tracker: job %s, %d workers", j.State, len(e.tr.Workers()))
	}
	for _, w := range other.Tracker.Workers() {
		e.tokens[w.Token] = true
	}
	wantNoErr(t, "NewJob", c2.NewJob(e.ctx))
	if c2.Job().Text() != "new" {
		t.Fatalf("job %q", c2.Job().Text())
	}
}

// TestPool: several slots share one journal, each its own worker.
func TestPool(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"1", "2", "3", "4", "5", "6"}})
	p, err := client.OpenPool(e.ctx, e.srv.URL, "a", 3, e.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	e.noteTokens()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, c := range p.Clients() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := c.NewJob(e.ctx)
				if errors.Is(err, client.ErrNoJobs) {
					return
				}
				if err == nil {
					c.Log("working")
					err = c.CompleteJob(e.ctx, "done")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, j := range e.tr.Jobs() {
		if j.Completions["a"] != 1 {
			t.Errorf("job %d completions %v", j.Number, j.Completions)
		}
	}
	if len(e.tr.Workers()) != 3 {
		t.Errorf("workers %d", len(e.tr.Workers()))
	}
	slots, _ := p.Journal().Slots()
	if strings.Join(slots, ",") != "slot-0,slot-1,slot-2" {
		t.Errorf("slots %v", slots)
	}
	wantNoErr(t, "Close", p.Close())

	// A smaller pool retires the extra slots (bye).
	p, err = client.OpenPool(e.ctx, e.srv.URL, "a", 1, e.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(e.tr.Workers()) != 1 {
		t.Errorf("workers after shrinking the pool: %d", len(e.tr.Workers()))
	}
}

func TestDefaultJournalPath(t *testing.T) {
	t.Setenv(client.EnvJournal, "")
	if runtime.GOOS == "windows" {
		t.Setenv("LocalAppData", `C:\Users\u\AppData\Local`)
		if p, _ := client.DefaultJournalPath(); p != `C:\Users\u\AppData\Local\distcompute\journal.db` {
			t.Errorf("LocalAppData: %s", p)
		}
	} else {
		t.Setenv("XDG_STATE_HOME", "/state")
		if p, _ := client.DefaultJournalPath(); p != "/state/distcompute/journal.db" {
			t.Errorf("XDG: %s", p)
		}
		t.Setenv("XDG_STATE_HOME", "")
		t.Setenv("HOME", "/home/u")
		want := "/home/u/.local/state/distcompute/journal.db"
		if runtime.GOOS == "darwin" {
			want = "/home/u/Library/Application Support/distcompute/journal.db"
		}
		if p, _ := client.DefaultJournalPath(); p != want {
			t.Errorf("home: %s, want %s", p, want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "j.db")
	t.Setenv(client.EnvJournal, path)
	if p, _ := client.DefaultJournalPath(); p != path {
		t.Errorf("env: %s", p)
	}
	// Init uses it and creates the directory.
	srv := trackertest.Start(t, trackertest.Options{})
	c, err := client.Init(context.Background(), srv.URL, "a", client.WithVerbose(false), client.WithJournalOptions(&journal.Options{NoSync: true}))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("journal not at %s: %v", path, err)
	}
}

// TestReplayReportJournaled: the recovery report is in the journal.
func TestReplayReportJournaled(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in"}})
	c := e.init("a")
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	wantNoErr(t, "Checkpoint", c.Checkpoint(e.ctx, []byte("cp"))) // the claim is deferred: this makes it durable
	e.crash(c)
	c = e.init("a")
	e.crash(c)
	db := e.journal()
	defer db.Close()
	st, err := db.State(client.DefaultSlot)
	if err != nil {
		t.Fatal(err)
	}
	var rep replay.Report
	if err := jsonUnmarshal(st.LastReport, &rep); err != nil || len(rep.Resumed) != 1 {
		t.Fatalf("last report %s (%v)", st.LastReport, err)
	}
}

// TestTokenNeverLogged: retries, a lost worker, recovery and a re-registration
// all log at Debug level; no line holds a token in full. (Every test's
// cleanup checks this too, see newEnv.)
func TestTokenNeverLogged(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"1", "2"}})
	h := &crashHook{}
	c := e.init("a", client.WithHook(h.fn))
	failures := 0
	e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
		if failures < 3 {
			failures++
			return trackertest.Fault502, 0
		}
		return trackertest.FaultNone, 0
	})
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	h.arm(hooks.AfterJournal, "complete")
	mustCrash(t, func() error { return c.CompleteJob(e.ctx, "o") })
	e.crash(c)
	e.advancePastIdle()
	c = e.init("a")
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	e.noteTokens()
	logs := e.logs.String()
	if !strings.Contains(logs, "token=") || !strings.Contains(logs, "…") {
		t.Fatalf("expected redacted tokens in the logs:\n%s", logs)
	}
	for tok := range e.tokens {
		if strings.Contains(logs, tok) {
			t.Fatalf("token %s… logged in full", tok[:8])
		}
	}
}

// TestWaitForJobThroughOutage: WaitForJob waits through a tracker outage
// (503s after the retry policy gave up) as it waits through an empty queue.
func TestWaitForJobThroughOutage(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in"}})
	c := e.init("a")
	var mu sync.Mutex
	down := 0
	e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if ep == "newJob" && down < 60 {
			down++
			return trackertest.Fault503, 0
		}
		return trackertest.FaultNone, 0
	})
	wantNoErr(t, "WaitForJob", c.WaitForJob(e.ctx))
	if c.Job().Text() != "in" {
		t.Fatalf("job %q", c.Job().Text())
	}
	if !strings.Contains(e.logs.String(), "tracker unavailable") {
		t.Errorf("the outage was not logged")
	}
}

// TestUnconfirmedFlag: a flag not confirmed (tracker down) stays pending and
// is resent before the next claim; its answer lost, the resend's 403 counts
// as applied.
func TestUnconfirmedFlag(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"1", "2"}})
	c := e.init("a")
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	n := c.JobID()
	e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
		if ep == "flagInvalidData" {
			return trackertest.FaultDropAnswer, 0
		}
		return trackertest.FaultNone, 0
	})
	err := c.FlagInvalidData(e.ctx)
	wantErrIs(t, "FlagInvalidData with every answer lost", err, client.ErrUnconfirmed)
	e.tr.SetFault(nil)
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	if j, _ := e.tr.Job(n); j.Flags["a"] != 1 {
		t.Fatalf("job %d flags %v, want 1", n, j.Flags)
	}
	wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, "o"))
}

// TestActionsSerialised (Quirks): the upstream tracker applies concurrent
// completions from one token all at once; the client serialises them, so
// one is accepted and the other finds no job held.
func TestActionsSerialised(t *testing.T) {
	e := newEnv(t, trackertest.Options{Quirks: true, RaceWindow: 20 * time.Millisecond, Jobs: []any{"1", "2"}})
	c := e.init("a")
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	n := c.JobID()
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- c.CompleteJob(e.ctx, "out") }()
	}
	var accepted, refused int
	for i := 0; i < 2; i++ {
		switch err := <-errs; {
		case err == nil:
			accepted++
		case errors.Is(err, client.ErrNoJobHeld):
			refused++
		default:
			t.Errorf("CompleteJob: %v", err)
		}
	}
	if accepted != 1 || refused != 1 {
		t.Fatalf("accepted %d, refused %d; want 1 and 1", accepted, refused)
	}
	if j, _ := e.tr.Job(n); j.Completions["a"] != 1 {
		t.Fatalf("completions %v", j.Completions)
	}
}

// TestCloseCancelsActionInFlight: Close does not wait for an action whose
// answer does not come (the default retry policy would keep it going for
// minutes): it cancels it, and the next Init settles what it had recorded.
func TestCloseCancelsActionInFlight(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in"}})
	c := e.init("a", client.WithRetry(session.DefaultRetryPolicy()))
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	sent := make(chan struct{}, 1)
	e.tr.SetFault(func(r *http.Request, ep string) (trackertest.Fault, time.Duration) {
		if ep == "completeJob" {
			select {
			case sent <- struct{}{}:
			default:
			}
			return trackertest.FaultNone, time.Hour // the answer never comes
		}
		return trackertest.FaultNone, 0
	})
	errc := make(chan error, 1)
	go func() { errc <- c.CompleteJob(e.ctx, "out") }()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("the completion was not sent")
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a completion in flight", d)
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("CompleteJob in flight at Close = %v, want an error wrapping context.Canceled", err)
	}
	e.tr.SetFault(nil)
	c = e.init("a")
	if r := c.Report(); len(r.Resubmitted)+len(r.AppliedEarlier) != 1 {
		t.Errorf("after Close mid-completion, recovery did %s, want the completion settled", r)
	}
	if j := e.tr.Jobs()[0]; j.Completions["a"] != 1 || *j.Outputs["a"] != "out" {
		t.Errorf("job: %d completions, output %v", j.Completions["a"], j.Outputs["a"])
	}
}

// TestCrashLosesDeferredClaim: a claim is written with the job's first
// durable record; a crash before it loses the claim, and nothing else: the
// tracker still assigns the job to the worker, whose next claim releases it
// (and here gets it back, the only job), and the job is done once.
func TestCrashLosesDeferredClaim(t *testing.T) {
	e := newEnv(t, trackertest.Options{Jobs: []any{"in"}})
	c := e.init("a")
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	n := c.JobID()
	e.crash(c)
	c = e.init("a")
	if c.HasJob() || len(c.Report().Resumed) != 0 {
		t.Fatalf("a claim no commit made durable came back: job %d, report %s", c.JobID(), c.Report())
	}
	wantNoErr(t, "NewJob", c.NewJob(e.ctx))
	if c.JobID() != n {
		t.Fatalf("claimed job %d, want %d (released by the claim, the only open job)", c.JobID(), n)
	}
	wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, "out"))
	if j, _ := e.tr.Job(n); j.Completions["a"] != 1 {
		t.Fatalf("job %d completions %v, want 1", n, j.Completions)
	}
}
