package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/trackertest"
)

const undecodable = "<!json!>{nope"

// A job whose data cannot be decoded is flagged within the claim that got
// it; once the stage holds only that job, NewJob answers ErrNoJobs (the job
// handed back, open for others) instead of failing claim after claim; a
// good job added later is claimed, and the bad one is never flagged twice.
func TestNewJobFlagsUndecodableData(t *testing.T) {
	modes(t, func(t *testing.T, quirks bool) {
		e := newEnv(t, trackertest.Options{Quirks: quirks})
		e.tr.AddJobs(undecodable)
		c := e.init("a")
		wantErrIs(t, "NewJob with only an undecodable job open", c.NewJob(e.ctx), client.ErrNoJobs)
		j, _ := e.tr.Job(1)
		if j.State != trackertest.JobOpen || j.Flags["a"] != 1 {
			t.Fatalf("job 1 after the claim: state %s, %d flags; want open, 1 flag", j.State, j.Flags["a"])
		}
		if c.HasJob() {
			t.Fatalf("the client holds job %d after refusing it", c.JobID())
		}
		e.tr.AddJobs("good")
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		if c.JobID() != 2 || c.Job().Text() != "good" {
			t.Fatalf("claimed job %d %q, want 2 \"good\"", c.JobID(), c.Job().Text())
		}
		if j, _ := e.tr.Job(1); j.Flags["a"] != 1 || j.State != trackertest.JobOpen {
			t.Fatalf("job 1: state %s, %d flags; want open, flagged once", j.State, j.Flags["a"])
		}
		if got := c.RefusedJobs(); len(got) != 1 || got[0] != 1 {
			t.Fatalf("RefusedJobs = %v, want [1]", got)
		}
		if c.Refusals() < 2 {
			t.Fatalf("Refusals = %d, want at least 2 (flagged once, released at least once)", c.Refusals())
		}
		e.crash(c)
		evs := e.events(client.DefaultSlot)
		var flagged, released bool
		for _, ev := range evs {
			switch {
			case ev.Kind == journal.KindFlagPending && ev.Job == 1 && strings.Contains(ev.Reason, "cannot be decoded"):
				flagged = true
			case ev.Kind == journal.KindRefused && ev.Job == 1 && strings.Contains(ev.Reason, "refused before"):
				released = true
			}
		}
		if !flagged || !released || !hasEvent(evs, journal.KindFlagSettled, journal.OutcomeAccepted) {
			t.Fatalf("journal lacks the flag (with its reason), its settle or the later release: %v", evs)
		}
	})
}

// WaitForJob is never held up by a job it cannot take: it refuses it and
// goes on waiting, then claims the good job when one comes.
func TestWaitForJobMovesOnFromUndecodableData(t *testing.T) {
	e := newEnv(t, trackertest.Options{})
	e.tr.AddJobs(undecodable, undecodable+"2")
	c := e.init("a")
	ctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
	err := c.WaitForJob(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForJob with only undecodable jobs: %v, want the context's deadline", err)
	}
	e.tr.AddJobs("good")
	wantNoErr(t, "WaitForJob", c.WaitForJob(e.ctx))
	if c.JobID() != 3 {
		t.Fatalf("WaitForJob claimed job %d, want 3", c.JobID())
	}
	for _, n := range []int{1, 2} {
		if j, _ := e.tr.Job(n); j.Flags["a"] != 1 || j.State != trackertest.JobOpen {
			t.Fatalf("job %d: state %s, %d flags; want open, flagged once", n, j.State, j.Flags["a"])
		}
	}
}
