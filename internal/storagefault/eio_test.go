//go:build linux

package storagefault_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/worker"
)

const (
	eioJobs = 30
	eioPad  = 64
)

// strace returns strace's path, or skips (fails under CI) without it.
func strace(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("strace")
	need(t, err == nil, "strace is not installed (apt-get install strace; .ci/run installs it)")
	return p
}

// straced prefixes argv with strace failing the Nth fdatasync of the file
// at path (and only of that file: -P) with EIO. -qq -o /dev/null: strace
// says nothing of its own, the program's output is unchanged.
func straced(stracePath, path string, n int, argv ...string) []string {
	return stracedTo(stracePath, "/dev/null", path, n, argv...)
}

// stracedTo is straced with strace's trace written to out: each injected
// failure is a line ending "(INJECTED)".
func stracedTo(stracePath, out, path string, n int, argv ...string) []string {
	return append([]string{stracePath, "-f", "-qq", "-o", out, "-P", path,
		"-e", "trace=fdatasync", "-e", fmt.Sprintf("inject=fdatasync:error=EIO:when=%d", n)}, argv...)
}

// TestFsyncEIO fails fdatasyncs of dcworker's journal with EIO, at
// several points of the run: the journal stops, what the failed commit
// carried is held in memory, the journal is reopened (and rewritten) on the
// next attempt, and the run goes on. The points are counted in fdatasync
// calls on the journal file; a job costs a few of them, so the Ns land on
// different records (the journal's creation, registrations, claims,
// completions), and at least one must hit the commit of a completion: the
// log then names an output held in memory. strace counts calls per thread,
// so each thread of the Go runtime that makes N calls fails its Nth: a run
// sees one to a few failures, each its own spell.
func TestFsyncEIO(t *testing.T) {
	requireRoot(t)
	st := strace(t)
	build(t)
	t.Parallel()
	var (
		mu      sync.Mutex
		outputs int // runs whose fault hit a completion
	)
	run := func(t *testing.T, n int) {
		began := time.Now()
		srv := startTracker(t, eioJobs, eioPad)
		dir := t.TempDir()
		jpath, trace := filepath.Join(dir, "journal.db"), filepath.Join(dir, "strace.out")
		dc := start(t, "dcworker", stracedTo(st, trace, jpath, n, dcworkerArgs(srv.URL, jpath, 1)...)...)
		waitExit(t, dc, 120*time.Second, 0)
		checkTracker(t, "dcworker", srv, eioPad)
		noPanic(t, dc)
		verify(t, jpath)
		log := dc.log.String()
		if !strings.Contains(log, "input/output error") {
			t.Fatalf("the injected EIO never reached dcworker's log (the run has fewer than %d fdatasyncs on its journal?)", n)
		}
		// Each spell: one line when it began, one when it ended (at
		// the start, before the slots exist, the lines say "not
		// starting until it can" and "starting"). An EIO on the record
		// of the tracker's answer makes no spell: nothing waits, the
		// next call reopens the journal and resends what is pending.
		down := dc.log.count(msgUnwritable) + dc.log.count(msgNotStarting)
		up := dc.log.count(msgWritable)
		if down != up {
			t.Errorf("dcworker logged %d lines saying its journal cannot be written and %d saying it is writable again; want as many", down, up)
		}
		held := heldLine(log)
		// strace counts per thread: every thread that makes N calls
		// fails its Nth, so a run sees one failure or a few in a row
		// (more on a loaded machine, whose runtime uses more threads).
		// Each failed attempt costs one pause of the schedule; after
		// the last, the next attempt reopens the journal and succeeds.
		tr, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		injected := strings.Count(string(tr), "(INJECTED)")
		spell := downFor(log)
		if max := schedule(injected, worker.JournalRetryMin, worker.JournalRetryMax) + 30*time.Second; spell > max {
			t.Errorf("the journal was unwritable for %s after %d failed fdatasyncs; the schedule allows %s", spell, injected, max)
		}
		if strings.Contains(held, "the output of job") {
			mu.Lock()
			outputs++
			mu.Unlock()
		}
		figures(t, "jobs=%d, EIO at fdatasync #%d of the journal (%d injected), held then: %s; %d spells, the first %s long; wall %s", eioJobs, n, injected, held, down, spell.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	}
	t.Run("points", func(t *testing.T) {
		for _, n := range []int{2, 5, 9, 14, 22} {
			t.Run(fmt.Sprintf("when=%d", n), func(t *testing.T) {
				t.Parallel()
				run(t, n)
			})
		}
	})
	// Which record the Nth fdatasync lands on depends on which threads
	// made the calls before it: when none of the points hit a
	// completion, more points are tried, one at a time, until one does.
	for _, n := range []int{3, 4, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 21} {
		if outputs > 0 || t.Failed() {
			break
		}
		t.Run(fmt.Sprintf("more/when=%d", n), func(t *testing.T) { run(t, n) })
	}
	if outputs == 0 && !t.Failed() {
		t.Errorf("no N of 2 to 22 hit the commit of a completion (no run held an output): the journal's fdatasyncs per job changed?")
	}
}

// schedule is the time k failed attempts wait in all: pauses doubling from
// lo up to hi.
func schedule(k int, lo, hi time.Duration) time.Duration {
	var d time.Duration
	for p := lo; k > 0; k-- {
		d += p
		p = min(2*p, hi)
	}
	return d
}

// heldLine returns the held_in_memory attribute of dcworker's "cannot be
// written" line ("" when it held nothing then), or "-" without such a line.
func heldLine(log string) string {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, msgUnwritable) {
			continue
		}
		if i := strings.Index(line, `"held_in_memory":`); i >= 0 {
			rest := line[i+len(`"held_in_memory":`):]
			if j := strings.Index(rest, "]"); j >= 0 {
				return rest[:j+1]
			}
		}
		return ""
	}
	return "-"
}

// downFor returns the down_for attribute of dcworker's "writable again"
// line (slog's JSON handler writes a duration in nanoseconds).
func downFor(log string) time.Duration {
	for _, line := range strings.Split(log, "\n") {
		var l struct {
			Msg     string `json:"msg"`
			DownFor int64  `json:"down_for"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && strings.Contains(l.Msg, msgWritable) {
			return time.Duration(l.DownFor)
		}
	}
	return 0
}
