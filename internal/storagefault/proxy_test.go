//go:build linux

package storagefault_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/upstreamtest"
	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/trackertest"
)

// pyWorker is a worker program written for the tracker, with the upstream
// Python client unchanged: it completes each job with "done:" + its input
// (as the suite's other workers do) until the stage is empty.
const pyWorker = `
import os, sys
sys.path.insert(0, os.environ["UPSTREAM_CLIENT"])
import distcompute_client as dc
from distcompute_client.errors import ZeroJobError
w = dc.init(os.environ["DISTCOMPUTE_URL"], "a", "py", verbose=False)
while True:
    try:
        w.new_job()
    except ZeroJobError:
        break
    w.log("working")
    w.complete_job("done:" + w.job)
print("pyworker: stage empty", flush=True)
`

// Log messages of dcproxy's journal state (package proxy).
const (
	msgProxyUnwritable = "cannot be written: the programs' calls wait and are tried again; nothing is lost"
	msgNotConfirmed    = "tracker call not confirmed"
)

// journalCause reports a log line whose error is the journal's refusal
// (a full, read-only or failing disk).
func journalCause(line string) bool {
	for _, c := range []string{"not recorded in the journal", "journal is full", "journal stopped", "read-only file system", "no space left on device", "input/output error"} {
		if strings.Contains(line, c) {
			return true
		}
	}
	return false
}

// besideProxy is dcproxy with two copies of pyWorker started beside it
// (not by it), on the tracker srv and the journal jpath.
type besideProxy struct {
	px    *proc
	addr  string // dcproxy's status server
	progs []*proc
}

func startBesideProxy(t *testing.T, srv *trackertest.Server, jpath string) *besideProxy {
	t.Helper()
	python, upstream := upstreamtest.Client(t)
	b := &besideProxy{}
	b.px = start(t, "dcproxy", bins.dcproxy, "--tracker", srv.URL, "--journal", jpath, "--listen", "127.0.0.1:0",
		"--status-addr", "127.0.0.1:0", "--json-log", "--grace", "5s")
	url := "http://" + logAddr(t, b.px, "serving the tracker's protocol") + "/"
	b.addr = statusAddr(t, b.px)
	script := filepath.Join(t.TempDir(), "pyworker.py")
	if err := os.WriteFile(script, []byte(pyWorker), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		b.progs = append(b.progs, startEnv(t, fmt.Sprintf("pyworker %d", i+1), []string{"DISTCOMPUTE_URL=" + url, "UPSTREAM_CLIENT=" + upstream}, python, script))
	}
	return b
}

// journalState is the journal's state in dcproxy's /status.
func (b *besideProxy) journalState() (worker.JournalStatus, bool) {
	st, ok := status(b.addr)
	if !ok || st.JournalStatus == nil {
		return worker.JournalStatus{}, false
	}
	return *st.JournalStatus, true
}

// running fails the test if a program or dcproxy has exited.
func (b *besideProxy) running(t *testing.T, while string) {
	t.Helper()
	for _, p := range b.progs {
		if p.exited() {
			t.Fatalf("%s exited (%d) while %s: a call failed instead of waiting", p.name, p.code, while)
		}
	}
	if b.px.exited() {
		t.Fatalf("dcproxy exited (%d) while %s", b.px.code, while)
	}
}

// finish waits for the programs to finish the stage, then stops dcproxy
// (SIGTERM) and checks what it did: every job completed once, no panic,
// the journal sound, spells logged one line each way, and no journal
// refusal taken for the tracker's.
func (b *besideProxy) finish(t *testing.T, srv *trackertest.Server, jpath string, pad int) (spells int) {
	t.Helper()
	for _, p := range b.progs {
		waitExit(t, p, 120*time.Second, 0)
	}
	if err := b.px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, b.px, 60*time.Second, 0)
	checkTracker(t, "dcproxy", srv, pad)
	noPanic(t, b.px)
	verify(t, jpath)
	spells, backs := b.px.log.count(msgProxyUnwritable), b.px.log.count(msgWritable)
	if spells < 1 || spells != backs {
		t.Errorf("dcproxy logged %d %q lines and %d %q lines; want as many of each, at least one", spells, msgProxyUnwritable, backs, msgWritable)
	}
	// A journal refusal is said by the spell's lines, not as the tracker's
	// failure. (A slow answer from the tracker, on a loaded machine, is a
	// tracker call not confirmed indeed: shown, not failed.)
	for _, l := range strings.Split(b.px.log.String(), "\n") {
		if !strings.Contains(l, msgNotConfirmed) {
			continue
		}
		if journalCause(l) {
			t.Errorf("dcproxy took a journal refusal for the tracker's: %s", l)
		} else {
			t.Logf("dcproxy: %s", l)
		}
	}
	return spells
}

// TestProxyFullDisk fills the disk of dcproxy's journal while two copies
// of a Python worker (the upstream client, unchanged, started beside
// dcproxy) work through fullJobs jobs, keeps it full while dcproxy tries
// again, then gives the space back. The programs never see an error: their
// calls wait while the journal refuses them, as on an unreachable tracker,
// and carry on once it takes writes again; every job is completed exactly
// once with the right output. dcproxy says so in one line when the journal
// becomes unwritable and one when it is writable again (not a warning about
// the tracker per attempt), and /status shows it meanwhile.
func TestProxyFullDisk(t *testing.T) {
	requireRoot(t)
	upstreamtest.Client(t)
	build(t)
	t.Parallel()
	began := time.Now()
	dir := mountTmpfs(t, dcFullSize)
	jpath := filepath.Join(dir, "proxy.db")
	srv := startTracker(t, fullJobs, fullPad)
	b := startBesideProxy(t, srv, jpath)

	var js worker.JournalStatus
	waitFor(t, 90*time.Second, "dcproxy's journal to be unwritable with the disk full", func() bool {
		b.running(t, "the disk filled")
		var ok bool
		js, ok = b.journalState()
		return ok && !js.Writable
	})
	doneBefore := closedCount(srv)
	if doneBefore >= fullJobs {
		t.Fatalf("the disk filled after the work was done (%d of %d jobs): make %s smaller", doneBefore, fullJobs, dcFullSize)
	}
	if js.Error == "" || js.Since == nil {
		t.Errorf("/status: journal_writable false without journal_error and journal_unwritable_since: %+v", js)
	}
	if v, ok := metric(b.addr, "dcproxy_journal_writable"); !ok || (v != 0 && !b.px.log.wroteWritable()) {
		t.Errorf("/metrics: dcproxy_journal_writable = %v (present: %v) during the first spell, want 0", v, ok)
	}

	// Full for a while: nothing reaches the tracker between two of
	// dcproxy's attempts (a completion is sent only once its record is on
	// disk), checked over a window in which the spell did not end; the
	// programs wait.
	nextAttempt := func(after int64) worker.JournalStatus {
		var s worker.JournalStatus
		waitFor(t, 60*time.Second, "dcproxy's next journal write attempt", func() bool {
			b.running(t, "the disk was full")
			var ok bool
			s, ok = b.journalState()
			return ok && s.Failures > after
		})
		return s
	}
	clean := false
	for try := 0; try < 4 && !clean; try++ {
		s1 := nextAttempt(js.Failures)
		c1, w1 := closedCount(srv), b.px.log.count(msgWritable)
		s2 := nextAttempt(s1.Failures)
		c2, w2 := closedCount(srv), b.px.log.count(msgWritable)
		js = s2
		if s1.Writable || s2.Writable || w1 != w2 {
			continue // the spell ended in between (a nearly full disk took a write)
		}
		clean = true
		if c2 != c1 {
			t.Errorf("%d jobs were completed at the tracker while dcproxy's journal could not be written", c2-c1)
		}
	}
	if !clean {
		t.Fatalf("the disk stayed full, yet dcproxy's spells kept ending: %+v", js)
	}
	spell := time.Since(*js.Since)
	// No spinning: each waiting call within dcproxy's schedule (0.1-0.3 s
	// doubling up to 5-15 s), two programs, plus one attempt each begun
	// before the spell.
	if max := 2*(allowed(spell, 100*time.Millisecond, 5*time.Second)+1) + 2; int(js.Failures) > max {
		t.Errorf("dcproxy made %d journal write attempts in %s; its schedule allows %d", js.Failures, spell, max)
	}

	// Space again: the programs carry on by themselves and finish.
	remount(t, dir, "size="+bigSize)
	recovered := time.Now()
	spells := b.finish(t, srv, jpath, fullPad)
	if spells > 3 {
		t.Errorf("dcproxy logged %d spells; a nearly full disk may take a write and refuse the next, but not a spell per attempt", spells)
	}
	figures(t, "jobs=%d, 2 Python programs (upstream client) beside dcproxy; disk full after %d jobs; %d journal write attempts in %s of the spell (%.1f/min); %d spells; finished %s after the remount; wall %s",
		fullJobs, doneBefore, js.Failures, spell.Round(time.Millisecond), perMinute(int(js.Failures), spell), spells,
		time.Since(recovered).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestProxyReadOnlyDisk turns the file system of dcproxy's journal
// read-only (an ext4 error, errors=remount-ro: see TestReadOnlyDisk) while
// two upstream Python clients work beside it. dcproxy stops its journal,
// lets go of the file (so that the operator can unmount the disk), and the
// programs' calls wait; once the disk is checked and mounted again, dcproxy
// reopens the journal by its path and the programs finish, every job
// completed once, without having seen an error.
func TestProxyReadOnlyDisk(t *testing.T) {
	requireRoot(t)
	upstreamtest.Client(t)
	build(t)
	t.Parallel()
	began := time.Now()
	disk := newExt4Disk(t)
	jdir := filepath.Join(disk.dir, "state")
	if err := os.Mkdir(jdir, 0o700); err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(jdir, "proxy.db")
	srv := startTracker(t, roJobs, roPad)
	b := startBesideProxy(t, srv, jpath)

	waitFor(t, 60*time.Second, "a third of the jobs done", func() bool { return closedCount(srv) >= roJobs/3 || b.px.exited() })
	doneBefore := closedCount(srv)
	if doneBefore >= roJobs {
		t.Fatalf("the work was done before the disk failed")
	}
	disk.fail(t)
	failedAt := time.Now()
	waitFor(t, 60*time.Second, "dcproxy to report its journal read-only", func() bool {
		js, ok := b.journalState()
		return ok && !js.Writable && strings.Contains(js.Error, "read-only file system")
	})
	disk.unmountWhenFree(t, "dcproxy")
	closedAway := closedCount(srv)
	js, _ := b.journalState()
	if js.Writable {
		t.Fatalf("dcproxy says its journal is writable with the disk unmounted")
	}
	b.running(t, "the disk was read-only")
	disk.check(t)
	if n := closedCount(srv); n != closedAway {
		t.Errorf("%d jobs were completed at the tracker while dcproxy's journal was away", n-closedAway)
	}
	disk.mount(t)
	remounted := time.Now()

	if spells := b.finish(t, srv, jpath, roPad); spells != 1 {
		t.Errorf("dcproxy logged %d spells, want one", spells)
	}
	figures(t, "jobs=%d, 2 Python programs beside dcproxy; disk read-only after %d; away %s, %d journal write attempts; finished %s after the remount; wall %s",
		roJobs, doneBefore, remounted.Sub(failedAt).Round(time.Millisecond), js.Failures,
		time.Since(remounted).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestProxyJournalDeadline keeps the disk of dcproxy's journal full past
// --journal-deadline while dcproxy runs two copies of a Python worker (the
// upstream client) itself: it drains, stops the programs and exits 4,
// saying so. Started again on the same journal while the disk is still
// full, it waits for space instead of exiting; once there is space it
// starts, runs the programs again and finishes the stage: every job
// completed exactly once.
func TestProxyJournalDeadline(t *testing.T) {
	requireRoot(t)
	python, upstream := upstreamtest.Client(t)
	build(t)
	t.Parallel()
	began := time.Now()
	dir := mountTmpfs(t, dcFullSize)
	jpath := filepath.Join(dir, "proxy.db")
	srv := startTracker(t, fullJobs, fullPad)
	script := filepath.Join(t.TempDir(), "pyworker.py")
	if err := os.WriteFile(script, []byte(pyWorker), 0o600); err != nil {
		t.Fatal(err)
	}
	const deadline = 2 * time.Second
	args := func(deadline time.Duration) []string {
		return []string{bins.dcproxy, "--tracker", srv.URL, "--journal", jpath, "--listen", "127.0.0.1:0",
			"--status-addr", "127.0.0.1:0", "--json-log", "--grace", "5s", "--procs", "2", "--journal-deadline", deadline.String(),
			"--", python, script}
	}
	env := []string{"UPSTREAM_CLIENT=" + upstream}

	px := startEnv(t, "dcproxy", env, args(deadline)...)
	waitExit(t, px, 120*time.Second, 4)
	doneBefore := closedCount(srv)
	if doneBefore >= fullJobs {
		t.Fatalf("the stage was done before the disk filled: make %s smaller", dcFullSize)
	}
	if n := px.log.count("the journal stayed unwritable past the deadline: draining and stopping"); n != 1 {
		t.Errorf("dcproxy logged the deadline %d times, want once", n)
	}
	if !strings.Contains(px.log.String(), "stayed unwritable since") {
		t.Errorf("dcproxy's last words do not say why it stopped")
	}
	noPanic(t, px)

	// Again, still full: it waits (a deadline the test cannot miss).
	px2 := startEnv(t, "dcproxy (again, disk full)", env, args(10*time.Minute)...)
	waitFor(t, 60*time.Second, "the second dcproxy to wait for its journal", func() bool {
		if px2.exited() {
			t.Fatalf("the second dcproxy exited (%d) instead of waiting for space", px2.code)
		}
		return px2.log.count("cannot be written: not starting until it can") > 0
	})
	if n := closedCount(srv); n != doneBefore {
		t.Errorf("%d jobs completed while no dcproxy could write its journal", n-doneBefore)
	}
	remount(t, dir, "size="+bigSize)
	recovered := time.Now()
	waitExit(t, px2, 120*time.Second, 0)
	if px2.log.count("writable again: starting") != 1 {
		t.Errorf("the second dcproxy did not say that it started once the journal was writable")
	}
	checkTracker(t, "dcproxy", srv, fullPad)
	noPanic(t, px2)
	verify(t, jpath)
	figures(t, "jobs=%d, 2 Python programs run by dcproxy; disk full after %d jobs; stopped (exit 4) after the %s deadline; the second dcproxy waited, then finished %s after the remount; wall %s",
		fullJobs, doneBefore, deadline, time.Since(recovered).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
