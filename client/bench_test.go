package client_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// The job-cycle benchmarks run side by side on one loopback tracker: claim,
// 10 × progress, complete. BenchmarkJobCycleJournal goes through the client
// (durable journal, fsync on, Log asynchronous); BenchmarkJobCycleSessionOnly
// through session.Conn alone (no journal, each progress a request). Count
// the fsyncs per cycle with scripts/syncs-per-cycle.sh.

func benchTracker(b *testing.B) *trackertest.Server {
	b.Helper()
	return trackertest.Start(b, trackertest.Options{Seed: 1})
}

func addJobs(b *testing.B, srv *trackertest.Server, n int) {
	b.Helper()
	jobs := make([]any, n)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("job input %d", i)
	}
	srv.Tracker.AddJobs(jobs...)
}

func BenchmarkJobCycleJournal(b *testing.B) { benchJobCycle(b, nil) }

// BenchmarkJobCycleJournalNoSync is the same cycle with fsync off, to tell
// the disk's share of the journal's cost from the rest.
func BenchmarkJobCycleJournalNoSync(b *testing.B) {
	benchJobCycle(b, &journal.Options{NoSync: true})
}

func benchJobCycle(b *testing.B, jo *journal.Options) {
	srv := benchTracker(b)
	ctx := context.Background()
	c, err := client.Init(ctx, srv.URL, "a", client.WithVerbose(false), client.WithJournalOptions(jo),
		client.WithJournal(filepath.Join(b.TempDir(), "journal.db")))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	addJobs(b, srv, b.N)
	before := c.Journal().Stats()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.NewJob(ctx); err != nil {
			b.Fatal(err)
		}
		for k := 0; k < 10; k++ {
			c.Log("analysed images")
		}
		if err := c.CompleteJob(ctx, "output"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Journal commits per cycle, counted by the journal itself; a bbolt
	// commit costs two fdatasync calls (new pages, then the meta page).
	// scripts/syncs-per-cycle.sh counts the system calls with strace.
	after := c.Journal().Stats()
	n := float64(b.N)
	b.ReportMetric(float64(after.Commits-before.Commits)/n, "commits/cycle")
	b.ReportMetric(2*float64(after.SyncedCommits-before.SyncedCommits)/n, "fdatasync/cycle")
	b.ReportMetric(float64(after.Appends-before.Appends)/n, "events/cycle")
}

func BenchmarkJobCycleSessionOnly(b *testing.B) {
	srv := benchTracker(b)
	ctx := context.Background()
	conn, err := session.New(srv.URL, nil)
	if err != nil {
		b.Fatal(err)
	}
	reg, err := conn.Register(ctx, "bench", "a")
	if err != nil {
		b.Fatal(err)
	}
	addJobs(b, srv, b.N)
	out := session.String("output")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conn.NewJob(ctx, reg.Token); err != nil {
			b.Fatal(err)
		}
		for k := 0; k < 10; k++ {
			if err := conn.UpdateProgress(ctx, reg.Token, "analysed images"); err != nil {
				b.Fatal(err)
			}
		}
		if err := conn.CompleteJob(ctx, reg.Token, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogUnreachable measures Log with the tracker gone: it reports
// the median and 99th percentile of single calls besides the mean.
func BenchmarkLogUnreachable(b *testing.B) {
	srv := benchTracker(b)
	ctx := context.Background()
	c, err := client.Init(ctx, srv.URL, "a", client.WithVerbose(false),
		client.WithJournal(filepath.Join(b.TempDir(), "journal.db")))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	srv.Close()
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c.Log("analysed 12 / 100 images")
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "median-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkJobCycleOneLogNoSync is the cycle scripts/perf-table.sh times
// (claim, one Log, complete) with the journal's NoSync, for allocation and
// CPU profiles of the client's own work (-benchmem, -memprofile); the
// loopback tracker runs in the same process, so its share is in them too.
func BenchmarkJobCycleOneLogNoSync(b *testing.B) {
	srv := benchTracker(b)
	ctx := context.Background()
	c, err := client.Init(ctx, srv.URL, "a", client.WithVerbose(false),
		client.WithJournalOptions(&journal.Options{NoSync: true}),
		client.WithJournal(filepath.Join(b.TempDir(), "journal.db")))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	addJobs(b, srv, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.NewJob(ctx); err != nil {
			b.Fatal(err)
		}
		c.Log("step 1 of 1")
		if err := c.CompleteJob(ctx, "output"); err != nil {
			b.Fatal(err)
		}
	}
}
