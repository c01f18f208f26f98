// Command dcdemo is the quick start: `go run ./cmd/dcdemo` runs the whole
// story on this machine with no setup. It starts a tracker in the process,
// worker processes running a real shell command, SIGKILLs one of them in the
// middle of a completion (after the output is journaled, before it is
// sent), restarts it on its journal, and shows that nothing was lost.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/distcompute/distcompute-go/internal/term"
	"github.com/distcompute/distcompute-go/internal/version"
)

func main() {
	if version.Requested(os.Args[1:]) {
		fmt.Println(version.String("dcdemo"))
		return
	}
	if len(os.Args) > 1 && os.Args[1] == workerCommand {
		// The hidden worker mode: dcworker's engine, re-executed by the demo.
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		os.Exit(workerMain(context.Background(), sigs, os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "dcdemo:", term.ErrorLine("dcdemo", err))
	os.Exit(1)
}
