// Command dctracker serves an in-memory distcompute tracker (package trackertest) that
// answers like the upstream Python tracker: for tests, local development and the quick start.
//
//	dctracker --addr 127.0.0.1:8080 --project NAME --stages CPU,GPU --brace 'shard-{00..99}.tar'
//
// Jobs come from --json FILE (a list of strings, lists and objects), --txt FILE (one job per
// line, blank lines skipped) or --brace PATTERN (bash-style brace expansion). The first line
// on stdout is the tracker's URL (with the real port when --addr asks for port 0); each
// request is logged on stderr. SIGINT or SIGTERM stops it cleanly.
//
// Exit codes: 0 stopped by a signal; 1 failure (unreadable jobs file, address in use...);
// 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/distcompute/distcompute-go/internal/version"
)

func main() {
	if version.Requested(os.Args[1:]) {
		fmt.Println(version.String("dctracker"))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// exitCode prints err on one line and returns the exit code it maps to.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, new(*usageError)):
		fmt.Fprintf(stderr, "dctracker: %v (see dctracker -h)\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "dctracker: %v\n", err)
		return exitFailed
	}
}
