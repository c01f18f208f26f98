package session_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/distcompute/distcompute-go/session"
)

// TestUnexpectedAnswers checks that a 200 whose body is not the endpoint's
// answer is a *ServerError, never a panic, and is not retried.
func TestUnexpectedAnswers(t *testing.T) {
	register := func(ctx context.Context, c *session.Conn) error { _, err := c.Register(ctx, "a", "a"); return err }
	jobCount := func(ctx context.Context, c *session.Conn) error { _, err := c.JobCount(ctx, "a"); return err }
	isAlive := func(ctx context.Context, c *session.Conn) error { _, err := c.IsAlive(ctx, testToken); return err }
	newJob := func(ctx context.Context, c *session.Conn) error { _, err := c.NewJob(ctx, testToken); return err }
	complete := func(ctx context.Context, c *session.Conn) error {
		return c.CompleteJob(ctx, testToken, session.String("x"))
	}
	progress := func(ctx context.Context, c *session.Conn) error { return c.UpdateProgress(ctx, testToken, "x") }
	tests := []struct {
		name string
		body string
		call func(context.Context, *session.Conn) error
	}{
		{"register invalid JSON", `{"token":`, register},
		{"register HTML", htmlPage, register},
		{"register empty", ``, register},
		{"register null", `null`, register},
		{"register no token", `{"display_name":"x"}`, register},
		{"register token not a string", `{"token":5}`, register},
		{"register list", `[]`, register},
		{"jobCount text", `three`, jobCount},
		{"jobCount negative", `-1`, jobCount},
		{"jobCount fraction", `3.5`, jobCount},
		{"jobCount empty", ``, jobCount},
		{"jobCount huge", `99999999999999999999999`, jobCount},
		{"isAlive lower case", `true`, isAlive},
		{"isAlive 1", `1`, isAlive},
		{"isAlive empty", ``, isAlive},
		{"isAlive JSON", `"True"`, isAlive},
		{"newJob invalid JSON", `{"data":"x","number":`, newJob},
		{"newJob no number", `{"data":null}`, newJob},
		{"newJob number 0", `{"data":null,"number":0}`, newJob},
		{"newJob number string", `{"data":null,"number":"2"}`, newJob},
		{"newJob number fraction", `{"data":null,"number":2.5}`, newJob},
		{"newJob no data", `{"number":2}`, newJob},
		{"newJob data number", `{"data":5,"number":2}`, newJob},
		{"newJob data object", `{"data":{"a":1},"number":2}`, newJob},
		{"newJob null body", `null`, newJob},
		{"newJob list", `[1,2]`, newJob},
		{"complete wrong text", `OK`, complete},
		{"complete empty", ``, complete},
		{"progress JSON", `{"ok":true}`, progress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, hits := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 200, tt.body) })
			c, _ := newConn(t, srv.URL, nil)
			err := tt.call(context.Background(), c)
			wantServerError(t, err, 200)
			if hits.Load() != 1 {
				t.Errorf("attempts = %d, want 1", hits.Load())
			}
		})
	}
}

// TestNewJobInvalidJSONData checks that job data with the JSON prefix but
// invalid JSON still tells the caller which job it now holds.
func TestNewJobInvalidJSONData(t *testing.T) {
	srv, _ := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		answer(w, 200, `{"data":"<!json!>{broken","number":7}`)
	})
	c, _ := newConn(t, srv.URL, nil)
	job, err := c.NewJob(context.Background(), testToken)
	wantServerError(t, err, 200)
	if !errors.Is(err, session.ErrInvalidPayload) {
		t.Errorf("err = %v, want ErrInvalidPayload", err)
	}
	if job.Number != 7 || job.Data.Kind() != session.KindString || job.Data.Text() != "<!json!>{broken" {
		t.Errorf("job = %+v, want number 7 with the raw data", job)
	}
}
