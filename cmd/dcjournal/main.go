// Command dcjournal reads a distcompute worker's journal after the worker stopped
// (a crash, a preempted spot instance) and gets its finished work to the tracker.
//
//	dcjournal inspect JOURNAL     what the worker was doing, what is pending, what was lost
//	dcjournal verify JOURNAL      bbolt's check and the journal's invariants
//	dcjournal export JOURNAL      save outputs (orphaned, or all) as files with an index
//	dcjournal replay JOURNAL      run recovery against the tracker, without the worker
//	dcjournal compact JOURNAL     rewrite the file to reclaim space
//
// Run "dcjournal help" or "dcjournal COMMAND --help" for the flags. Exit codes: 0 ok;
// 1 verify found problems, or the command failed; 2 usage error; 3 the journal cannot
// be opened (missing, empty, not a journal, damaged, another format version), or does
// not verify (inspect, compact and replay); 4 the journal is locked by
// a running process; 5 the tracker is unreachable (replay); 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/distcompute/distcompute-go/internal/term"
	"github.com/distcompute/distcompute-go/internal/version"
)

// Exit codes, documented in the package comment and in "dcjournal help".
const (
	exitOK          = 0
	exitFailed      = 1 // verify found problems, or the command failed
	exitUsage       = 2
	exitJournal     = 3 // cannot open: missing, empty, not a journal, damaged, another format version; or does not verify (inspect, compact, replay)
	exitLocked      = 4
	exitTracker     = 5
	exitInterrupted = 130
)

func main() {
	os.Exit(mainExit())
}

// mainExit is main without os.Exit: the tests register it as the "dcjournal"
// command of their scripts.
func mainExit() int {
	if version.Requested(os.Args[1:]) {
		fmt.Fprintln(os.Stdout, version.String("dcjournal"))
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	return report(ctx, err, os.Stderr)
}

// report prints err (one line, no stack) and returns the exit code for it.
func report(ctx context.Context, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	code := exitFailed
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		code = exitInterrupted
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintf(stderr, "dcjournal: %s\n", term.ErrorLine("dcjournal", err))
	}
	return code
}
