package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
)

// exitError carries the exit code an error maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format+" (see \"dcjournal help\")", args...))
}

var (
	// errHelp: help was asked for and printed; exit 0.
	errHelp = errors.New("help printed")
	// errSilent: the command already said everything on stdout; exit with its code only.
	errSilent = errors.New("already reported")
)

// run runs dcjournal with args (without the program name). Output for people and
// scripts goes to stdout, errors are returned for the caller to print.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	// A damaged file can make bbolt fault on a mapped page or panic on a bad page:
	// report it as a corrupt journal, never as a stack trace.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = withCode(exitJournal, fmt.Errorf("the journal is corrupt (%v); run \"dcjournal verify\" on a copy, and export what can be read", r))
		}
	}()
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return withCode(exitUsage, errors.Join(errSilent, errors.New("no command")))
	}
	env := &cmdEnv{ctx: ctx, stdout: stdout, stderr: stderr}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "inspect":
		return runInspect(env, rest)
	case "verify":
		return runVerify(env, rest)
	case "export":
		return runExport(env, rest)
	case "replay":
		return runReplay(env, rest)
	case "compact":
		return runCompact(env, rest)
	case "report":
		return runReport(env, rest)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, mainUsage)
		return nil
	default:
		return usageErrorf("unknown command %q", cmd)
	}
}

// cmdEnv is what every subcommand gets.
type cmdEnv struct {
	ctx            context.Context
	stdout, stderr io.Writer
}

const mainUsage = `dcjournal reads a distcompute worker's journal after the worker stopped,
and gets its finished work to the tracker.

Usage:
  dcjournal inspect JOURNAL [--timeline] [--job N] [--slot S] [--json] [--show-secrets]
  dcjournal inspect --live http://ADDR      the snapshot of a running dcworker (--status-addr, --status-journal)
  dcjournal verify  JOURNAL
  dcjournal export  JOURNAL (--orphans | --all) --out DIR [--ack]
  dcjournal replay  JOURNAL [--tracker URL] [--release | --resume] [--force]
  dcjournal compact JOURNAL [--force]
  dcjournal report  JOURNAL... [--out report.html]   an HTML timeline of one journal or a fleet

inspect, verify, export and report open the journal read-only and leave its bytes unchanged;
replay, compact and export --ack write to it. None waits more than --lock-wait for a
running worker's lock.

Run "dcjournal COMMAND --help" for a command's flags.

Exit codes:
  0  ok
  1  verify found problems, or the command failed
  2  usage error
  3  the journal cannot be opened: missing, empty, not a journal, damaged, or of another
     format version; or it does not verify (inspect, compact and replay refuse it)
  4  the journal is locked by a running process
  5  the tracker is unreachable (replay)
  130 interrupted
`
