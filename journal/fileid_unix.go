//go:build unix

package journal

import (
	"os"
	"syscall"
)

// sameInode reports whether a and b have the same inode number: the same
// file on a file system mounted again, whose device number may have
// changed (a loop device or a disk attached anew gets another one).
func sameInode(a, b os.FileInfo) bool {
	sa, ok := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok && ok2 && sa.Ino == sb.Ino
}
