// Command dcworker runs any program as a distcompute worker: the job's input
// on stdin, its output on stdout, journaled so that a crash, a preemption or
// a lost network loses nothing. See `dcworker run -h`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/distcompute/distcompute-go/internal/version"
)

func main() {
	if version.Requested(os.Args[1:]) {
		fmt.Println(version.String("dcworker"))
		return
	}
	// Stop signals go to the engine on a channel rather than as a context
	// cancellation, because it tells the first (drain: pass the signal on,
	// wait the grace period) from the second (stop at once).
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	// Under the Windows service manager, Stop and Shutdown arrive as SIGTERM.
	stopped, service := asService(sigs)
	err := run(context.Background(), sigs, os.Args[1:], os.Stdout, os.Stderr)
	code := exitCode(err, os.Stderr)
	if service {
		stopped(code)
	}
	os.Exit(code)
}
