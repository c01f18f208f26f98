package journal

import (
	"os"

	bolt "go.etcd.io/bbolt"
)

// swapIn puts the compacted copy dst (open, at tmp) in the journal's place.
// Windows refuses to rename over a file that is open (and mapped), so both
// are closed first, the copy renamed over the journal, and the journal
// opened again. Between the close and the open the file lock is not held:
// another process may take the journal then, and this DB then fails with
// ErrLocked on its next use rather than share it. If the rename fails, the
// journal is opened again as it was. The caller holds mu.
func (db *DB) swapIn(dst *bolt.DB, tmp string) error {
	if err := dst.Close(); err != nil {
		return err
	}
	old := db.bolt
	if err := old.Close(); err != nil {
		return err
	}
	renameErr := os.Rename(tmp, db.path)
	bdb, _, err := openBolt(db.path, db.opts)
	if err != nil {
		return err
	}
	db.bolt = bdb
	return renameErr
}
