package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/trackertest"
)

// TestDrainDoesNotWaitForHeldPipes: a command that saves its work on
// SIGTERM and exits while a process it started (one that escaped the
// signal: here it ignores SIGTERM; in TestPreemptionNoticeDrains the signal
// once came while the shell was forking it) still holds its stdout open.
// Its output is complete, and it is submitted once the grace period ends:
// the wait for the pipes does not outlast it. Before, dcworker waited 5 s
// after the command's exit, past the drain's last tracker call (grace + 2
// s), and the output stayed in the journal for the next start.
func TestDrainDoesNotWaitForHeldPipes(t *testing.T) {
	srv := startTracker(t, "work")
	dir := t.TempDir()
	sleeper := filepath.Join(dir, "sleeper")
	cfg := config(t, srv.URL, script(t, `trap 'echo "saved on notice"; exit 0' TERM
(trap '' TERM; exec sh -c 'echo $$ > `+sleeper+`; exec sleep 30') &
until [ -s `+sleeper+` ]; do sleep 0.01; done
touch `+dir+`/running
wait`))
	cfg.Grace = time.Second
	sigs := make(chan os.Signal, 2)
	cfg.Signals = sigs
	t.Cleanup(func() {
		if b, err := os.ReadFile(sleeper); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	done := start(t, context.Background(), cfg)
	waitFor(t, 10*time.Second, "the command", func() bool {
		_, err := os.Stat(filepath.Join(dir, "running"))
		return err == nil
	})
	sigs <- syscall.SIGTERM
	if err := waitErr(t, done, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if v := job(t, srv, 1); v.State != trackertest.JobClosed || output(v, "a") != "saved on notice" {
		t.Errorf("job %s with output %q, want closed with %q: the drain waited for the pipes past its grace period", v.State, output(v, "a"), "saved on notice")
	}
}
