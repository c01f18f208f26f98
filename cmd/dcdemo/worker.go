package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/internal/term"
	"github.com/distcompute/distcompute-go/internal/worker"
)

// workerCommand is the hidden subcommand that runs the dcworker engine, so
// the demo needs no separate build: it re-executes its own binary.
const workerCommand = "__worker"

// envCrashAfter, set to N in a worker's environment, makes that worker
// SIGKILL itself at its Nth completion, right after the completion is
// journaled and before it is sent (hooks.AfterJournal, "complete").
const envCrashAfter = "DCDEMO_CRASH_AFTER_COMPLETIONS"

// workerMain is `dcdemo __worker ARGS`: `dcworker run ARGS`, plus the crash
// hook. It returns the exit status.
func workerMain(ctx context.Context, sigs <-chan os.Signal, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	var mod func(*worker.Config)
	if v := os.Getenv(envCrashAfter); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "dcdemo worker: bad %s=%q\n", envCrashAfter, v)
			return 2
		}
		var completions atomic.Int64
		mod = func(c *worker.Config) {
			c.Hook = func(p hooks.Point, op string) {
				if p == hooks.AfterJournal && op == "complete" && completions.Add(1) == int64(n) {
					fmt.Fprintf(stderr, "dcdemo worker: completion %d journaled, not sent: SIGKILL now\n", n)
					if self, err := os.FindProcess(os.Getpid()); err == nil {
						_ = self.Kill() // SIGKILL on Unix, TerminateProcess on Windows
					}
					select {} // the signal is on its way
				}
			}
		}
	}
	err := worker.Command(ctx, args, sigs, stdout, stderr, mod)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, worker.ErrUsage), errors.Is(err, worker.ErrConfig):
		fmt.Fprintln(stderr, "dcworker:", term.ErrorLine("dcworker", err))
		return 2
	case errors.Is(err, worker.ErrFailing):
		fmt.Fprintln(stderr, "dcworker:", term.ErrorLine("dcworker", err))
		return 3
	}
	fmt.Fprintln(stderr, "dcworker:", term.ErrorLine("dcworker", err))
	return 1
}
