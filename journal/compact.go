package journal

import (
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// Automatic compaction: the background flusher compacts the file when both
// hold.
const (
	// CompactMinSize is the file size under which automatic compaction is
	// never attempted.
	CompactMinSize = 8 << 20
	// CompactFreeRatio triggers automatic compaction when free pages make up
	// more than this part of the file.
	CompactFreeRatio = 0.5
)

// needsCompact reports whether free pages make up more than
// CompactFreeRatio of a file larger than CompactMinSize.
func (db *DB) needsCompact() bool {
	if err := db.acquire("compact"); err != nil {
		return false
	}
	defer db.release()
	fi, err := os.Stat(db.path)
	if err != nil || fi.Size() < CompactMinSize {
		return false
	}
	var page int64
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		page = int64(tx.DB().Info().PageSize) // (under a transaction: see Writable)
		return nil
	})
	st := db.bolt.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * page
	return float64(free) > CompactFreeRatio*float64(fi.Size())
}

// Compact rewrites the journal into a new file with bbolt's Compact helper
// and atomically renames it over the old one, so that the file shrinks to
// what it holds (bbolt never shrinks a file in place). The file lock is held
// throughout (the new file is locked before it replaces the old one);
// appends wait meanwhile. It returns the file sizes before and after. The
// background flusher calls it when free pages pass CompactFreeRatio.
func (db *DB) Compact() (before, after int64, err error) {
	if db.opts.ReadOnly {
		return 0, 0, db.wrap("compact", ErrReadOnly)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Load() {
		return 0, 0, db.wrap("compact", ErrClosed)
	}
	if err := db.stopped("compact"); err != nil {
		return 0, 0, err
	}
	return db.compactLocked("compact")
}

// compactLocked is Compact for operation op; the caller holds mu
// exclusively.
func (db *DB) compactLocked(op string) (before, after int64, err error) {
	if err := db.flushLocked(op); err != nil {
		return 0, 0, err
	}
	fi, err := os.Stat(db.path)
	if err != nil {
		return 0, 0, db.wrap(op, err)
	}
	before = fi.Size()
	tmp := db.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: DefaultTimeout, NoSync: true, MaxSize: int(max(db.opts.MaxSize, 0))})
	if err != nil {
		return before, before, db.wrap(op, err)
	}
	if a := allocSize(db.opts.MaxSize); a > 0 {
		dst.AllocSize = a
	}
	fail := func(err error) (int64, int64, error) {
		dst.Close()
		os.Remove(tmp)
		return before, before, db.wrap(op, err)
	}
	if err := compactGuarded(dst, db.bolt); err != nil {
		return fail(err)
	}
	if !db.opts.NoSync {
		if err := dst.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := db.swapIn(dst, tmp); err != nil {
		return fail(err)
	}
	// The new file numbers its transactions afresh: published states are
	// dated by the old file's numbers, so they are dropped (the states
	// themselves did not change; the next read or commit publishes them).
	db.dmu.Lock()
	db.pub = nil
	db.dmu.Unlock()
	if fi, err := os.Stat(db.path); err == nil {
		after = fi.Size()
		db.smu.Lock()
		db.fi = fi // the file swapped in, for Reopen
		db.smu.Unlock()
	}
	db.noteTx() // the new file's numbers
	return before, after, nil
}

func compactGuarded(dst, src *bolt.DB) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = corrupt("", 0, "%v", r)
		}
	}()
	return bolt.Compact(dst, src, 4<<20)
}
