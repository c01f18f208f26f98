package proxy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/trackertest"
)

// BenchmarkUpstreamCycle measures the unchanged upstream client's README
// job cycle (is_alive, job_count, new_job, log, complete_job) against
// trackertest directly and through the proxy (--ack tracker and --ack
// journal, each its own sub-benchmark; journal in
// the test's temporary directory, which must be on a real disk: set TMPDIR
// if /tmp is a tmpfs), in alternating rounds of one run, and reports the
// time per cycle of each and their ratio (the target: at most 1.5).
// The Python start-up is not timed (testdata/cycles.py times its loop).
//
//	go test ./internal/proxy -run '^$' -bench UpstreamCycle -benchtime 600x
func BenchmarkUpstreamCycle(b *testing.B) {
	for _, ack := range []proxy.AckMode{proxy.AckTracker, proxy.AckJournal} {
		b.Run("ack="+string(ack), func(b *testing.B) { benchCycle(b, ack) })
	}
}

func benchCycle(b *testing.B, ack proxy.AckMode) {
	python, upstream := upstreamClient(b)
	const rounds = 10
	per := max(1, b.N/rounds)
	jobs := make([]any, 2*rounds*per+10)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("shard-%06d.tar", i)
	}
	direct := trackertest.Start(b, trackertest.Options{Jobs: jobs, Seed: 1})
	behind := trackertest.Start(b, trackertest.Options{Jobs: jobs, Seed: 1})
	rp := startProxy(b, behind.URL, func(c *proxy.Config) { c.Ack = ack })
	if fs := fsType(filepath.Dir(rp.Journal)); fs != "" {
		b.Logf("journal on %s (%s)", filepath.Dir(rp.Journal), fs)
	}
	run := func(url string) time.Duration {
		out, err := exec.Command(python, "testdata/cycles.py", upstream, url, strconv.Itoa(per)).Output()
		if err != nil {
			b.Fatalf("cycles.py %s: %v\n%s", url, err, out)
		}
		f := strings.Fields(string(out))
		n, _ := strconv.Atoi(f[0])
		secs, _ := strconv.ParseFloat(f[1], 64)
		if n != per {
			b.Fatalf("cycles.py %s: %d cycles, want %d", url, n, per)
		}
		return time.Duration(secs / float64(n) * float64(time.Second))
	}
	b.ResetTimer()
	var d, p []time.Duration
	for r := 0; r < rounds; r++ {
		d = append(d, run(direct.URL))
		p = append(p, run(rp.URL))
	}
	b.StopTimer()
	md, mp := median(d), median(p)
	b.ReportMetric(float64(md.Microseconds())/1000, "direct-ms/cycle")
	b.ReportMetric(float64(mp.Microseconds())/1000, "proxy-ms/cycle")
	// The ratio of each round (direct and proxy back to back) is less
	// sensitive to a machine whose load drifts than the ratio of medians.
	var ratios []time.Duration
	for i := range d {
		ratios = append(ratios, time.Duration(float64(p[i])/float64(d[i])*1000))
	}
	b.ReportMetric(float64(median(ratios))/1000, "ratio")
	b.ReportMetric(float64(time.Second)/float64(md), "direct-cycles/s")
	b.ReportMetric(float64(time.Second)/float64(mp), "proxy-cycles/s")
	b.Logf("%d rounds of %d cycles, alternated; per cycle: direct %v, through dcproxy %v", rounds, per, d, p)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// fsType names the file system holding dir, from /proc/mounts ("" if unknown).
func fsType(dir string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return ""
	}
	best, typ := "", ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(dir, f[1]) && len(f[1]) > len(best) {
			best, typ = f[1], f[2]+" "+f[0]
		}
	}
	return typ
}
