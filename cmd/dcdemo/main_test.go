package main

import (
	"context"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/browsertest"
)

// TestMain lets the test binary serve as the demo's worker processes: the
// demo re-executes its own binary (here, this test binary) with the hidden
// worker subcommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerCommand {
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		os.Exit(workerMain(context.Background(), sigs, os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestQuickStart runs the whole demo: it must end by itself, successfully,
// with every job closed, the killed worker's unsent completion resubmitted
// and nothing lost.
func TestQuickStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out strings.Builder
	t0 := time.Now()
	t.Setenv("TMPDIR", t.TempDir()) // --keep keeps the demo's directory there
	err := run(ctx, []string{"--timeout", "50s", "--jobs", "12", "--keep"}, &out, &out)
	t.Logf("demo output (%v):\n%s", time.Since(t0).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{
		"worker A was SIGKILLed",
		"done through both stages (checked):   12",
		"lost:                                 0",
		"result: OK",
		"dcjournal inspect",
		"PENDING",
		"Next steps",
		"report.html in a browser",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The kill comes after a completion is journaled and before it is sent:
	// at least that one is resubmitted (the other slot may have journaled
	// one in the same instant).
	if !regexp.MustCompile(`resubmitted from the journal: +[1-9][0-9]* `).MatchString(out.String()) {
		t.Errorf("output does not show a completion resubmitted from the journal")
	}
	// Every path the demo printed exists: it kept them.
	for _, p := range regexp.MustCompile(`/[^\s:']*dcdemo-[^\s:']*`).FindAllString(out.String(), -1) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the demo points at %s: %v", p, err)
		}
	}
	m := regexp.MustCompile(`open (\S+report\.html) in a browser`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatal("no report path in the output")
	}
	t.Run("report in browser", func(t *testing.T) { demoReportInBrowser(t, m[1]) })
}

// demoReportInBrowser opens the demo's report in headless Chromium: two journals,
// four lanes, the killed worker's recovery marked and its dead gap shaded, worker
// B's drain recorded; hovering a bar shows its events.
func demoReportInBrowser(t *testing.T, page string) {
	tab := browsertest.Start(t, 2*time.Minute)
	browsertest.Open(t, tab, "file://"+page)
	if n := browsertest.Eval[int](t, tab, `document.querySelectorAll("rect.lane").length`); n != 4 {
		t.Errorf("%d lanes, want 4 (two slots per worker)", n)
	}
	if n := browsertest.Eval[int](t, tab, `document.querySelectorAll(".bar").length`); n < 24 {
		t.Errorf("%d bars, want at least 24 (12 jobs through two stages)", n)
	}
	for what, sel := range map[string]string{"recovery mark": ".mark.recovery", "dead gap": "rect.gap"} {
		if n := browsertest.Eval[int](t, tab, `document.querySelectorAll("`+sel+`").length`); n < 1 {
			t.Errorf("no %s drawn", what)
		}
	}
	if txt := browsertest.Eval[string](t, tab, `document.body.innerText`); !strings.Contains(txt, "drained (SIGTERM)") {
		t.Errorf("the page does not say worker B drained on SIGTERM")
	}
	browsertest.Hover(t, tab, ".bar")
	browsertest.WaitFor(t, tab, `document.getElementById("tip").style.display === "block"`)
	if tip := browsertest.Eval[string](t, tab, `document.getElementById("tip").innerText`); !strings.Contains(tip, "claimed") {
		t.Errorf("hovering a bar shows %q, want its claimed event", tip)
	}
	browsertest.Screenshot(t, tab, os.Getenv("DCTEST_SCREENSHOTS"), "report-dcdemo.png")
}

func TestUsage(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"--jobs", "1000"}, &out, &out); err == nil {
		t.Error("--jobs 1000 accepted")
	}
	out.Reset()
	if err := run(context.Background(), []string{"--jobs", "3"}, &out, &out); err == nil || !strings.Contains(out.String(), "--jobs 3: give 4 to 24") {
		t.Errorf("--jobs 3: %v, %q; want a usage error naming --jobs", err, out.String())
	}
	if err := run(context.Background(), []string{"extra"}, &out, &out); err == nil {
		t.Error("a stray argument accepted")
	}
}
