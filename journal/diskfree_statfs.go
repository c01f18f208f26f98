//go:build linux || darwin || freebsd || dragonfly

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
