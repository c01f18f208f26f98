//go:build !unix

package journal

import "os"

// sameInode is false where a file's identity is os.SameFile's alone.
func sameInode(a, b os.FileInfo) bool { return false }
