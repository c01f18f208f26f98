package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"testing"

	"github.com/distcompute/distcompute-go/trackertest"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"dcworker": main})
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
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
