package journal

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// diskFree returns the bytes an unprivileged writer may still use on the
// file system that holds path, and whether it is mounted read-only
// (MNT_RDONLY).
func diskFree(path string) (free int64, readOnly bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, false, err
	}
	return max(st.F_bavail, 0) * int64(st.F_bsize), st.F_flags&unix.MNT_RDONLY != 0, nil
}
