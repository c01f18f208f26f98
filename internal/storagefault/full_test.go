//go:build linux

package storagefault_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/worker"
)

// Sizes of TestFullDisk. Each job's input is padded to fullPad bytes and
// its output is as long, so that a journal grows by a few KiB a job until
// its retention (100 jobs) folds the oldest away; the tmpfs mounts are
// sized to fill well before the workers' 120 jobs are done: dcworker's
// leaves its journal 1 MiB free (journal.DefaultMinFree), so it is that
// plus room for ~25 jobs; goworker's has no such margin.
const (
	fullJobs   = 120
	fullPad    = 1500
	dcFullSize = "1200k"
	goFullSize = "160k"
	bigSize    = "64m"
)

// TestFullDisk fills the journals' disks while dcworker (2 slots) and
// goworker work through fullJobs jobs each, keeps them full until both
// have retried a few times, checks that nothing was claimed meanwhile, then
// gives the space back (remount larger) and lets both finish by themselves.
func TestFullDisk(t *testing.T) {
	requireRoot(t)
	build(t)
	t.Parallel()
	began := time.Now()
	dcDir, goDir := mountTmpfs(t, dcFullSize), mountTmpfs(t, goFullSize)
	dcJournal, goJournal := filepath.Join(dcDir, "dcworker.db"), filepath.Join(goDir, "goworker.db")
	dcSrv, goSrv := startTracker(t, fullJobs, fullPad), startTracker(t, fullJobs, fullPad)

	const slots = 2
	dc := start(t, "dcworker", dcworkerArgs(dcSrv.URL, dcJournal, slots)...)
	gw := start(t, "goworker", bins.goworker, "-tracker", goSrv.URL, "-journal", goJournal, "-min-free", "-1",
		"-retry-min", "100ms", "-retry-max", "1s")
	addr := statusAddr(t, dc)

	// Both journals fill: dcworker's refuses a write (ErrFull) and holds an
	// output, goworker's commit fails with ENOSPC.
	var st worker.Status
	// The output is then held in memory (the completion's record was
	// refused) or pending in the journal (the record of the tracker's
	// answer was refused): which one depends on the record that meets the
	// full disk first; either way the journal is unwritable and claims wait.
	waitFor(t, 90*time.Second, "dcworker's journal to be unwritable with the disk full", func() bool {
		var ok bool
		st, ok = status(addr)
		if dc.exited() {
			t.Fatalf("dcworker exited (%d) before its journal filled: make %s smaller", dc.code, dcFullSize)
		}
		return ok && !st.Writable
	})
	waitFor(t, 90*time.Second, "goworker to hold an output with its disk full", func() bool {
		if gw.exited() {
			t.Fatalf("goworker exited (%d) before its disk filled: make %s smaller", gw.code, goFullSize)
		}
		return gw.log.count(msgGoNotRec) > 0
	})
	dcDone, goDone := closedCount(dcSrv), closedCount(goSrv)
	if dcDone >= fullJobs || goDone >= fullJobs {
		t.Fatalf("the disks filled after the work was done (dcworker %d, goworker %d of %d jobs)", dcDone, goDone, fullJobs)
	}
	if st.Error == "" {
		t.Errorf("/status: journal_writable false without a journal_error")
	}
	// The metric and the live page's data say it too (unless the spell
	// ended meanwhile: a nearly full disk may take one more write).
	if v, ok := metric(addr, "dcworker_journal_writable"); !ok {
		t.Errorf("/metrics has no dcworker_journal_writable")
	} else if v != 0 && !dc.log.wroteWritable() {
		t.Errorf("dcworker_journal_writable = %v during the first spell, want 0", v)
	}
	if pg, ok := page(addr); !ok || (pg.Disk.Writable && !dc.log.wroteWritable()) || (!pg.Disk.Writable && pg.Disk.Error == "") {
		t.Errorf("/page.json during the first spell: %+v (answered %v)", pg.Disk, ok)
	}

	// Full for a while. Nothing is claimed while dcworker holds an output:
	// checked over a window from one of its attempts to the next, in
	// which the spell did not end (a nearly full disk may take one write
	// and refuse the next: a new spell). The window starts a second
	// after the spell did, so a claim sent just before it is counted.
	if st.Since == nil {
		t.Fatalf("/status: journal_writable false without journal_unwritable_since")
	}
	since, goSeen := *st.Since, time.Now()
	g0 := gw.log.count(msgGoNotRec)
	nextAttempt := func(after int64) worker.Status {
		var s worker.Status
		waitFor(t, 60*time.Second, "dcworker's next journal write attempt", func() bool {
			var ok bool
			s, ok = status(addr)
			return ok && s.Failures > after
		})
		return s
	}
	clean := false
	for try := 0; try < 4 && !clean; try++ {
		s1 := nextAttempt(st.Failures)
		c1, w1 := claims(dcSrv), dc.log.count(msgWritable)
		s2 := nextAttempt(s1.Failures)
		c2, w2 := claims(dcSrv), dc.log.count(msgWritable)
		st = s2
		if s1.Writable || s2.Writable || w1 != w2 {
			continue // the spell ended in between
		}
		clean = true
		if c2 != c1 {
			t.Errorf("dcworker claimed %d times while its journal was unwritable (held in memory: %v)", c2-c1, s2.Held)
		}
	}
	if !clean {
		t.Fatalf("the disk stayed full, yet dcworker's spells kept ending: %+v", st.JournalStatus)
	}
	waitFor(t, 60*time.Second, "two more attempts of goworker", func() bool { return gw.log.count(msgGoNotRec) >= g0+2 })
	dcSpell, goSpell := time.Since(since), time.Since(goSeen)
	dcAttempts, goAttempts, dcSpells := int(st.Failures), gw.log.count(msgGoNotRec), dc.log.count(msgUnwritable)
	if st.Writable {
		t.Fatalf("dcworker's journal writable with the disk full: %+v", st.JournalStatus)
	}

	// Space again: both carry on by themselves and finish.
	remount(t, dcDir, "size="+bigSize)
	remount(t, goDir, "size="+bigSize)
	recovered := time.Now()
	waitExit(t, dc, 120*time.Second, 0)
	waitExit(t, gw, 120*time.Second, 0)
	took := time.Since(recovered)

	checkTracker(t, "dcworker", dcSrv, fullPad)
	checkTracker(t, "goworker", goSrv, fullPad)
	noPanic(t, dc, gw)
	verify(t, dcJournal)
	verify(t, goJournal)
	// One line when a spell begins, one when it ends. A nearly full disk may
	// take a write and refuse the next, so there may be a few spells, but
	// not a line per attempt.
	spells := dc.log.count(msgUnwritable)
	if m := dc.log.count(msgWritable); spells < 1 || spells != m || spells > 3 {
		t.Errorf("dcworker logged %d %q lines and %d %q lines; want as many of each, 1 to 3", spells, msgUnwritable, m, msgWritable)
	}
	// No spinning: within the schedule (1 s doubling to 30 s) of each slot
	// in each spell, plus one refused claim or checkpoint a slot, plus one
	// refused record of the tracker's answer to a completion sent just
	// before the disk filled. goworker's first attempt came before the
	// test saw it: one more is allowed.
	if max := dcSpells*slots*(allowed(dcSpell, worker.JournalRetryMin, worker.JournalRetryMax)+1) + slots; dcAttempts > max {
		t.Errorf("dcworker made %d journal write attempts in %s (%d spells); the schedule allows %d", dcAttempts, dcSpell, dcSpells, max)
	}
	if max := allowed(goSpell, 100*time.Millisecond, time.Second) + 2; goAttempts > max {
		t.Errorf("goworker made %d attempts in %s with its disk full; its schedule allows %d", goAttempts, goSpell, max)
	}
	figures(t, "jobs dcworker=%d goworker=%d; disks full after dcworker=%d goworker=%d jobs; while full: dcworker %d write attempts in %s (%.1f/min, 2 slots), goworker %d in %s (%.1f/min, its pause 0.1-1 s); spells of dcworker: %d; finished %s after the remount; wall %s",
		fullJobs, fullJobs, dcDone, goDone, dcAttempts, dcSpell.Round(time.Millisecond), perMinute(dcAttempts, dcSpell),
		goAttempts, goSpell.Round(time.Millisecond), perMinute(goAttempts, goSpell), spells,
		took.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestJournalDeadline keeps dcworker's disk full past --journal-deadline:
// it drains and exits 4, saying so, and what it held in memory is not lost
// for the tracker: a dcworker started again once there is space finishes
// every job, each completed exactly once.
func TestJournalDeadline(t *testing.T) {
	requireRoot(t)
	build(t)
	t.Parallel()
	began := time.Now()
	dir := mountTmpfs(t, dcFullSize)
	jpath := filepath.Join(dir, "dcworker.db")
	srv := startTracker(t, fullJobs, fullPad)
	const deadline = 2 * time.Second
	dc := start(t, "dcworker", dcworkerArgs(srv.URL, jpath, 2, "--journal-deadline", deadline.String(), "--grace", "1s")...)
	waitExit(t, dc, 120*time.Second, 4)
	log := dc.log.String()
	// (What a slot held then is given up, saying so; a slot may hold
	// nothing: an output recorded before the disk filled waits in the
	// journal, its answer unrecorded.)
	for _, want := range []string{msgUnwritable, "the journal stayed unwritable past the deadline: draining and stopping",
		"dcworker: the journal stayed unwritable since"} {
		if !strings.Contains(log, want) {
			t.Errorf("dcworker's output lacks %q", want)
		}
	}
	doneBefore := closedCount(srv)

	remount(t, dir, "size="+bigSize)
	again := start(t, "dcworker (restarted)", dcworkerArgs(srv.URL, jpath, 2)...)
	waitExit(t, again, 120*time.Second, 0)
	checkTracker(t, "dcworker", srv, fullPad)
	noPanic(t, dc, again)
	verify(t, jpath)
	figures(t, "jobs=%d, deadline %s: exit 4 after %d jobs, the restart did the other %d; wall %s",
		fullJobs, deadline, doneBefore, fullJobs-doneBefore, time.Since(began).Round(time.Millisecond))
}
