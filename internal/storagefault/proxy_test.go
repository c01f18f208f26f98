//go:build linux

package storagefault_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/worker"
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

// upstreamClient finds the upstream Python client (../shared/upstream
// beside the repository) and a python3 that can run it. Outside CI the
// test skips without them; in CI it fails.
func upstreamClient(t *testing.T) (python, dir string) {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must run the upstream client: %s", why)
		}
		t.Skip(why)
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "upstream", "distcompute-client-1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "distcompute_client", "client.py")); err != nil {
		skip("the upstream Python client is not at " + dir + " (../shared/upstream beside the repository)")
	}
	if python, err = exec.LookPath("python3"); err != nil {
		skip("python3 not found")
	}
	if out, err := exec.Command(python, "-c", "import requests").CombinedOutput(); err != nil {
		skip("python3 cannot import requests (Debian: python3-requests): " + string(out))
	}
	return python, dir
}

// Log messages of dcproxy's journal state (package proxy).
const (
	msgProxyUnwritable = "cannot be written: the programs' calls wait and are tried again; nothing is lost"
	msgNotConfirmed    = "tracker call not confirmed"
)

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
	python, upstream := upstreamClient(t)
	build(t)
	t.Parallel()
	began := time.Now()
	dir := mountTmpfs(t, dcFullSize)
	jpath := filepath.Join(dir, "proxy.db")
	srv := startTracker(t, fullJobs, fullPad)
	px := start(t, "dcproxy", bins.dcproxy, "--tracker", srv.URL, "--journal", jpath, "--listen", "127.0.0.1:0",
		"--status-addr", "127.0.0.1:0", "--json-log", "--grace", "5s")
	url := "http://" + logAddr(t, px, "serving the tracker's protocol") + "/"
	addr := statusAddr(t, px)

	script := filepath.Join(t.TempDir(), "pyworker.py")
	if err := os.WriteFile(script, []byte(pyWorker), 0o600); err != nil {
		t.Fatal(err)
	}
	progs := make([]*proc, 2)
	for i := range progs {
		progs[i] = startEnv(t, fmt.Sprintf("pyworker %d", i+1), []string{"DISTCOMPUTE_URL=" + url, "UPSTREAM_CLIENT=" + upstream}, python, script)
	}
	running := func() {
		t.Helper()
		for _, p := range progs {
			if p.exited() {
				t.Fatalf("%s exited (%d) while the disk was full: a call failed instead of waiting", p.name, p.code)
			}
		}
		if px.exited() {
			t.Fatalf("dcproxy exited (%d)", px.code)
		}
	}
	journalState := func() (worker.JournalStatus, bool) {
		st, ok := status(addr)
		if !ok || st.JournalStatus == nil {
			return worker.JournalStatus{}, false
		}
		return *st.JournalStatus, true
	}

	var js worker.JournalStatus
	waitFor(t, 90*time.Second, "dcproxy's journal to be unwritable with the disk full", func() bool {
		running()
		var ok bool
		js, ok = journalState()
		return ok && !js.Writable
	})
	doneBefore := closedCount(srv)
	if doneBefore >= fullJobs {
		t.Fatalf("the disk filled after the work was done (%d of %d jobs): make %s smaller", doneBefore, fullJobs, dcFullSize)
	}
	if js.Error == "" || js.Since == nil {
		t.Errorf("/status: journal_writable false without journal_error and journal_unwritable_since: %+v", js)
	}
	if v, ok := metric(addr, "dcproxy_journal_writable"); !ok || (v != 0 && px.log.count(msgWritable) == 0) {
		t.Errorf("/metrics: dcproxy_journal_writable = %v (present: %v) during the first spell, want 0", v, ok)
	}

	// Full for a while: nothing reaches the tracker between two of
	// dcproxy's attempts (a completion is sent only once its record is on
	// disk), checked over a window in which the spell did not end; the
	// programs wait.
	nextAttempt := func(after int64) worker.JournalStatus {
		var s worker.JournalStatus
		waitFor(t, 60*time.Second, "dcproxy's next journal write attempt", func() bool {
			running()
			var ok bool
			s, ok = journalState()
			return ok && s.Failures > after
		})
		return s
	}
	clean := false
	for try := 0; try < 4 && !clean; try++ {
		s1 := nextAttempt(js.Failures)
		c1, w1 := closedCount(srv), px.log.count(msgWritable)
		s2 := nextAttempt(s1.Failures)
		c2, w2 := closedCount(srv), px.log.count(msgWritable)
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
	for _, p := range progs {
		waitExit(t, p, 120*time.Second, 0)
	}
	took := time.Since(recovered)
	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, px, 60*time.Second, 0)

	checkTracker(t, "dcproxy", srv, fullPad)
	noPanic(t, px)
	verify(t, jpath)
	spells, backs := px.log.count(msgProxyUnwritable), px.log.count(msgWritable)
	if spells < 1 || spells != backs || spells > 3 {
		t.Errorf("dcproxy logged %d %q lines and %d %q lines; want as many of each, 1 to 3", spells, msgProxyUnwritable, backs, msgWritable)
	}
	if n := px.log.count(msgNotConfirmed); n > 0 {
		t.Errorf("dcproxy logged %d %q lines, with the tracker up all along: the journal's refusals were taken for the tracker's", n, msgNotConfirmed)
	}
	figures(t, "jobs=%d, 2 Python programs (upstream client) beside dcproxy; disk full after %d jobs; %d journal write attempts in %s of the spell (%.1f/min); %d spells; finished %s after the remount; wall %s",
		fullJobs, doneBefore, js.Failures, spell.Round(time.Millisecond), perMinute(int(js.Failures), spell), spells,
		took.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
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
	python, upstream := upstreamClient(t)
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
	px := start(t, "dcproxy", bins.dcproxy, "--tracker", srv.URL, "--journal", jpath, "--listen", "127.0.0.1:0",
		"--status-addr", "127.0.0.1:0", "--json-log", "--grace", "5s")
	url := "http://" + logAddr(t, px, "serving the tracker's protocol") + "/"
	addr := statusAddr(t, px)
	script := filepath.Join(t.TempDir(), "pyworker.py")
	if err := os.WriteFile(script, []byte(pyWorker), 0o600); err != nil {
		t.Fatal(err)
	}
	progs := make([]*proc, 2)
	for i := range progs {
		progs[i] = startEnv(t, fmt.Sprintf("pyworker %d", i+1), []string{"DISTCOMPUTE_URL=" + url, "UPSTREAM_CLIENT=" + upstream}, python, script)
	}
	journalState := func() (worker.JournalStatus, bool) {
		st, ok := status(addr)
		if !ok || st.JournalStatus == nil {
			return worker.JournalStatus{}, false
		}
		return *st.JournalStatus, true
	}

	waitFor(t, 60*time.Second, "a third of the jobs done", func() bool { return closedCount(srv) >= roJobs/3 || px.exited() })
	doneBefore := closedCount(srv)
	if doneBefore >= roJobs {
		t.Fatalf("the work was done before the disk failed")
	}
	disk.fail(t)
	failedAt := time.Now()
	waitFor(t, 60*time.Second, "dcproxy to report its journal read-only", func() bool {
		js, ok := journalState()
		return ok && !js.Writable && strings.Contains(js.Error, "read-only file system")
	})
	waitFor(t, 60*time.Second, "the disk to be free to unmount (dcproxy let go of its journal)", func() bool {
		err := exec.Command("umount", disk.dir).Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("umount: %v", err)
		}
		return err == nil
	})
	closedAway := closedCount(srv)
	js, _ := journalState()
	if js.Writable {
		t.Fatalf("dcproxy says its journal is writable with the disk unmounted")
	}
	for _, p := range progs {
		if p.exited() {
			t.Fatalf("%s exited (%d) while the disk was read-only: a call failed instead of waiting", p.name, p.code)
		}
	}
	out, err := exec.Command("e2fsck", "-fy", disk.img).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() >= 4) {
		t.Fatalf("e2fsck: %v: %s", err, out)
	}
	if n := closedCount(srv); n != closedAway {
		t.Errorf("%d jobs were completed at the tracker while dcproxy's journal was away", n-closedAway)
	}
	disk.mount(t)
	remounted := time.Now()

	for _, p := range progs {
		waitExit(t, p, 120*time.Second, 0)
	}
	took := time.Since(remounted)
	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, px, 60*time.Second, 0)
	checkTracker(t, "dcproxy", srv, roPad)
	noPanic(t, px)
	verify(t, jpath)
	spells, backs := px.log.count(msgProxyUnwritable), px.log.count(msgWritable)
	if spells != 1 || backs != 1 {
		t.Errorf("dcproxy logged %d %q lines and %d %q lines; want one each", spells, msgProxyUnwritable, backs, msgWritable)
	}
	if n := px.log.count(msgNotConfirmed); n > 0 {
		t.Errorf("dcproxy logged %d %q lines, with the tracker up all along", n, msgNotConfirmed)
	}
	figures(t, "jobs=%d, 2 Python programs beside dcproxy; disk read-only after %d; away %s, %d journal write attempts; finished %s after the remount; wall %s",
		roJobs, doneBefore, remounted.Sub(failedAt).Round(time.Millisecond), js.Failures,
		took.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
