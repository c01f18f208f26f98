package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/distcompute/distcompute-go/internal/term"
	"github.com/distcompute/distcompute-go/internal/worker"
)

const usage = `usage: dcworker <command> [arguments]

commands:
  run     run a command as a worker: dcworker run --tracker URL [flags] -- CMD ARGS...
  help    show this help, or a command's: dcworker help run

exit status: 0 done (drained or, with --exit-when-empty, no jobs left);
1 error (including a second stop signal); 2 usage, or the command cannot
start; 3 the command failed --max-failed-runs times in a row (default 10);
4 the journal stayed unwritable (full, read-only or failing disk) for
--journal-deadline (default 10m): the worker drained and stopped.
`

// run dispatches the subcommand.
func run(ctx context.Context, sigs <-chan os.Signal, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return worker.ErrUsage
	}
	switch args[0] {
	case "run":
		return worker.Command(ctx, args[1:], sigs, stdout, stderr, nil)
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] == "run" {
			_, _, err := worker.ParseRunArgs([]string{"-h"}, stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "dcworker: unknown command %q\n%s", args[0], usage)
	return worker.ErrUsage
}

// exitCode maps run's error to the process exit status.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, worker.ErrFailing):
		fmt.Fprintln(stderr, "dcworker:", term.ErrorLine("dcworker", err))
		return 3
	case errors.Is(err, worker.ErrJournalUnwritable):
		fmt.Fprintln(stderr, "dcworker:", term.ErrorLine("dcworker", err))
		return 4
	case errors.Is(err, worker.ErrUsage), errors.Is(err, worker.ErrConfig):
		if errors.Is(err, worker.ErrConfig) {
			fmt.Fprintln(stderr, "dcworker:", term.ErrorLine("dcworker", err))
		}
		return 2
	}
	fmt.Fprintln(stderr, "dcworker:", term.ErrorLine("dcworker", err))
	return 1
}
