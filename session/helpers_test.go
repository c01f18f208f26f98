package session_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/session"
)

// testToken is a recognisable token that must never appear in full in an
// error message or a log line.
const testToken = "tok-SECRET-5f1c2a9e-7d7b-4e0b-9a53-1c2d3e4f5a6b"

// Bodies recorded from the upstream tracker.
const (
	bodyOK       = "200 OK"
	bodyNoWorker = "The server could not find this worker. Did the worker time out?"
	bodyNoJobs   = "Either there are no new jobs available, or there was an error whilst finding a job. Keep retrying, as jobs are dynamically created."
	bodyNoJob    = "You do not have an open job."
	bodyNotWork  = "This worker is not currently working on a job."
	bodyISE      = "Internal Server Error"
	bodyRegister = `{"token":"ea25c273-19a1-4c84-a904-7be689284ce3","display_name":"pigs-moralizations-818","project":"Conformance","stage_name":"CPU"}`
	bodyNewJob   = `{"data":"<!json!>{\"shard\": 2, \"url\": \"s3://bucket/shard-00002.tar\"}","number":2}`
	htmlPage     = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
)

// fastRetry is a retry policy for tests: tiny waits, 3 retries.
func fastRetry() *session.RetryPolicy {
	return &session.RetryPolicy{
		InitialInterval: time.Millisecond,
		MaxInterval:     5 * time.Millisecond,
		MaxRetries:      3,
		AttemptTimeout:  5 * time.Second,
		MaxRetryAfter:   2 * time.Second,
	}
}

// logBuffer is a concurrency-safe buffer for a slog text handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newConn returns a Conn for url with the fast retry policy and a debug
// logger writing to the returned buffer. opts, if not nil, is adjusted.
func newConn(t *testing.T, url string, adjust func(*session.Options)) (*session.Conn, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts := &session.Options{
		Retry:  fastRetry(),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if adjust != nil {
		adjust(opts)
	}
	c, err := session.New(url, opts)
	if err != nil {
		t.Fatalf("session.New(%q): %v", url, err)
	}
	return c, logs
}

// server starts an httptest server whose handler gets the 1-based number
// of each request; it returns the server and the request counter.
func server(t *testing.T, h func(n int, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(int(hits.Add(1)), w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// answer writes a plain-text or JSON answer.
func answer(w http.ResponseWriter, status int, body string) {
	ct := "text/plain; charset=utf-8"
	if len(body) > 0 && (body[0] == '{' || body[0] == '[') {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// dropMidAnswer hijacks the connection, writes a status line promising a
// longer body than it sends, and closes the connection.
func dropMidAnswer(t *testing.T, w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		t.Error("response writer cannot hijack")
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\":")
	_ = buf.Flush()
	_ = conn.Close()
}

// endpoint describes one Conn method for tests that run over all of them.
type endpoint struct {
	name   string // endpoint name, as in errors
	path   string
	method string
	okBody string // a valid 200 answer
	call   func(ctx context.Context, c *session.Conn) error
}

// endpoints lists every endpoint with a call using testToken.
func endpoints() []endpoint {
	return []endpoint{
		{"new", "/api/new", http.MethodGet, bodyRegister, func(ctx context.Context, c *session.Conn) error {
			_, err := c.Register(ctx, "alice", "a")
			return err
		}},
		{"jobCount", "/api/jobCount", http.MethodGet, "3", func(ctx context.Context, c *session.Conn) error {
			_, err := c.JobCount(ctx, "a")
			return err
		}},
		{"validateWorker", "/api/validateWorker", http.MethodPost, "True", func(ctx context.Context, c *session.Conn) error {
			_, err := c.IsAlive(ctx, testToken)
			return err
		}},
		{"updateProgress", "/api/updateProgress", http.MethodPost, bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.UpdateProgress(ctx, testToken, "warming up")
		}},
		{"newJob", "/api/newJob", http.MethodPost, bodyNewJob, func(ctx context.Context, c *session.Conn) error {
			_, err := c.NewJob(ctx, testToken)
			return err
		}},
		{"completeJob", "/api/completeJob", http.MethodPost, bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.CompleteJob(ctx, testToken, session.String("out"))
		}},
		{"flagInvalidData", "/api/flagInvalidData", http.MethodPost, bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.FlagInvalidData(ctx, testToken)
		}},
		{"bye", "/api/bye", http.MethodPost, bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.Bye(ctx, testToken)
		}},
	}
}
