//go:build !linux

package journal_test

import "os"

// fdatasync is what bbolt calls after a commit outside Linux (File.Sync:
// F_FULLFSYNC on macOS, FlushFileBuffers on Windows): the raw baseline of
// the append benchmarks.
func fdatasync(f *os.File) error { return f.Sync() }
