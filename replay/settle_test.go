package replay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// answer is what the tracker says to the settled request in a case of
// TestSettleTable. 200, 403 and 404 are produced by the tracker itself
// (trackertest in the mode under test), from a state that makes it answer
// so; the others are answered in its place by a wrapper, with the bodies
// the upstream tracker sends (docs/PROTOCOL.md).
type answer string

const (
	a200     answer = "200"
	a403     answer = "403"
	a404     answer = "404"
	a422     answer = "422"
	a503     answer = "5xx"
	aTimeout answer = "timeout"
)

// TestSettleTable maps every (operation, answer, first send or resend)
// to the outcome Settle records, against both modes of trackertest, and
// checks the journal's state afterwards.
func TestSettleTable(t *testing.T) {
	type want map[bool]replay.Outcome // by resend
	same := func(o replay.Outcome) want { return want{false: o, true: o} }
	table := map[replay.Op]map[answer]want{
		replay.OpComplete: {
			a200:     same(replay.Accepted),
			a403:     {false: replay.Orphaned, true: replay.AppliedEarlier},
			a404:     same(replay.WorkerGone),
			a422:     same(replay.Orphaned),
			a503:     same(replay.Unsettled),
			aTimeout: same(replay.Unsettled),
		},
		replay.OpFlag: {
			a200:     same(replay.Accepted),
			a403:     {false: replay.Orphaned, true: replay.AppliedEarlier},
			a404:     same(replay.WorkerGone),
			a422:     same(replay.Refused),
			a503:     same(replay.Unsettled),
			aTimeout: same(replay.Unsettled),
		},
		replay.OpBye: {
			a200:     same(replay.Accepted),
			a403:     same(replay.Unsettled), // not an answer bye has: unforeseen, kept pending
			a404:     {false: replay.Accepted, true: replay.AppliedEarlier},
			a422:     same(replay.Unsettled),
			a503:     same(replay.Unsettled),
			aTimeout: same(replay.Unsettled),
		},
	}
	answers := []answer{a200, a403, a404, a422, a503, aTimeout}
	for _, quirks := range []bool{false, true} {
		for _, op := range []replay.Op{replay.OpComplete, replay.OpFlag, replay.OpBye} {
			for _, a := range answers {
				for _, resend := range []bool{false, true} {
					name := fmt.Sprintf("quirks=%v/%s/%s/resend=%v", quirks, op, a, resend)
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						got := settleCase(t, quirks, op, a, resend)
						if w := table[op][a][resend]; got != w {
							t.Errorf("outcome %s, want %s", got, w)
						}
					})
				}
			}
		}
	}
}

// settleCase records op pending in a fresh journal for a worker holding a
// job, makes the tracker answer a, settles and checks the journal.
func settleCase(t *testing.T, quirks bool, op replay.Op, a answer, resend bool) replay.Outcome {
	tr := trackertest.New(trackertest.Options{Jobs: []any{"in-1", "in-2"}, Quirks: quirks, Seed: 3})
	done := make(chan struct{})
	endpoint := map[replay.Op]string{replay.OpComplete: "completeJob", replay.OpFlag: "flagInvalidData", replay.OpBye: "bye"}[op]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/"+endpoint {
			switch a {
			case a422:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnprocessableEntity)
				fmt.Fprint(w, `{"detail":[{"loc":["body","data"],"msg":"none is not an allowed value","type":"type_error.none.not_allowed"}]}`)
				return
			case a503:
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, "Service Unavailable")
				return
			case aTimeout:
				// Never answers: the attempt times out. The body is read so
				// that the server notices the client hanging up.
				_, _ = io.Copy(io.Discard, r.Body)
				select {
				case <-r.Context().Done():
				case <-done:
				}
				return
			case a403:
				if op == replay.OpBye {
					w.Header().Set("Content-Type", "text/plain; charset=utf-8")
					w.WriteHeader(http.StatusForbidden)
					fmt.Fprint(w, "Forbidden")
					return
				}
			}
		}
		tr.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) }) // runs first: no handler outlives the test
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The set-up requests wait as long as a loaded machine needs (a retry
	// of an applied request is answered ErrAppliedEarlier, which is
	// success for them). Settle's own requests wait as long too, except in
	// the timeout case, where the answer never comes.
	setup, err := session.New(srv.URL, &session.Options{Retry: &session.RetryPolicy{
		InitialInterval: time.Millisecond, MaxRetries: 3, AttemptTimeout: 15 * time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	attempt := 15 * time.Second
	if a == aTimeout {
		attempt = 100 * time.Millisecond
	}
	conn, err := session.New(srv.URL, &session.Options{Retry: &session.RetryPolicy{
		InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxRetries: 1, AttemptTimeout: attempt,
	}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, err := range db.Verify() {
			t.Errorf("journal does not verify: %v", err)
		}
		db.Close()
	}()
	add := func(e journal.Event) {
		t.Helper()
		e.Slot = "s"
		if _, err := db.Append(e); err != nil {
			t.Fatal(err)
		}
	}

	reg, err := setup.Register(ctx, "settle", "a")
	if err != nil {
		t.Fatal(err)
	}
	add(journal.Event{Kind: journal.KindRegistered, URL: srv.URL, Stage: "a", Token: reg.Token, DisplayName: reg.DisplayName})
	job, err := setup.NewJob(ctx, reg.Token)
	if err != nil {
		t.Fatal(err)
	}
	add(journal.Event{Kind: journal.KindClaimed, Job: job.Number, Input: job.Data.Wire()})
	switch op {
	case replay.OpComplete:
		out := "out"
		add(journal.Event{Kind: journal.KindCompletionPending, Output: &out})
	case replay.OpFlag:
		add(journal.Event{Kind: journal.KindFlagPending})
	case replay.OpBye:
		add(journal.Event{Kind: journal.KindByePending})
	}
	// Bring the tracker to the state that makes it answer a.
	switch a {
	case a403: // the worker holds no job: its job was completed (by "an earlier attempt")
		if err := setup.CompleteJob(ctx, reg.Token, session.String("out")); err != nil && !errors.Is(err, session.ErrAppliedEarlier) {
			t.Fatal(err)
		}
	case a404: // the tracker does not know the worker
		if err := setup.Bye(ctx, reg.Token); err != nil && !errors.Is(err, session.ErrAppliedEarlier) {
			t.Fatal(err)
		}
	}

	res, err := replay.Settle(ctx, db, conn, "s", op, resend, nil)
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if res.Job != job.Number {
		t.Errorf("Settled.Job = %d, want %d", res.Job, job.Number)
	}
	if (res.Err == nil) != (a == a200) {
		t.Errorf("Settled.Err = %v for answer %s", res.Err, a)
	}
	if res.Err != nil && strings.Contains(res.Err.Error(), reg.Token) {
		t.Errorf("Settled.Err holds the token: %v", res.Err)
	}

	st, err := db.State("s")
	if err != nil {
		t.Fatal(err)
	}
	orphans, err := db.Orphans()
	if err != nil {
		t.Fatal(err)
	}
	o := res.Outcome
	switch op {
	case replay.OpComplete:
		pending := st.Completion != nil
		if pending != (o == replay.Unsettled) {
			t.Errorf("completion pending = %v after outcome %s", pending, o)
		}
		if kept := len(orphans) == 1; kept != (o == replay.Orphaned || o == replay.WorkerGone) {
			t.Errorf("%d orphans after outcome %s", len(orphans), o)
		}
	case replay.OpFlag:
		if st.FlagPending != (o == replay.Unsettled) {
			t.Errorf("flag pending = %v after outcome %s", st.FlagPending, o)
		}
		if held := st.Job != nil; held != (o == replay.Unsettled || o == replay.Refused) {
			t.Errorf("job held = %v after outcome %s", held, o)
		}
	case replay.OpBye:
		if st.Closed != o.Settled() || st.ByePending != !o.Settled() {
			t.Errorf("closed = %v, bye pending = %v after outcome %s", st.Closed, st.ByePending, o)
		}
	}
	if lost := st.Session == nil && !st.Closed; lost != (o == replay.WorkerGone) {
		t.Errorf("session lost = %v after outcome %s", lost, o)
	}
	return o
}

// TestInterpretUnknownOp: an operation Settle does not know is never
// settled.
func TestInterpretUnknownOp(t *testing.T) {
	if o := replay.Interpret(replay.Op(99), nil, false); o != replay.Unsettled {
		t.Errorf("Interpret(unknown op) = %s, want unsettled", o)
	}
}
