package session_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/session"
)

// An answer that echoes the token (here jobCount's, which carries no
// token) never puts it in an error: the Conn redacts every token it saw.
func TestErrorRedactsTokensSeen(t *testing.T) {
	const tok = "ea25c273-19a1-4c84-a904-7be689284ce3"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/new":
			io.WriteString(w, bodyRegister)
		case "/api/jobCount":
			io.WriteString(w, "not a count; your token is "+tok+` (or "`+tok+`")`)
		}
	}))
	defer srv.Close()
	c, err := session.New(srv.URL, &session.Options{Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(context.Background(), "n", "a"); err != nil {
		t.Fatal(err)
	}
	_, err = c.JobCount(context.Background(), "a")
	var se *session.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("JobCount: %v, want a *ServerError", err)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(se.Body, tok) {
		t.Fatalf("the error quotes the token: %v", err)
	}
	if !strings.Contains(err.Error(), session.Redact(tok)) {
		t.Errorf("the error lacks the redacted token: %v", err)
	}
}

// zeros streams n bytes of a JSON string's content.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	for i := range p[:k] {
		p[i] = '0'
	}
	z.n -= k
	return int(k), nil
}

// A newJob answer over the size limit is a *ServerError wrapping
// ErrResponseTooLarge with the number of the job the tracker assigned,
// found after the data; an answer of a gigabyte is streamed, not held: the
// claim allocates at most the limit (16 MiB) and a little more, whatever
// the answer's size (an answer announced too long: almost nothing).
func TestNewJobOverLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int64
		chunked bool
		want    int // job number found
	}{
		{"17 MiB", 17 << 20, false, 7},
		{"17 MiB chunked", 17 << 20, true, 7},
		{"1 GiB", 1 << 30, false, 0},
		{"1 GiB chunked", 1 << 30, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head, tail := `{"data":"`, `","number":7}`
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tc.chunked {
					w.Header().Set("Content-Length", strconv.FormatInt(int64(len(head))+tc.size+int64(len(tail)), 10))
				}
				io.WriteString(w, head)
				if _, err := io.Copy(w, &zeros{tc.size}); err != nil {
					return // the client hung up: it read what it needed
				}
				io.WriteString(w, tail)
			}))
			defer srv.Close()
			rp := fastRetry()
			rp.AttemptTimeout = time.Minute // reading 32 MiB on a loaded machine under -race
			c, err := session.New(srv.URL, &session.Options{Retry: rp})
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			job, err := c.NewJob(context.Background(), testToken)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, session.ErrResponseTooLarge) {
				t.Fatalf("NewJob: %v, want ErrResponseTooLarge", err)
			}
			if job.Number != tc.want {
				t.Errorf("job number %d, want %d", job.Number, tc.want)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s answer: %d MiB allocated", tc.name, alloc>>20)
			if bound := uint64(session.DefaultMaxResponseBytes + 8<<20); alloc > bound {
				t.Errorf("the claim allocated %d MiB, over %d MiB", alloc>>20, bound>>20)
			}
		})
	}
}
