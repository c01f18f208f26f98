package trackertest_test

import (
	"fmt"
	"testing"

	"github.com/distcompute/distcompute-go/trackertest"
)

// BenchmarkJobs measures the Jobs view of 1000 jobs (tests poll it while workers run).
func BenchmarkJobs(b *testing.B) {
	jobs := make([]any, 1000)
	for i := range jobs {
		jobs[i] = fmt.Sprint("job-", i)
	}
	tr := trackertest.New(trackertest.Options{Jobs: jobs})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(tr.Jobs()) != 1000 {
			b.Fatal("jobs")
		}
	}
}

// BenchmarkClaimComplete measures one newJob + completeJob cycle over loopback HTTP.
func BenchmarkClaimComplete(b *testing.B) {
	jobs := make([]any, b.N)
	for i := range jobs {
		jobs[i] = fmt.Sprint("job-", i)
	}
	s := trackertest.Start(b, trackertest.Options{Jobs: jobs})
	c := newAPI(b, s)
	tok, _ := c.register("bench", "a")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, st := c.newJob(tok); st != 200 {
			b.Fatalf("newJob: %d", st)
		}
		if st, _ := c.post("/api/completeJob", map[string]string{"token": tok, "data": "out"}); st != 200 {
			b.Fatalf("completeJob: %d", st)
		}
	}
}
