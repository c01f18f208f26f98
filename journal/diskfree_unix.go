//go:build !windows

package journal

import (
	"path/filepath"
	"syscall"
)

// diskFree returns the bytes an unprivileged writer may still use on the
// file system that holds path, and whether it is mounted read-only
// (ST_RDONLY on Linux, MNT_RDONLY on the BSDs and macOS: both bit 0).
func diskFree(path string) (free int64, readOnly bool, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, false, err
	}
	return int64(st.Bavail) * int64(st.Bsize), uint64(st.Flags)&1 != 0, nil
}

// probeWrite opens path for writing and closes it at once: the file system
// answers EROFS when it turned read-only, whatever its mount flags say. The
// file lock belongs to bbolt's descriptor (flock, per open file), so
// closing this one keeps it. Plain syscalls: an *os.File would register
// with the runtime's poller and set a finalizer, three times the cost.
func probeWrite(path string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return syscall.Close(fd)
}
