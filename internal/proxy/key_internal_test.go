package proxy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// The key is made once and kept: a second start reads the same one.
func TestKeyFileKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db.key")
	k1, err := keyFile(path)
	if err != nil || len(k1) != 32 {
		t.Fatalf("first start: %x, %v", k1, err)
	}
	k2, err := keyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second start: %x, %v; want the first key", k2, err)
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
}

// A key that cannot be written (a full disk: the new file is /dev/full
// here) is an error that says so, and leaves no file behind.
func TestKeyFileFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db.key")
	if err := os.Symlink("/dev/full", path+".tmp"); err != nil {
		t.Skip("cannot make a symbolic link here:", err)
	}
	_, err := keyFile(path)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("keyFile on a full disk: %v, want ENOSPC", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}
