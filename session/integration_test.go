package session_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// worker returns the tracker's view of the worker with token.
func workerView(t *testing.T, tr *trackertest.Tracker, token string) (trackertest.WorkerView, bool) {
	t.Helper()
	for _, w := range tr.Workers() {
		if w.Token == token {
			return w, true
		}
	}
	return trackertest.WorkerView{}, false
}

// TestTrackerEndpoints runs every endpoint against the in-memory tracker in
// contract mode: a job goes through stages a and b.
func TestTrackerEndpoints(t *testing.T) {
	ctx := context.Background()
	srv := trackertest.Start(t, trackertest.Options{
		Project: "Conformance",
		Stages:  map[string]string{"a": "CPU", "b": "GPU"},
		Jobs:    []any{map[string]any{"shard": 1, "url": "s3://bucket/shard-00001.tar"}},
		Seed:    1,
	})
	c, logs := newConn(t, srv.URL+"/", nil)

	for stage, want := range map[string]int{"a": 1, "B": 0, "c": 0} {
		if n, err := c.JobCount(ctx, stage); err != nil || n != want {
			t.Errorf("JobCount(%q) = %d, %v; want %d, nil", stage, n, err, want)
		}
	}
	if _, err := c.Register(ctx, "x", "c"); !errors.Is(err, session.ErrStageDisabled) {
		t.Errorf("Register at disabled stage c: err = %v, want ErrStageDisabled", err)
	}
	a, err := c.Register(ctx, "alice", "A")
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if a.Token == "" || a.DisplayName == "" || a.Project != "Conformance" || a.StageName != "CPU" {
		t.Errorf("Register = %+v", a)
	}
	if alive, err := c.IsAlive(ctx, a.Token); err != nil || !alive {
		t.Errorf("IsAlive = %v, %v; want true", alive, err)
	}
	if alive, err := c.IsAlive(ctx, "00000000-0000-0000-0000-000000000000"); err != nil || alive {
		t.Errorf("IsAlive(unknown) = %v, %v; want false", alive, err)
	}
	if err := c.UpdateProgress(ctx, a.Token, strings.Repeat("ü", 400)); err != nil {
		t.Errorf("UpdateProgress(400 runes): %v", err)
	}
	if w, _ := workerView(t, srv.Tracker, a.Token); utf8.RuneCountInString(w.Progress) != session.MaxProgressLen {
		t.Errorf("tracker stored %d runes of progress, want %d", utf8.RuneCountInString(w.Progress), session.MaxProgressLen)
	}
	if err := c.CompleteJob(ctx, a.Token, session.String("x")); !errors.Is(err, session.ErrNoJobHeld) {
		t.Errorf("CompleteJob without a job: err = %v, want ErrNoJobHeld", err)
	}
	if err := c.FlagInvalidData(ctx, a.Token); !errors.Is(err, session.ErrNoJobHeld) {
		t.Errorf("FlagInvalidData without a job: err = %v, want ErrNoJobHeld", err)
	}

	job, err := c.NewJob(ctx, a.Token)
	if err != nil {
		t.Fatalf("NewJob: %v", err)
	}
	var in struct {
		Shard int    `json:"shard"`
		URL   string `json:"url"`
	}
	if job.Number != 1 || job.Data.Kind() != session.KindJSON {
		t.Fatalf("NewJob = %+v, want job 1 with JSON data", job)
	}
	if err := job.Data.Unmarshal(&in); err != nil || in.Shard != 1 {
		t.Errorf("job data = %+v, %v", in, err)
	}
	if _, err := c.NewJob(ctx, a.Token); !errors.Is(err, session.ErrNoJobs) {
		// Claiming again released job 1 and took it again, or found nothing.
		if err != nil {
			t.Fatalf("NewJob again: %v", err)
		}
	}
	out, err := session.JSON(map[string]any{"shard": in.Shard, "captions": []string{"a cat"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CompleteJob(ctx, a.Token, out); err != nil {
		t.Fatalf("CompleteJob: %v", err)
	}
	if err := c.CompleteJob(ctx, a.Token, out); !errors.Is(err, session.ErrNoJobHeld) {
		t.Errorf("second CompleteJob: err = %v, want ErrNoJobHeld", err)
	}
	if _, err := c.NewJob(ctx, a.Token); !errors.Is(err, session.ErrNoJobs) {
		t.Errorf("NewJob at empty stage a: err = %v, want ErrNoJobs", err)
	}

	b, err := c.Register(ctx, "bob", "b")
	if err != nil {
		t.Fatalf("Register b: %v", err)
	}
	jb, err := c.NewJob(ctx, b.Token)
	if err != nil {
		t.Fatalf("NewJob b: %v", err)
	}
	if jb.Number != 1 || jb.Data.Kind() != session.KindJSON || jb.Data.Text() != out.Text() {
		t.Errorf("stage b job = %+v, want job 1 with stage a's output %s", jb, out.Text())
	}
	if err := c.FlagInvalidData(ctx, b.Token); err != nil {
		t.Errorf("FlagInvalidData: %v", err)
	}
	if err := c.FlagInvalidData(ctx, b.Token); !errors.Is(err, session.ErrNoJobHeld) {
		t.Errorf("second FlagInvalidData: err = %v, want ErrNoJobHeld", err)
	}
	if _, err := c.NewJob(ctx, b.Token); err != nil {
		t.Fatalf("NewJob b after flag: %v", err)
	}
	if err := c.CompleteJob(ctx, b.Token, session.String("final")); err != nil {
		t.Fatalf("CompleteJob b: %v", err)
	}
	if j, ok := srv.Tracker.Job(1); !ok || j.State != trackertest.JobClosed {
		t.Errorf("job 1 = %+v, want closed", j)
	}

	for _, tok := range []string{a.Token, b.Token} {
		if err := c.Bye(ctx, tok); err != nil {
			t.Errorf("Bye: %v", err)
		}
		if err := c.Bye(ctx, tok); !errors.Is(err, session.ErrWorkerGone) {
			t.Errorf("second Bye: err = %v, want ErrWorkerGone", err)
		}
		if _, err := c.NewJob(ctx, tok); !errors.Is(err, session.ErrWorkerGone) {
			t.Errorf("NewJob after bye: err = %v, want ErrWorkerGone", err)
		}
		if alive, err := c.IsAlive(ctx, tok); err != nil || alive {
			t.Errorf("IsAlive after bye = %v, %v; want false", alive, err)
		}
		if strings.Contains(logs.String(), tok) {
			t.Errorf("logs hold a token")
		}
	}
}

// TestTrackerQuirks runs against the tracker as upstream really behaves:
// null data at stage b, and the 5th flag at stage b answered 422.
func TestTrackerQuirks(t *testing.T) {
	ctx := context.Background()
	srv := trackertest.Start(t, trackertest.Options{
		Stages: map[string]string{"a": "CPU", "b": "GPU"},
		Jobs:   []any{"https://example.invalid/shards/shard-00001.tar"},
		Quirks: true,
		Seed:   1,
	})
	c, _ := newConn(t, srv.URL, nil)
	a, err := c.Register(ctx, "alice", "a")
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.NewJob(ctx, a.Token)
	if err != nil || job.Data != session.String("https://example.invalid/shards/shard-00001.tar") {
		t.Fatalf("NewJob = %+v, %v", job, err)
	}
	if err := c.CompleteJob(ctx, a.Token, session.String("stage-a-output")); err != nil {
		t.Fatal(err)
	}
	b, err := c.Register(ctx, "bob", "b")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		jb, err := c.NewJob(ctx, b.Token)
		if err != nil {
			t.Fatalf("NewJob b #%d: %v", i, err)
		}
		if !jb.Data.IsNull() || jb.Data.Wire() != nil {
			t.Errorf("stage b data = %v (%v), want Null", jb.Data, jb.Data.Kind())
		}
		err = c.FlagInvalidData(ctx, b.Token)
		if i < 5 {
			if err != nil {
				t.Fatalf("flag #%d: %v", i, err)
			}
			continue
		}
		var ve *session.ValidationError
		if !errors.As(err, &ve) || len(ve.Detail) != 1 || ve.Detail[0].Type != "IntegrityError" {
			t.Fatalf("flag #5: err = %v, want *ValidationError with an IntegrityError", err)
		}
	}
	if w, _ := workerView(t, srv.Tracker, b.Token); w.Job != 1 {
		t.Errorf("after the failed 5th flag the worker holds job %d, want 1", w.Job)
	}
}

// TestTrackerFaults injects faults in the tracker and checks what each call
// makes of them, ErrAppliedEarlier in particular.
func TestTrackerFaults(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		fault    trackertest.Fault
		call     func(ctx context.Context, c *session.Conn, token string) error
		want     error
	}{
		{"complete answer dropped", "completeJob", trackertest.FaultDropAnswer, func(ctx context.Context, c *session.Conn, tok string) error {
			return c.CompleteJob(ctx, tok, session.String("out"))
		}, session.ErrAppliedEarlier},
		{"complete request dropped", "completeJob", trackertest.FaultDropRequest, func(ctx context.Context, c *session.Conn, tok string) error {
			return c.CompleteJob(ctx, tok, session.String("out"))
		}, nil},
		{"complete 500 not applied", "completeJob", trackertest.Fault500, func(ctx context.Context, c *session.Conn, tok string) error {
			return c.CompleteJob(ctx, tok, session.String("out"))
		}, nil},
		{"flag answer dropped", "flagInvalidData", trackertest.FaultDropAnswer, func(ctx context.Context, c *session.Conn, tok string) error {
			return c.FlagInvalidData(ctx, tok)
		}, session.ErrAppliedEarlier},
		{"flag 502", "flagInvalidData", trackertest.Fault502, func(ctx context.Context, c *session.Conn, tok string) error {
			return c.FlagInvalidData(ctx, tok)
		}, nil},
		{"bye answer dropped", "bye", trackertest.FaultDropAnswer, func(ctx context.Context, c *session.Conn, tok string) error {
			return c.Bye(ctx, tok)
		}, session.ErrAppliedEarlier},
		{"bye 503", "bye", trackertest.Fault503, func(ctx context.Context, c *session.Conn, tok string) error {
			return c.Bye(ctx, tok)
		}, nil},
		{"newJob answer dropped", "newJob", trackertest.FaultDropAnswer, func(ctx context.Context, c *session.Conn, tok string) error {
			_, err := c.NewJob(ctx, tok)
			return err
		}, nil},
		{"progress answer dropped", "updateProgress", trackertest.FaultDropAnswer, func(ctx context.Context, c *session.Conn, tok string) error {
			return c.UpdateProgress(ctx, tok, "p")
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv := trackertest.Start(t, trackertest.Options{Jobs: []any{"j1", "j2"}, Seed: 1})
			c, _ := newConn(t, srv.URL, nil)
			reg, err := c.Register(ctx, "w", "a")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.NewJob(ctx, reg.Token); err != nil {
				t.Fatal(err)
			}
			var faults atomic.Int32
			srv.Tracker.SetFault(func(_ *http.Request, ep string) (trackertest.Fault, time.Duration) {
				if ep == tt.endpoint && faults.Add(1) == 1 {
					return tt.fault, 0
				}
				return trackertest.FaultNone, 0
			})
			err = tt.call(ctx, c, reg.Token)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if faults.Load() != 2 {
				t.Errorf("requests to %s = %d, want 2 (one retry)", tt.endpoint, faults.Load())
			}
		})
	}
}

// TestTrackerIdleTimeout checks the answers to a worker the tracker deleted
// for idling.
func TestTrackerIdleTimeout(t *testing.T) {
	ctx := context.Background()
	clock := trackertest.NewFakeClock(time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC))
	srv := trackertest.Start(t, trackertest.Options{Jobs: []any{"j1"}, Clock: clock, Seed: 1})
	c, _ := newConn(t, srv.URL, nil)
	reg, err := c.Register(ctx, "w", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewJob(ctx, reg.Token); err != nil {
		t.Fatal(err)
	}
	clock.Advance(trackertest.DefaultIdleTimeout + time.Second)
	srv.Tracker.CheckIdle()
	if alive, err := c.IsAlive(ctx, reg.Token); err != nil || alive {
		t.Errorf("IsAlive = %v, %v; want false", alive, err)
	}
	if err := c.UpdateProgress(ctx, reg.Token, "still here"); err != nil {
		t.Errorf("UpdateProgress of a deleted worker: %v (the tracker answers 200)", err)
	}
	if err := c.CompleteJob(ctx, reg.Token, session.String("late")); !errors.Is(err, session.ErrWorkerGone) {
		t.Errorf("CompleteJob: err = %v, want ErrWorkerGone", err)
	}
	if n, err := c.JobCount(ctx, "a"); err != nil || n != 1 {
		t.Errorf("JobCount = %d, %v; want the job re-opened", n, err)
	}
}
