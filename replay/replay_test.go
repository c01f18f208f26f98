package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

var fastRetry = session.RetryPolicy{
	InitialInterval: 2 * time.Millisecond,
	MaxInterval:     10 * time.Millisecond,
	MaxRetries:      4, // bounded by count, not time: robust on a loaded machine
	AttemptTimeout:  time.Second,
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	srv   *trackertest.Server
	clock *trackertest.FakeClock
	conn  *session.Conn
	db    *journal.DB
}

func newFixture(t *testing.T, quirks bool, jobs ...any) *fixture {
	t.Helper()
	clock := trackertest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	srv := trackertest.Start(t, trackertest.Options{Jobs: jobs, Clock: clock, Quirks: quirks, Seed: 1})
	conn, err := session.New(srv.URL, &session.Options{Retry: &fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	db, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, err := range db.Verify() {
			t.Errorf("journal does not verify: %v", err)
		}
		db.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return &fixture{t: t, ctx: ctx, srv: srv, clock: clock, conn: conn, db: db}
}

func (f *fixture) append(e journal.Event) {
	f.t.Helper()
	if _, err := f.db.Append(e); err != nil {
		f.t.Fatal(err)
	}
}

// register registers a worker and records it in slot, as a client would.
func (f *fixture) register(slot string) string {
	f.t.Helper()
	reg, err := f.conn.Register(f.ctx, "n", "a")
	if err != nil {
		f.t.Fatal(err)
	}
	f.append(journal.Event{Slot: slot, Kind: journal.KindRegistered, URL: f.srv.URL, Stage: "a", Nickname: "n",
		Token: reg.Token, DisplayName: reg.DisplayName, Project: reg.Project, StageName: reg.StageName})
	return reg.Token
}

// claim claims a job for token and records it.
func (f *fixture) claim(slot, token string) int {
	f.t.Helper()
	job, err := f.conn.NewJob(f.ctx, token)
	if err != nil {
		f.t.Fatal(err)
	}
	f.append(journal.Event{Slot: slot, Kind: journal.KindClaimed, Job: job.Number, Input: job.Data.Wire()})
	return job.Number
}

func out(s string) *string { return &s }

func TestRunAllSlots(t *testing.T) {
	f := newFixture(t, false, "1", "2", "3", "4")
	// done: completion recorded, never sent.
	tok := f.register("done")
	n1 := f.claim("done", tok)
	f.append(journal.Event{Slot: "done", Kind: journal.KindCompletionPending, Job: n1, Output: out("o1")})
	// applied: completion sent and applied, answer never recorded.
	tok = f.register("applied")
	n2 := f.claim("applied", tok)
	f.append(journal.Event{Slot: "applied", Kind: journal.KindCompletionPending, Job: n2, Output: out("o2")})
	if err := f.conn.CompleteJob(f.ctx, tok, session.String("o2")); err != nil {
		t.Fatal(err)
	}
	// held: a job being worked on, with a checkpoint.
	tok = f.register("held")
	n3 := f.claim("held", tok)
	f.append(journal.Event{Slot: "held", Kind: journal.KindCheckpoint, Job: n3, Checkpoint: []byte("cp")})
	// closed: nothing to do.
	tok = f.register("closed")
	f.append(journal.Event{Slot: "closed", Kind: journal.KindByePending})
	if err := f.conn.Bye(f.ctx, tok); err != nil {
		t.Fatal(err)
	}
	f.append(journal.Event{Slot: "closed", Kind: journal.KindClosed})

	reports, err := replay.Run(f.ctx, f.db, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]replay.Report{}
	for _, r := range reports {
		got[r.Slot] = r
	}
	want := map[string]replay.Report{
		"done":    {Slot: "done", Resubmitted: []int{n1}},
		"applied": {Slot: "applied", AppliedEarlier: []int{n2}},
		"held":    {Slot: "held", Resumed: []int{n3}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("reports:\n got %+v\nwant %+v", got, want)
	}
	tr := f.srv.Tracker
	for _, n := range []int{n1, n2} {
		if j, _ := tr.Job(n); j.Completions["a"] != 1 {
			t.Errorf("job %d completions %v", n, j.Completions)
		}
	}
	for slot, rep := range want {
		st, _ := f.db.State(slot)
		var r replay.Report
		if err := json.Unmarshal(st.LastReport, &r); err != nil || !reflect.DeepEqual(r, rep) {
			t.Errorf("slot %s: journaled report %s (%v)", slot, st.LastReport, err)
		}
	}
	// Idempotent: a second run settles nothing more, resumes the held job.
	// A second run settles nothing more (open sessions are checked and
	// refreshed) and resumes the held job again.
	reports, err = replay.Run(f.ctx, f.db, replay.Options{})
	if err != nil || len(reports) != 3 {
		t.Fatalf("second run: %+v, %v", reports, err)
	}
	for _, r := range reports {
		if (r.Slot == "held") == r.Empty() {
			t.Errorf("second run: %v", r)
		}
	}
}

func TestWorkerGone(t *testing.T) {
	f := newFixture(t, true, "1", "2")
	tok := f.register("s")
	n := f.claim("s", tok)
	f.append(journal.Event{Slot: "s", Kind: journal.KindCompletionPending, Job: n, Output: out("kept")})
	f.clock.Advance(trackertest.DefaultIdleTimeout + time.Minute)
	f.srv.Tracker.CheckIdle()

	rep, err := replay.Slot(f.ctx, f.db, "s", replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.SessionLost || !reflect.DeepEqual(rep.Orphaned, []int{n}) {
		t.Fatalf("report %+v", rep)
	}
	orphans, _ := f.db.Orphans()
	if len(orphans) != 1 || orphans[0].Output != "kept" || orphans[0].Job != n {
		t.Fatalf("orphans %+v", orphans)
	}
	j, _ := f.srv.Tracker.Job(n)
	o, ok := replay.MatchOrphan(orphans, "a", n, j.Data["a"])
	if !ok || o.Seq != orphans[0].Seq {
		t.Errorf("MatchOrphan = %+v, %v", o, ok)
	}
	st, _ := f.db.State("s")
	if st.Session != nil || replay.NeedsReplay(st) {
		t.Errorf("state after loss: %+v", st.Redacted())
	}
}

func TestRelease(t *testing.T) {
	f := newFixture(t, false, "1")
	tok := f.register("s")
	n := f.claim("s", tok)
	rep, err := replay.Slot(f.ctx, f.db, "s", replay.Options{Mode: replay.Release})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Released, []int{n}) || !rep.Closed {
		t.Fatalf("report %+v", rep)
	}
	if j, _ := f.srv.Tracker.Job(n); j.State != "open" {
		t.Errorf("job state %s", j.State)
	}
	if len(f.srv.Tracker.Workers()) != 0 {
		t.Errorf("worker not deleted")
	}
}

func TestPendingFlagFailsInQuirks(t *testing.T) {
	// Five flags at stage b: the fifth, resent by replay, fails with 422
	// and the job stays held.
	clock := trackertest.NewFakeClock(time.Now())
	srv := trackertest.Start(t, trackertest.Options{Quirks: true, Clock: clock, Seed: 1,
		Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: []any{"1"}})
	f := newFixture(t, true)
	f.srv = srv
	f.conn, _ = session.New(srv.URL, &session.Options{Retry: &fastRetry})
	ta, _ := f.conn.Register(f.ctx, "a", "a")
	f.conn.NewJob(f.ctx, ta.Token)
	if err := f.conn.CompleteJob(f.ctx, ta.Token, session.String("x")); err != nil {
		t.Fatal(err)
	}
	reg, _ := f.conn.Register(f.ctx, "b", "b")
	for i := 0; i < 4; i++ {
		f.conn.NewJob(f.ctx, reg.Token)
		if err := f.conn.FlagInvalidData(f.ctx, reg.Token); err != nil {
			t.Fatal(err)
		}
	}
	f.append(journal.Event{Slot: "b", Kind: journal.KindRegistered, URL: srv.URL, Stage: "b", Token: reg.Token})
	job, _ := f.conn.NewJob(f.ctx, reg.Token)
	f.append(journal.Event{Slot: "b", Kind: journal.KindClaimed, Job: job.Number, Input: job.Data.Wire()})
	f.append(journal.Event{Slot: "b", Kind: journal.KindFlagPending, Job: job.Number})
	rep, err := replay.Slot(f.ctx, f.db, "b", replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.FlagsFailed, []int{job.Number}) || !reflect.DeepEqual(rep.Resumed, []int{job.Number}) {
		t.Fatalf("report %+v", rep)
	}
}

func TestURLOverrideAndUnreachable(t *testing.T) {
	f := newFixture(t, false, "1")
	reg, _ := f.conn.Register(f.ctx, "n", "a")
	dead := "http://127.0.0.1:1"
	f.append(journal.Event{Slot: "s", Kind: journal.KindRegistered, URL: dead, Stage: "a", Token: reg.Token})
	job, _ := f.conn.NewJob(f.ctx, reg.Token)
	f.append(journal.Event{Slot: "s", Kind: journal.KindClaimed, Job: job.Number, Input: job.Data.Wire()})
	f.append(journal.Event{Slot: "s", Kind: journal.KindCompletionPending, Job: job.Number, Output: out("o")})

	// The recorded tracker is unreachable: nothing is settled, the
	// completion stays pending, the report says why.
	rep, err := replay.Slot(f.ctx, f.db, "s", replay.Options{Retry: &fastRetry})
	if err == nil || len(rep.Errors) != 1 {
		t.Fatalf("replay against a dead tracker: %+v, %v", rep, err)
	}
	if st, _ := f.db.State("s"); st.Completion == nil {
		t.Fatalf("the completion was dropped")
	}
	// The URL override points at the live one.
	rep, err = replay.Slot(f.ctx, f.db, "s", replay.Options{URL: f.srv.URL, Retry: &fastRetry})
	if err != nil || !reflect.DeepEqual(rep.Resubmitted, []int{job.Number}) {
		t.Fatalf("replay with URL override: %+v, %v", rep, err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	if _, err := replay.Run(ctx, f.db, replay.Options{URL: f.srv.URL}); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled context: %v", err)
	}
}

func TestMatchOrphan(t *testing.T) {
	orphans := []journal.Orphan{
		{Seq: 1, Stage: "a", Job: 1, Input: out("x")},
		{Seq: 2, Stage: "b", Job: 1, Input: nil},
		{Seq: 3, Stage: "a", Job: 2, Input: out("y")},
	}
	tests := []struct {
		name  string
		stage string
		job   int
		input *string
		want  uint64
	}{
		{"same", "a", 1, out("x"), 1},
		{"other input", "a", 1, out("z"), 0},
		{"null input", "b", 1, nil, 2},
		{"null vs string", "b", 1, out(""), 0},
		{"other stage", "c", 1, out("x"), 0},
		{"other job", "a", 3, out("y"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, ok := replay.MatchOrphan(orphans, tt.stage, tt.job, tt.input)
			if ok != (tt.want != 0) || o.Seq != tt.want {
				t.Errorf("got %d, %v; want %d", o.Seq, ok, tt.want)
			}
		})
	}
}
