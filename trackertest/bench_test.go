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
