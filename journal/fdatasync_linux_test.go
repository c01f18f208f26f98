package journal_test

import (
	"os"
	"syscall"
)

// fdatasync is what bbolt calls after a commit on Linux: the raw baseline of
// the append benchmarks.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
