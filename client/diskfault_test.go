//go:build linux

package client_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/trackertest"
)

// disk is a real ext4 file system on a loop device, mounted with
// errors=remount-ro at dir, whose failures the test can cause.
type disk struct {
	t        *testing.T
	img, dir string
}

// newDisk makes and mounts a disk of size bytes; it is unmounted at cleanup.
// The test is skipped when it cannot mount (not root), except under CI,
// which runs as root: there it fails.
func newDisk(t *testing.T, size int64) *disk {
	t.Helper()
	d := &disk{t: t, img: filepath.Join(t.TempDir(), "disk.img"), dir: t.TempDir()}
	if err := os.WriteFile(d.img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(d.img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", d.img).CombinedOutput(); err != nil {
		d.skip(fmt.Errorf("mkfs.ext4: %v: %s", err, out))
	}
	d.mount()
	t.Cleanup(func() { exec.Command("umount", "-l", d.dir).Run() })
	return d
}

func (d *disk) skip(err error) {
	d.t.Helper()
	if why := os.Getenv("STORAGEFAULT_UNAVAILABLE"); why != "" {
		d.t.Skipf("storage faults cannot be made here: %v (%s)", err, why) // .ci/run said so
	}
	if os.Getenv("CI") != "" {
		d.t.Fatalf("CI runs as root, so the storage-fault tests must run: %v", err)
	}
	d.t.Skipf("storage faults need root, mkfs.ext4 and loop devices: %v", err)
}

func (d *disk) mount() {
	d.t.Helper()
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", d.img, d.dir).CombinedOutput(); err != nil {
		d.skip(fmt.Errorf("mount: %v: %s", err, out))
	}
}

// readOnly makes the file system fail as a dying disk makes it: ext4 finds
// an error and remounts itself read-only (emergency_ro), with the journal
// open; every write, fsync and open for writing then fails with EROFS.
// (A plain `mount -o remount,ro` is refused while a file is open for
// writing.)
func (d *disk) readOnly() {
	d.t.Helper()
	src, err := exec.Command("findmnt", "-n", "-o", "SOURCE", d.dir).Output()
	if err != nil {
		d.t.Fatalf("findmnt %s: %v", d.dir, err)
	}
	dev := filepath.Base(strings.TrimSpace(string(src)))
	if err := os.WriteFile("/sys/fs/ext4/"+dev+"/trigger_fs_error", []byte("1"), 0o200); err != nil {
		d.t.Fatalf("trigger an ext4 error: %v", err)
	}
}

// repair is what an operator does: unmount, fsck, mount again. The
// client still holds the old file open; it reopens the path by itself.
func (d *disk) repair() {
	d.t.Helper()
	if out, err := exec.Command("umount", "-l", d.dir).CombinedOutput(); err != nil {
		d.t.Fatalf("umount: %v: %s", err, out)
	}
	if out, err := exec.Command("e2fsck", "-fy", d.img).CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() > 1 { // 1: errors corrected
			d.t.Fatalf("e2fsck: %v: %s", err, out)
		}
	}
	d.mount()
}

// syncFS commits the file system at dir to its disk (syncfs(2)).
func syncFS(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		t.Fatalf("syncfs %s: %v", dir, err)
	}
}

// fill writes a file until the disk is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return path
		}
	}
}

// A full disk and a read-only one, for real: the client refuses to claim a
// job whose completion it could not record, CompleteJob sends nothing and
// says so (ErrNotRecorded, with the OS's error), the caller keeps its
// output, and once the disk is back the same call goes through, on the same
// Client, without a restart. Every job is completed exactly once with its
// output, and the journal verifies.
func TestDiskFaults(t *testing.T) {
	d := newDisk(t, 16<<20)
	dir := d.dir
	var jobs []any
	for i := 0; i < 12; i++ {
		jobs = append(jobs, fmt.Sprintf("in-%d", i))
	}
	e := newEnv(t, trackertest.Options{Jobs: jobs})
	e.path = filepath.Join(dir, "journal.db")
	c := e.init("a", client.WithJournalOptions(&journal.Options{})) // synced, default limits
	completes := func() int { return e.tr.Stats()["completeJob"].Requests }
	claims := func() int { return e.tr.Stats()["newJob"].Requests }
	work := func() string {
		t.Helper()
		wantNoErr(t, "NewJob", c.NewJob(e.ctx))
		return "out-" + c.Job().Text()
	}
	// The disk fails in each of these ways while a job is held.
	faults := []struct {
		name        string
		cause       error
		break_, fix func() // break_ runs with a job held, fix after the refusals
	}{
		{name: "full", cause: journal.ErrFull},
		{name: "read-only", cause: syscall.EROFS,
			break_: d.readOnly, fix: d.repair},
	}
	var filler string
	faults[0].break_ = func() { filler = fill(t, dir) }
	faults[0].fix = func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		// The unlink must reach ext4's journal: the read-only fault
		// below aborts it, and an uncommitted unlink would be lost with
		// it (e2fsck would find the filler again and the disk full).
		syncFS(t, dir)
	}
	for _, f := range faults {
		out := work()
		c.Log("half way")
		f.break_()
		before := completes()
		err := c.CompleteJob(e.ctx, out)
		if !errors.Is(err, client.ErrNotRecorded) || !errors.Is(err, f.cause) {
			t.Fatalf("%s disk: CompleteJob = %v, want ErrNotRecorded wrapping %v", f.name, err, f.cause)
		}
		if got := completes(); got != before {
			t.Fatalf("%s disk: %d completeJob requests sent for an output that was not recorded", f.name, got-before)
		}
		if h := c.JournalHealth(); !errors.Is(h, client.ErrNotRecorded) {
			t.Fatalf("%s disk: JournalHealth = %v, want ErrNotRecorded", f.name, h)
		}
		// Again: still refused, still nothing sent, nothing spins.
		if err := c.CompleteJob(e.ctx, out); !errors.Is(err, client.ErrNotRecorded) {
			t.Fatalf("%s disk: second CompleteJob = %v, want ErrNotRecorded", f.name, err)
		}
		f.fix()
		if h := c.JournalHealth(); h != nil {
			t.Fatalf("%s disk fixed: JournalHealth = %v, want nil", f.name, h)
		}
		wantNoErr(t, f.name+" disk fixed: CompleteJob", c.CompleteJob(e.ctx, out))
		if got := completes(); got != before+1 {
			t.Fatalf("%s disk fixed: %d completeJob requests, want 1", f.name, got-before)
		}

		// With the disk failing and no job held, NewJob claims nothing.
		f.break_()
		before = claims()
		if err := c.NewJob(e.ctx); !errors.Is(err, client.ErrNotRecorded) || !errors.Is(err, f.cause) {
			t.Fatalf("%s disk: NewJob = %v, want ErrNotRecorded wrapping %v", f.name, err, f.cause)
		}
		if got := claims(); got != before {
			t.Fatalf("%s disk: NewJob sent %d requests", f.name, got-before)
		}
		f.fix()
		wantNoErr(t, f.name+" disk fixed: CompleteJob", c.CompleteJob(e.ctx, work()))
	}
	for c.JobCount(e.ctx); ; {
		if n, err := c.JobCount(e.ctx); err != nil || n == 0 {
			break
		}
		wantNoErr(t, "CompleteJob", c.CompleteJob(e.ctx, work()))
	}
	for _, j := range e.tr.Jobs() {
		if j.Completions["a"] != 1 || j.Outputs["a"] == nil || *j.Outputs["a"] != "out-"+*j.Data["a"] {
			t.Errorf("job %d: completed %d times at stage a, output %v; want once with out-%s", j.Number, j.Completions["a"], j.Outputs["a"], *j.Data["a"])
		}
	}
}
