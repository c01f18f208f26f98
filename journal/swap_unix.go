//go:build !windows

package journal

import (
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// swapIn puts the compacted copy dst (open, at tmp) in the journal's place:
// it is renamed over the journal while both are open, so this process keeps
// the file lock throughout (a process waiting for the lock gets the old,
// unlinked file and opens again: see Open). The caller holds mu.
func (db *DB) swapIn(dst *bolt.DB, tmp string) error {
	if err := os.Rename(tmp, db.path); err != nil {
		return err
	}
	if !db.opts.NoSync {
		if d, err := os.Open(filepath.Dir(db.path)); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	dst.NoSync = db.opts.NoSync
	old := db.bolt
	db.bolt = dst
	_ = old.Close()
	return nil
}
