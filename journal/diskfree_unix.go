//go:build !windows

package journal

import (
	"path/filepath"
	"syscall"
)

// diskFree returns the bytes an unprivileged writer may still use on the
// file system that holds path.
func diskFree(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
