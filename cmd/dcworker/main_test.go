package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"testing"

	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/trackertest"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"dcworker": main, "expectexit": expectexitMain})
}

// TestScripts runs testdata/script/*.txtar against the real command. Each
// script gets a tracker on loopback ($TRACKER) with three jobs: a string,
// a JSON list and a JSON object; `jobs` prints their states and outputs.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			tr := trackertest.New(trackertest.Options{
				Stages: map[string]string{"a": "CPU"},
				Jobs:   []any{"hello brave new world", []any{"x", "y"}, map[string]any{"k": "v"}},
				Logger: slog.New(slog.DiscardHandler),
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = trackertest.Serve(ctx, ln, tr) }()
			env.Defer(func() { cancel(); <-done })
			env.Setenv("TRACKER", "http://"+ln.Addr().String())
			env.Values["tracker"] = tr
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// events JOURNAL: one line per event: slot, kind, job, reason.
			"events": func(ts *testscript.TestScript, neg bool, args []string) {
				db, err := journal.Open(ts.MkAbs(args[0]), &journal.Options{ReadOnly: true})
				ts.Check(err)
				defer db.Close()
				ts.Check(db.Events(journal.Filter{}, func(e journal.Event) error {
					fmt.Fprintf(ts.Stdout(), "%s %s %d %s\n", e.Slot, e.Kind, e.Job, e.Reason)
					return nil
				}))
			},
			"jobs": func(ts *testscript.TestScript, neg bool, args []string) {
				tr := ts.Value("tracker").(*trackertest.Tracker)
				views := tr.Jobs()
				sort.Slice(views, func(i, j int) bool { return views[i].Number < views[j].Number })
				for _, v := range views {
					out := "-"
					if p := v.Outputs["a"]; p != nil {
						out = *p
					}
					fmt.Fprintf(ts.Stdout(), "job %d %s %s\n", v.Number, v.State, out)
				}
			},
		},
	})
}

// expectexitMain: expectexit N dcworker ARGS... runs dcworker and fails unless it
// exits with N.
func expectexitMain() {
	if len(os.Args) < 3 || os.Args[2] != "dcworker" {
		fmt.Fprintln(os.Stderr, "usage: expectexit N dcworker ARGS...")
		os.Exit(2)
	}
	want, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "expectexit:", err)
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	got := exitCode(run(context.Background(), sigs, os.Args[3:], os.Stdout, os.Stderr), os.Stderr)
	if got != want {
		fmt.Fprintf(os.Stderr, "expectexit: dcworker exited with %d, want %d\n", got, want)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 2},
		{[]string{"bogus"}, 2},
		{[]string{"help"}, 0},
		{[]string{"run"}, 2},
		{[]string{"run", "--tracker", "http://127.0.0.1:1"}, 2},
		{[]string{"run", "-h"}, 0},
	} {
		var out, errb discard
		err := run(context.Background(), nil, tc.args, &out, &errb)
		if got := exitCode(err, &errb); got != tc.want {
			t.Errorf("dcworker %v: exit %d, want %d (err %v)", tc.args, got, tc.want, err)
		}
	}
	if got := exitCode(fmt.Errorf("%w since ...: disk full", worker.ErrJournalUnwritable), discard{}); got != 4 {
		t.Errorf("journal unwritable past the deadline: exit %d, want 4", got)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
