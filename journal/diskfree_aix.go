package journal

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// diskFree returns the bytes an unprivileged writer may still use on the
// file system that holds path. AIX's statfs has no mount flags, so a
// read-only file system is not told apart here: the write probe before a
// claim (probeWrite) and the next commit find it.
func diskFree(path string) (free int64, readOnly bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, false, err
	}
	return int64(st.Bavail) * int64(st.Bsize), false, nil
}
