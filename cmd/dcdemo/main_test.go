package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
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
// with every job closed, one completion resubmitted and nothing lost.
func TestQuickStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out strings.Builder
	t0 := time.Now()
	err := run(ctx, []string{"--timeout", "50s", "--jobs", "12"}, &out, &out)
	t.Logf("demo output (%v):\n%s", time.Since(t0).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{
		"worker A was SIGKILLed",
		"done through both stages (checked):   12",
		"resubmitted from the journal:         1 ",
		"lost:                                 0",
		"result: OK",
		"dcjournal inspect",
		"PENDING",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestUsage(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"--jobs", "1000"}, &out, &out); err == nil {
		t.Error("--jobs 1000 accepted")
	}
	if err := run(context.Background(), []string{"extra"}, &out, &out); err == nil {
		t.Error("a stray argument accepted")
	}
}
