package journal

import (
	"sync"
	"time"
)

// Every commit that may grow the file checks the free space of its file
// system (checkSpace), and so does Writable before each claim: three statfs
// calls per job cycle. While there is far more room than MinFree, the answer
// cannot change what they decide, so a measure is reused for
// freeCacheTTL, as long as it leaves freeCacheMargin beyond what is asked
// (the file's growth since is taken off it). A file system with less room
// than that (every disk of the storage-fault suite, whose journals fill it)
// is measured afresh on every call, as before. What the cache can change:
// another process that fills more than freeCacheMargin in under
// freeCacheTTL makes a commit meet ENOSPC (the DB stops; Reopen) instead of
// being refused with ErrFull. Writable's write probe is never cached: a
// file system that turned read-only is seen at the next claim.
const (
	freeCacheTTL    = 500 * time.Millisecond
	freeCacheMargin = 64 << 20
)

// freeCache is the last free-space measure of the journal's file system.
type freeCache struct {
	mu   sync.Mutex
	at   time.Time // zero: none
	free int64
	size int64 // the file's high-water mark when measured
}

// diskFree returns the bytes free on the journal's file system and whether
// it is mounted read-only, as diskFree does, from the last measure if it is
// younger than freeCacheTTL and leaves want+freeCacheMargin bytes (see
// above).
func (db *DB) diskFree(want int64) (free int64, readOnly bool, err error) {
	c := &db.freeC
	now, size := time.Now(), db.size.Load()
	c.mu.Lock()
	if !c.at.IsZero() && now.Sub(c.at) < freeCacheTTL {
		if f := c.free - max(0, size-c.size); f-want >= freeCacheMargin {
			c.mu.Unlock()
			return f, false, nil
		}
	}
	c.mu.Unlock()
	free, readOnly, err = diskFree(db.path)
	c.mu.Lock()
	if err == nil && !readOnly {
		c.at, c.free, c.size = now, free, size
	} else {
		c.at = time.Time{}
	}
	c.mu.Unlock()
	return free, readOnly, err
}

// forgetFree drops the cached measure (Reopen: the file system may be
// another one).
func (db *DB) forgetFree() {
	db.freeC.mu.Lock()
	db.freeC.at = time.Time{}
	db.freeC.mu.Unlock()
}
