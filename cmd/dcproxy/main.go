// Command dcproxy gives worker programs written for the distcompute tracker
// (the upstream Python client, unchanged) the journal's guarantees: point
// them at dcproxy instead of the tracker. See `dcproxy -h`.
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
		fmt.Println(version.String("dcproxy"))
		return
	}
	// Stop signals go to the proxy on a channel rather than as a context
	// cancellation: the first drains, the second stops at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	err := run(context.Background(), sigs, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}
