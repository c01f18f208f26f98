package worker

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunWithoutPidFD: without a pidfd (a kernel before 5.2), the command's
// exit is waited for once its pipes are closed, or, if a descendant holds
// them, found by waitid.
func TestRunWithoutPidFD(t *testing.T) {
	for _, tc := range []struct {
		name, script, stdin, want string
		code                      int
	}{
		{"cat", `cat`, "hello", "hello", 0},
		{"exit code", `echo partial; exit 7`, "", "partial\n", 7},
		{"large stdin", `wc -c | tr -d ' '`, strings.Repeat("x", 1<<20), "1048576\n", 0},
		{"stdin not read", `echo done`, strings.Repeat("y", 1<<20), "done\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := runScript(t, tc.script, func(s *spec) { s.stdin, s.noPidFD = tc.stdin, true })
			if res.err != nil || res.exitCode != tc.code || string(res.output) != tc.want {
				t.Errorf("got code %d out %q err %v; want code %d out %q", res.exitCode, res.output, res.err, tc.code, tc.want)
			}
		})
	}
}

// TestRunDescendantHoldsPipes: a command that exits while a process it
// started keeps its stdout and fd 3 open ends waitDelay later with what it
// wrote, with and without the pidfd.
func TestRunDescendantHoldsPipes(t *testing.T) {
	for _, noPidFD := range []bool{false, true} {
		t.Run("noPidFD="+strconv.FormatBool(noPidFD), func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			res, c := runScript(t, `sleep 30 & echo $! > `+pidFile+`; echo step >&3; echo done`, func(s *spec) {
				s.noPidFD = noPidFD
				s.waitDelay = 200 * time.Millisecond
			})
			if b, err := os.ReadFile(pidFile); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			if !res.ok() || string(res.output) != "done\n" {
				t.Errorf("%s, output %q", res.describe(), res.output)
			}
			if strings.Join(c.progress, ",") != "step" {
				t.Errorf("progress %q, want step", c.progress)
			}
		})
	}
}

// TestRunMediumStdin: input larger than pipeBuf but within a pipe's buffer
// is written before the start by a non-blocking write, the rest (none
// here) by pump.
func TestRunMediumStdin(t *testing.T) {
	in := strings.Repeat("m", 3*pipeBuf+5)
	res, _ := runScript(t, `cat`, func(s *spec) { s.stdin = in })
	if !res.ok() || string(res.output) != in {
		t.Errorf("%s, %d bytes out, want %d", res.describe(), len(res.output), len(in))
	}
}

// TestRunKilledByContextWithoutPidFD: the context's kill ends a command
// that ignores SIGTERM, waited for without the pidfd.
func TestRunKilledByContextWithoutPidFD(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := start(ctx, spec{argv: []string{"/bin/sh", "-c", `trap '' TERM; sleep 30`}, env: os.Environ(), waitDelay: 500 * time.Millisecond, noPidFD: true})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if res := p.wait(); res.signal != syscall.SIGKILL {
		t.Errorf("signal = %v (%s)", res.signal, res.describe())
	}
}
