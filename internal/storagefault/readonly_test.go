//go:build linux

package storagefault_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/worker"
)

const (
	roJobs = 60
	roPad  = 256
)

// ext4Disk is an ext4 file system in an image file, mounted on a loop
// device with errors=remount-ro, as a server's data disk would be.
type ext4Disk struct {
	img, dir, dev string
}

func newExt4Disk(t *testing.T) *ext4Disk {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "findmnt"} {
		_, err := exec.LookPath(tool)
		need(t, err == nil, "%s is not installed (e2fsprogs, util-linux)", tool)
	}
	base := t.TempDir()
	d := &ext4Disk{img: filepath.Join(base, "disk.img"), dir: filepath.Join(base, "mnt")}
	if err := os.Mkdir(d.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(d.img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", d.img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	d.mount(t)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", d.dir).Run() })
	return d
}

func (d *ext4Disk) mount(t *testing.T) {
	t.Helper()
	out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", d.img, d.dir).CombinedOutput()
	need(t, err == nil, "mount -o loop (ext4 image) failed (%v: %s): no loop devices here?", err, bytes.TrimSpace(out))
	src, err := exec.Command("findmnt", "-no", "SOURCE", d.dir).Output()
	if err != nil {
		t.Fatalf("findmnt %s: %v", d.dir, err)
	}
	d.dev = filepath.Base(strings.TrimSpace(string(src)))
}

// holdDevice keeps the loop device the disk was on, once unmounted, busy
// with another image, so that mounting the disk again puts it on another
// device: the journal's file then has the same inode on another device
// number, as on a disk an operator attaches anew. It reports whether it
// could (a loop device is freed asynchronously after the unmount).
func (d *ext4Disk) holdDevice(t *testing.T) bool {
	t.Helper()
	if !strings.HasPrefix(d.dev, "loop") {
		return false
	}
	dummy := filepath.Join(t.TempDir(), "hold.img")
	if err := os.WriteFile(dummy, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := "/dev/" + d.dev
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if exec.Command("losetup", dev, dummy).Run() == nil {
			t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
			return true
		}
	}
	return false
}

// unmountWhenFree unmounts the disk, trying until nothing holds a file
// open on it (who, the process under test, lets go of its journal).
func (d *ext4Disk) unmountWhenFree(t *testing.T, who string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the disk to be free to unmount ("+who+" let go of its journal)", func() bool {
		err := exec.Command("umount", d.dir).Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("umount: %v", err)
		}
		return err == nil
	})
}

// check runs e2fsck on the unmounted disk, as the operator would.
func (d *ext4Disk) check(t *testing.T) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fy", d.img).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() >= 4) {
		t.Fatalf("e2fsck: %v: %s", err, out)
	}
}

// fail makes ext4 meet an error, as a failing disk would: with
// errors=remount-ro it turns read-only at once, whatever is open on it.
func (d *ext4Disk) fail(t *testing.T) {
	t.Helper()
	trigger := filepath.Join("/sys/fs/ext4", d.dev, "trigger_fs_error")
	_, err := os.Stat(trigger)
	need(t, err == nil, "this kernel has no %s", trigger)
	if err := os.WriteFile(trigger, []byte("storagefault: the disk fails\n"), 0o200); err != nil {
		t.Fatalf("write %s: %v", trigger, err)
	}
}

// TestReadOnlyDisk makes the file system of dcworker's journal read-only
// in the middle of the run, then read-write again, without touching the
// worker.
//
// `mount -o remount,ro` is refused (EBUSY) while a file is open for writing
// on the file system, as the journal always is, so the disk goes read-only
// the way it does in production: ext4 meets an error (trigger_fs_error)
// and, mounted errors=remount-ro, refuses every write from then on (EROFS).
// Such a file system stays read-only until it is unmounted, checked and
// mounted again, which the operator can do only once no process has a file
// open on it: dcworker lets go of its journal when it stops, and reopens it
// by path on each retry (failing while the disk is away: its directory is
// on the disk). The test then unmounts (trying until it is allowed), runs
// e2fsck and mounts the disk again; dcworker carries on by itself.
func TestReadOnlyDisk(t *testing.T) {
	requireRoot(t)
	build(t)
	t.Parallel()
	began := time.Now()
	disk := newExt4Disk(t)
	jdir := filepath.Join(disk.dir, "state")
	if err := os.Mkdir(jdir, 0o700); err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(jdir, "journal.db")
	srv := startTracker(t, roJobs, roPad)
	dc := start(t, "dcworker", dcworkerArgs(srv.URL, jpath, 2)...)
	addr := statusAddr(t, dc)

	waitFor(t, 60*time.Second, "a third of the jobs done", func() bool { return closedCount(srv) >= roJobs/3 || dc.exited() })
	doneBefore := closedCount(srv)
	if doneBefore >= roJobs {
		t.Fatalf("the work was done before the disk failed")
	}
	disk.fail(t)
	failedAt := time.Now()
	waitFor(t, 60*time.Second, "dcworker to report its journal read-only", func() bool {
		st, ok := status(addr)
		return ok && !st.Writable && strings.Contains(st.Error, "read-only file system")
	})
	// Claims are counted from the next attempt on (a second later): a claim
	// sent just before the disk failed is counted by then.
	waitFor(t, 60*time.Second, "dcworker to try its journal again", func() bool {
		st, ok := status(addr)
		return ok && st.Failures >= 2
	})
	claims0 := claims(srv)

	// The operator's cure: unmount once nothing holds the disk, check it,
	// mount it again.
	disk.unmountWhenFree(t, "dcworker")
	st, _ := status(addr)
	if st.Writable {
		t.Fatalf("dcworker says its journal is writable with the disk unmounted")
	}
	if n := claims(srv); n != claims0 {
		t.Errorf("dcworker claimed %d times while its journal could not be written", n-claims0)
	}
	// No spinning: each slot within the schedule (1 s doubling to 30 s),
	// plus one refused claim or checkpoint.
	if away := time.Since(failedAt); int(st.Failures) > 2*(allowed(away, worker.JournalRetryMin, worker.JournalRetryMax)+1) {
		t.Errorf("dcworker made %d journal write attempts in %s; the schedule allows %d", st.Failures, away, 2*(allowed(away, worker.JournalRetryMin, worker.JournalRetryMax)+1))
	}
	disk.check(t)
	oldDev, held := disk.dev, disk.holdDevice(t)
	disk.mount(t)
	remounted := time.Now()
	if held && disk.dev == oldDev {
		t.Fatalf("the disk was mounted again on %s, which the test holds", oldDev)
	}

	waitExit(t, dc, 120*time.Second, 0)
	checkTracker(t, "dcworker", srv, roPad)
	noPanic(t, dc)
	verify(t, jpath)
	if n, m := dc.log.count(msgUnwritable), dc.log.count(msgWritable); n != 1 || m != 1 {
		t.Errorf("dcworker logged %d %q lines and %d %q lines; want one each", n, msgUnwritable, m, msgWritable)
		// What the worker saw of its journal, in order (the output
		// printed at the end is cut to its last lines).
		for _, l := range strings.Split(dc.log.String(), "\n") {
			if strings.Contains(l, "journal") || strings.Contains(l, msgWritable) {
				t.Logf("dcworker: %s", l)
			}
		}
	}
	spell := downFor(dc.log.String())
	figures(t, "jobs=%d, disk read-only after %d; unwritable for %s (disk away %s, back on %s, was %s), %d write attempts; finished %s after the remount; wall %s",
		roJobs, doneBefore, spell.Round(time.Millisecond), remounted.Sub(failedAt).Round(time.Millisecond), disk.dev, oldDev, st.Failures,
		time.Since(remounted).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
