package proxy_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/internal/upstreamtest"
	"github.com/distcompute/distcompute-go/trackertest"
)

// TestUpstreamClientConformance runs the unchanged upstream Python client
// through the seed README's worker loop and the error cases around it
// (testdata/conformance.py: all eight calls, the job fields, the exception
// classes and messages), once against trackertest directly and once
// through the proxy, on two trackers seeded alike, and requires the same
// transcript: in contract mode and with the upstream bugs (stage b served
// null, the failing 5th flag), with --ack tracker and --ack journal.
func TestUpstreamClientConformance(t *testing.T) {
	python, dir := upstreamtest.Client(t)
	for _, tc := range []struct {
		name   string
		quirks bool
		ack    proxy.AckMode
	}{
		{"contract", false, proxy.AckTracker},
		{"contract-ack-journal", false, proxy.AckJournal},
		{"quirks", true, proxy.AckTracker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := func() trackertest.Options {
				o := trackertest.Options{Project: "LAION-5B", Stages: map[string]string{"a": "CPU", "b": "GPU"}, Seed: 7,
					Jobs: []any{"s3://shard-1.tar", map[string]any{"url": "s3://shard-2.tar", "n": 2}, []any{"s3://shard-3.tar", 3}}}
				if tc.quirks {
					o.Quirks = true
					o.Jobs = o.Jobs[:1] // one job, so that stage b's five flags fall on it
				}
				return o
			}
			direct := trackertest.Start(t, opts())
			want := runConformance(t, python, dir, direct.URL, tc.quirks)

			behind := trackertest.Start(t, opts())
			rp := startProxy(t, behind.URL, func(c *proxy.Config) { c.Ack = tc.ack })
			got := runConformance(t, python, dir, rp.URL+"/", tc.quirks)
			t.Logf("transcript through the proxy:\n%s", strings.Join(got, "\n"))

			if len(got) != len(want) {
				t.Errorf("through the proxy: %d calls, directly: %d", len(got), len(want))
			}
			for i := 0; i < max(len(got), len(want)); i++ {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Errorf("call %d:\n through the proxy: %s\n directly:          %s", i+1, g, w)
				}
			}
			for _, must := range []string{`["new_job on an empty stage", "ZeroJobError"`, `["new_job after bye", "WorkerTimedOutError"`,
				`["init GPU", "ValueError"`, `["complete without a job", "ZeroJobError"`, `["log 256 characters", "WorkerTimedOutError"`} {
				if !strings.Contains(strings.Join(want, "\n"), must) {
					t.Errorf("the transcript lacks %s...: the script did not exercise what it should", must)
				}
			}
			if tc.quirks && !strings.Contains(strings.Join(got, "\n"), `["flag b 5", "ServerError"`) {
				t.Errorf("quirks: the 5th flag at stage b did not raise ServerError through the proxy")
			}
			if behind.Tracker.JobCounts()[trackertest.JobHeld] != 0 {
				t.Errorf("a job is left held behind the proxy: %v", behind.Tracker.JobCounts())
			}
		})
	}
}

func runConformance(t *testing.T, python, dir, url string, quirks bool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q := "0"
	if quirks {
		q = "1"
	}
	cmd := exec.CommandContext(ctx, python, "testdata/conformance.py", dir, url, q)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("conformance.py against %s: %v\n%s\n%s", url, err, out, stderr)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}
