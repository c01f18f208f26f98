package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/session"
)

// recordedStep is one step of testdata/upstream-answers.json, copied from
// the recording of the upstream tracker.
type recordedStep struct {
	Seq         int               `json:"seq"`
	Step        string            `json:"step"`
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	Query       map[string]string `json:"query"`
	Status      int               `json:"status"`
	ContentType *string           `json:"content_type"`
	Response    *string           `json:"response"`
}

func loadRecorded(t *testing.T) map[int]recordedStep {
	t.Helper()
	b, err := os.ReadFile("testdata/upstream-answers.json")
	if err != nil {
		t.Fatal(err)
	}
	var steps []recordedStep
	if err := json.Unmarshal(b, &steps); err != nil {
		t.Fatal(err)
	}
	m := make(map[int]recordedStep, len(steps))
	for _, s := range steps {
		m[s.Seq] = s
	}
	return m
}

// replay starts a fake tracker that answers every request with the recorded
// answer of step s.
func replay(t *testing.T, s recordedStep) (string, func() int32) {
	srv, hits := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if s.ContentType != nil {
			w.Header().Set("Content-Type", *s.ContentType)
		}
		if s.Status == 307 {
			w.Header().Set("Location", "http://127.0.0.1:1/api/newJob")
		}
		w.WriteHeader(s.Status)
		if s.Response != nil {
			_, _ = w.Write([]byte(*s.Response))
		}
	})
	return srv.URL, hits.Load
}

const recordedToken = "ea25c273-19a1-4c84-a904-7be689284ce3"

// TestStatusMapping replays recorded answers of the upstream tracker to
// every endpoint and checks the result each is mapped to.
func TestStatusMapping(t *testing.T) {
	steps := loadRecorded(t)
	type result struct {
		value any    // expected value for a nil error
		err   error  // sentinel, or nil
		as    string // "server": *session.ServerError, "validation": *session.ValidationError
	}
	register := func(ctx context.Context, c *session.Conn) (any, error) { return c.Register(ctx, "alice", "a") }
	jobCount := func(ctx context.Context, c *session.Conn) (any, error) { return c.JobCount(ctx, "a") }
	isAlive := func(ctx context.Context, c *session.Conn) (any, error) { return c.IsAlive(ctx, recordedToken) }
	progress := func(ctx context.Context, c *session.Conn) (any, error) {
		return nil, c.UpdateProgress(ctx, recordedToken, "warming up")
	}
	newJob := func(ctx context.Context, c *session.Conn) (any, error) { return c.NewJob(ctx, recordedToken) }
	complete := func(ctx context.Context, c *session.Conn) (any, error) {
		return nil, c.CompleteJob(ctx, recordedToken, session.String("x"))
	}
	flag := func(ctx context.Context, c *session.Conn) (any, error) {
		return nil, c.FlagInvalidData(ctx, recordedToken)
	}
	bye := func(ctx context.Context, c *session.Conn) (any, error) { return nil, c.Bye(ctx, recordedToken) }

	mustJSON := func(s string) session.Payload {
		p, err := session.RawJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const se, ve = "server", "validation"
	tests := []struct {
		seq      int
		call     func(context.Context, *session.Conn) (any, error)
		want     result
		wantHits int32 // 0: 1
	}{
		{2, register, result{value: session.Registration{Token: recordedToken, DisplayName: "pigs-moralizations-818", Project: "Conformance", StageName: "CPU"}}, 0},
		{4, register, result{err: session.ErrInvalidStage}, 0},
		{5, register, result{err: session.ErrInvalidStage}, 0},
		{6, register, result{err: session.ErrStageDisabled}, 0},
		{7, register, result{err: session.ErrInvalidStage}, 0},
		{8, register, result{as: ve}, 0},
		{10, register, result{as: se}, 0},
		{39, register, result{as: se}, 4},
		{11, jobCount, result{value: 3}, 0},
		{12, jobCount, result{value: 0}, 0},
		{14, jobCount, result{err: session.ErrInvalidStage}, 0},
		{16, jobCount, result{as: ve}, 0},
		{23, jobCount, result{as: se}, 0},
		{26, isAlive, result{value: true}, 0},
		{27, isAlive, result{value: false}, 0},
		{28, isAlive, result{as: ve}, 0},
		{30, isAlive, result{as: ve}, 0},
		{31, progress, result{}, 0},
		{33, progress, result{as: ve}, 0},
		{35, progress, result{err: session.ErrWorkerGone}, 0},
		{24, newJob, result{as: se}, 0},
		{25, newJob, result{as: se}, 0},
		{46, newJob, result{err: session.ErrWorkerGone}, 0},
		{47, newJob, result{err: session.ErrNoJobs}, 0},
		{58, newJob, result{value: session.Job{Number: 2, Data: mustJSON(`{"shard": 2, "url": "s3://bucket/shard-00002.tar"}`)}}, 0},
		{61, newJob, result{value: session.Job{Number: 3, Data: session.String("https://example.invalid/shards/shard-00003.tar")}}, 0},
		{69, newJob, result{value: session.Job{Number: 3, Data: session.Null()}}, 0},
		{208, newJob, result{value: session.Job{Number: 4, Data: mustJSON(`[4, "shard-00004.tar", true]`)}}, 0},
		{42, complete, result{err: session.ErrNoJobHeld}, 0},
		{44, complete, result{err: session.ErrWorkerGone}, 0},
		{48, complete, result{as: ve}, 0},
		{49, complete, result{as: ve}, 0},
		{51, complete, result{as: ve}, 0},
		{52, complete, result{as: ve}, 0},
		{65, complete, result{}, 0},
		{220, complete, result{as: se}, 4},
		{43, flag, result{err: session.ErrNoJobHeld}, 0},
		{45, flag, result{err: session.ErrWorkerGone}, 0},
		{71, flag, result{}, 0},
		{106, flag, result{as: ve}, 0},
		{111, bye, result{}, 0},
		{127, bye, result{err: session.ErrWorkerGone}, 0},
	}
	for _, tt := range tests {
		s, ok := steps[tt.seq]
		if !ok {
			t.Fatalf("step %d not in testdata", tt.seq)
		}
		t.Run(s.Step, func(t *testing.T) {
			t.Parallel()
			url, hits := replay(t, s)
			c, logs := newConn(t, url, nil)
			got, err := tt.call(context.Background(), c)
			wantHits := tt.wantHits
			if wantHits == 0 {
				wantHits = 1
			}
			if h := hits(); h != wantHits {
				t.Errorf("attempts = %d, want %d", h, wantHits)
			}
			switch {
			case tt.want.err != nil:
				if !errors.Is(err, tt.want.err) {
					t.Fatalf("err = %v, want %v", err, tt.want.err)
				}
			case tt.want.as == se:
				var target *session.ServerError
				if !errors.As(err, &target) {
					t.Fatalf("err = %v (%T), want *session.ServerError", err, err)
				}
				if target.Status != s.Status {
					t.Errorf("Status = %d, want %d", target.Status, s.Status)
				}
			case tt.want.as == ve:
				var target *session.ValidationError
				if !errors.As(err, &target) {
					t.Fatalf("err = %v (%T), want *session.ValidationError", err, err)
				}
			default:
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				if tt.want.value != nil && got != tt.want.value {
					t.Fatalf("got %#v, want %#v", got, tt.want.value)
				}
			}
			if err != nil {
				if strings.Contains(err.Error(), recordedToken) {
					t.Errorf("err = %q holds the token", err)
				}
				if strings.Contains(logs.String(), recordedToken) {
					t.Errorf("logs hold the token:\n%s", logs)
				}
			}
		})
	}
}

// TestValidationDetail checks that a 422 keeps the recorded detail.
func TestValidationDetail(t *testing.T) {
	steps := loadRecorded(t)
	tests := []struct {
		seq      int
		wantLoc  []any
		wantMsg  string
		wantType string
		wantErr  string
	}{
		{8, []any{"query", "nickname"}, "field required", "value_error.missing", "session: new: rejected (422): query.nickname: field required"},
		{49, []any{"body", "data"}, "none is not an allowed value", "type_error.none.not_allowed", "session: new: rejected (422): body.data: none is not an allowed value"},
		{106, []any{}, `null value in column "data_a" of relation "job" violates not-null constraint` + "\nDETAIL:  Failing row contains (2, a, null, null, null, null, null, f, f, null).", "IntegrityError", ""},
	}
	for _, tt := range tests {
		t.Run(steps[tt.seq].Step, func(t *testing.T) {
			url, _ := replay(t, steps[tt.seq])
			c, _ := newConn(t, url, nil)
			_, err := c.Register(context.Background(), "x", "a")
			var ve *session.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if ve.Endpoint != "new" || ve.Body != *steps[tt.seq].Response {
				t.Errorf("Endpoint, Body = %q, %q; want new, the recorded body", ve.Endpoint, ve.Body)
			}
			if len(ve.Detail) == 0 {
				t.Fatalf("Detail empty")
			}
			d := ve.Detail[0]
			if len(d.Loc) != len(tt.wantLoc) || d.Msg != tt.wantMsg || d.Type != tt.wantType {
				t.Errorf("Detail[0] = %+v, want loc %v msg %q type %q", d, tt.wantLoc, tt.wantMsg, tt.wantType)
			}
			for i := range d.Loc {
				if d.Loc[i] != tt.wantLoc[i] {
					t.Errorf("Loc[%d] = %v, want %v", i, d.Loc[i], tt.wantLoc[i])
				}
			}
			if tt.wantErr != "" && err.Error() != tt.wantErr {
				t.Errorf("err = %q, want %q", err, tt.wantErr)
			}
		})
	}
}
