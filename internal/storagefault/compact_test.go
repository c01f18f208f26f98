//go:build linux

package storagefault_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	compactJobs  = 30
	compactEvery = 4
)

// TestCompactionEIO fails one fdatasync of the file a compaction writes
// (JOURNAL.compact: bbolt's creation of it, or the sync of its content
// before it replaces the journal) while goworker compacts its journal every
// compactEvery jobs. The compaction fails and the journal it was copying
// stays in place, whole; the run goes on.
func TestCompactionEIO(t *testing.T) {
	requireRoot(t)
	st := strace(t)
	build(t)
	t.Parallel()
	for _, n := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("when=%d", n), func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			srv := startTracker(t, compactJobs, eioPad)
			jpath := filepath.Join(t.TempDir(), "goworker.db")
			gw := start(t, "goworker", straced(st, jpath+".compact", n, bins.goworker, "-tracker", srv.URL, "-journal", jpath,
				"-compact-every", fmt.Sprint(compactEvery), "-retry-min", "100ms", "-retry-max", "1s")...)
			waitExit(t, gw, 120*time.Second, 0)
			checkTracker(t, "goworker", srv, eioPad)
			noPanic(t, gw)
			verify(t, jpath)
			log := gw.log.String()
			failed := gw.log.count("goworker: compaction failed")
			if failed == 0 || !strings.Contains(log, "input/output error") {
				t.Fatalf("no compaction failed with the injected EIO")
			}
			figures(t, "jobs=%d, a compaction every %d jobs, EIO at fdatasync #%d of JOURNAL.compact: %d compactions failed, %d succeeded, %d actions not recorded; wall %s",
				compactJobs, compactEvery, n, failed, gw.log.count("goworker: compacted"), gw.log.count(msgGoNotRec), time.Since(began).Round(time.Millisecond))
		})
	}
}
