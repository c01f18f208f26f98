package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// bigJobSize is the size of the job data BenchmarkClaimBigJob claims: 15 MB,
// under the client's 16 MiB answer limit.
const bigJobSize = 15 << 20

// bigJobAnswer returns a newJob answer whose data is a <!json!> job of about
// size bytes: a list of quoted URLs, so that the wire string carries
// escapes, as real JSON jobs do.
func bigJobAnswer(tb testing.TB, size int) []byte {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`<!json!>[`)
	for i := 0; b.Len() < size-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"s3://bucket/part-00007/image-000000000.jpg"`)
	}
	b.WriteString(`]`)
	body, err := json.Marshal(map[string]any{"data": b.String(), "number": 1})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// bigJobTracker answers every newJob with body; register and the rest
// answer as the tracker does.
func bigJobTracker(tb testing.TB, body []byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/new":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token":"0f1e2d3c-4b5a-4697-8877-665544332211","display_name":"big-job-1","project":"p","stage_name":"CPU"}`))
		case "/api/newJob":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(body))) // as FastAPI does
			w.Write(body)
		default:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("200 OK"))
		}
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkClaimBigJob measures the memory one claim of a 15 MB job costs
// the worker. x-job is the bytes allocated per claim over the job's size (an
// upper bound of what the claim adds to the heap at its peak):
//   - decode: the answer read and decoded by session.Conn.NewJob, the job
//     handed over as a payload (what a worker program gets);
//   - client: the same through client.NewJob and Job, which also journals
//     the claim with its input (a deferred append, committed by the next
//     claim's release record).
func BenchmarkClaimBigJob(b *testing.B) {
	body := bigJobAnswer(b, bigJobSize)
	url := bigJobTracker(b, body)
	ctx := context.Background()
	b.Run("decode", func(b *testing.B) {
		conn, err := session.New(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		measureClaims(b, func() int {
			job, err := conn.NewJob(ctx, "0f1e2d3c-4b5a-4697-8877-665544332211")
			if err != nil {
				b.Fatal(err)
			}
			return len(job.Data.Text())
		})
	})
	b.Run("client", func(b *testing.B) {
		c, err := client.Init(ctx, url, "a", client.WithVerbose(false),
			client.WithJournal(filepath.Join(b.TempDir(), "journal.db")),
			client.WithJournalOptions(&journal.Options{NoSync: true}))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		measureClaims(b, func() int {
			if err := c.NewJob(ctx); err != nil {
				b.Fatal(err)
			}
			return len(c.Job().Text())
		})
	})
}

func measureClaims(b *testing.B, claim func() int) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		n += claim()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n), "x-job")
}
