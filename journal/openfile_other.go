//go:build !windows

package journal

import "os"

// openFile is how bbolt opens the journal file: the mode bbolt passes
// (0600) keeps a new journal to its owner.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}
