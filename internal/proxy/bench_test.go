package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/internal/upstreamtest"
	"github.com/distcompute/distcompute-go/trackertest"
)

// BenchmarkUpstreamCycle measures the unchanged upstream client's README
// job cycle (is_alive, job_count, new_job, log, complete_job) against
// trackertest directly and through the proxy, in alternating rounds of one
// run, and reports the time per cycle of each and their ratio (the issue's
// target: at most 1.5). Sub-benchmarks: the program started beside the
// proxy (its URL given to it, as the chaos test runs it) or run by the
// proxy (Config.Command, as "dcproxy -- python3 worker.py"; a new proxy on
// the same journal each round), each with --ack tracker and --ack journal.
// The journal is in the test's temporary directory, which must be on a
// real disk: set TMPDIR if /tmp is a tmpfs. The Python start-up is not
// timed (testdata/cycles.py times its loop).
//
//	go test ./internal/proxy -run '^$' -bench UpstreamCycle -benchtime 600x
func BenchmarkUpstreamCycle(b *testing.B) {
	for _, run := range []string{"beside", "run-by-proxy"} {
		for _, ack := range []proxy.AckMode{proxy.AckTracker, proxy.AckJournal} {
			b.Run(run+"/ack="+string(ack), func(b *testing.B) { benchCycle(b, ack, run == "run-by-proxy") })
		}
	}
}

func benchCycle(b *testing.B, ack proxy.AckMode, command bool) {
	python, upstream := upstreamtest.Client(b)
	const rounds = 10
	per := max(1, b.N/rounds)
	jobs := make([]any, 2*rounds*per+10)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("shard-%06d.tar", i)
	}
	direct := trackertest.Start(b, trackertest.Options{Jobs: jobs, Seed: 1})
	behind := trackertest.Start(b, trackertest.Options{Jobs: jobs, Seed: 1})
	cycles := func(url string) []string {
		return []string{python, "testdata/cycles.py", upstream, url, strconv.Itoa(per)}
	}
	parse := func(out []byte) time.Duration {
		f := strings.Fields(string(out))
		if len(f) != 2 {
			b.Fatalf("cycles.py printed %q", out)
		}
		n, _ := strconv.Atoi(f[0])
		secs, _ := strconv.ParseFloat(f[1], 64)
		if n != per {
			b.Fatalf("cycles.py: %d cycles, want %d", n, per)
		}
		return time.Duration(secs / float64(n) * float64(time.Second))
	}
	runDirect := func() time.Duration {
		argv := cycles(direct.URL)
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			b.Fatalf("cycles.py: %v\n%s", err, out)
		}
		return parse(out)
	}
	var runProxy func() time.Duration
	if command {
		jpath := filepath.Join(b.TempDir(), "proxy.db")
		runProxy = func() time.Duration {
			var out bytes.Buffer
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			cfg := proxy.Config{TrackerURL: behind.URL, Journal: jpath, Ack: ack, Command: cycles("env"),
				Restart: proxy.RestartNever, Stdout: &out, Logger: slog.New(slog.DiscardHandler)}
			if err := proxy.Run(context.Background(), cfg, ln); err != nil {
				b.Fatalf("proxy: %v", err)
			}
			return parse(out.Bytes())
		}
		defer verifyJournal(b, jpath)
		b.Logf("journal on %s (%s)", filepath.Dir(jpath), fsType(filepath.Dir(jpath)))
	} else {
		rp := startProxy(b, behind.URL, func(c *proxy.Config) { c.Ack = ack })
		b.Logf("journal on %s (%s)", filepath.Dir(rp.Journal), fsType(filepath.Dir(rp.Journal)))
		runProxy = func() time.Duration {
			argv := cycles(rp.URL)
			out, err := exec.Command(argv[0], argv[1:]...).Output()
			if err != nil {
				b.Fatalf("cycles.py: %v\n%s", err, out)
			}
			return parse(out)
		}
	}
	b.ResetTimer()
	var d, p []time.Duration
	for r := 0; r < rounds; r++ {
		d = append(d, runDirect())
		p = append(p, runProxy())
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
