//go:build netbsd || solaris || illumos

package journal

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// stRdonly is statvfs's ST_RDONLY, 1 on NetBSD and Solaris (x/sys/unix
// does not name it there).
const stRdonly = 1

// diskFree returns the bytes an unprivileged writer may still use on the
// file system that holds path, and whether it is mounted read-only
// (ST_RDONLY), from statvfs: these systems have no statfs.
func diskFree(path string) (free int64, readOnly bool, err error) {
	var st unix.Statvfs_t
	if err := unix.Statvfs(filepath.Dir(path), &st); err != nil {
		return 0, false, err
	}
	return int64(st.Bavail) * int64(st.Frsize), st.Flag&stRdonly != 0, nil
}
