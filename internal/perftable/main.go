// Command perftable measures the job cycle (claim, one Log, complete) of the
// upstream Python client and of the Go configurations against one dctracker,
// alternated round by round in one run, and prints the table of cycles per
// second, ratios to the upstream client and client CPU per cycle, with the
// targets of issue 15 checked. It is a benchmark harness, not a test: run it
// through scripts/perf-table.sh, which builds dctracker and finds the
// upstream client.
//
// Each configuration runs in a child process (this program with -child, or
// python3 for the upstream client), so that its CPU time is its own: the
// child measures wall time and getrusage (itself and the commands it waited
// for) over the cycles after a warm-up. The tracker's CPU per cycle is read
// from /proc. With -before BIN (this program built against older code), the
// Go configurations also run from BIN, in the same rounds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == flag.ErrHelp {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "perftable:", err)
		os.Exit(1)
	}
}
