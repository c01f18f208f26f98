package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// Fail-stop. When a write transaction fails to commit (a write, an fsync,
// the growth of the file) or panics, the DB stops: every later write fails
// with a *StoppedError until Reopen, and nothing retries on the same file
// handle. Two reasons:
//
//   - After a failed commit, what the file holds is unknown to this process:
//     bbolt rolls its memory back, but the meta page may already be in the
//     kernel's cache (a failed fdatasync after the meta write), so the next
//     read transaction could see the commit that "failed" while the caches
//     of this package (published states, the commit cache of slot states)
//     say it did not. Only reading the file afresh settles it.
//   - A failed fsync must never be retried on the same handle: the kernel
//     may have dropped the dirty pages and marked them clean, so a second
//     fsync "succeeds" with the data lost (PostgreSQL's fsync bug of 2018).
//     Reopen therefore rewrites the whole file through a new one (Compact),
//     so that every byte this process believes in is written and fsynced
//     again.

// failStop records err, the failure of write transaction txid (0: none
// began), as the reason the DB stopped, unless it stopped already, and
// returns the *Error of op to give the caller. The file handle is dropped
// soon after (dropHandle), not reused.
func (db *DB) failStop(op string, err error, txid int) error {
	db.smu.Lock()
	first := db.stopErr == nil
	if first {
		db.stopErr = err
		db.failedTx = txid
	}
	cause, reopening := db.stopErr, db.reopening
	db.smu.Unlock()
	if first && !reopening {
		db.logger().Error("journal stopped after a failed write; writes are refused until it is reopened",
			"path", db.path, "op", op, "err", err)
		go db.dropHandle()
	}
	return db.wrap(op, &StoppedError{Err: cause})
}

// dropHandle closes the bbolt handle of a stopped DB: nothing may be
// written through it again, and while it is open the file system it is on
// cannot be unmounted (an operator repairing a disk that turned read-only
// must be able to). Reads of the file fail until Reopen; the states the DB
// published (State) stay readable.
func (db *DB) dropHandle() {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Load() || db.Stopped() == nil {
		return
	}
	_ = db.bolt.Close()
}

// stopped returns the *Error of op if the DB is stopped, else nil.
func (db *DB) stopped(op string) error {
	db.smu.Lock()
	defer db.smu.Unlock()
	if db.stopErr == nil {
		return nil
	}
	return db.wrap(op, &StoppedError{Err: db.stopErr})
}

// Stopped returns the failure that stopped the DB (a *StoppedError:
// errors.Is(err, ErrStopped) holds), or nil while it writes. It is cheap.
func (db *DB) Stopped() error {
	db.smu.Lock()
	defer db.smu.Unlock()
	if db.stopErr == nil {
		return nil
	}
	return &StoppedError{Err: db.stopErr}
}

// errAnotherFile is why Reopen refuses a path that names another file than
// the journal that stopped.
var errAnotherFile = errors.New("the path names another file than the journal that stopped (was its disk replaced?)")

// Reopen brings a stopped DB back: it closes the file, opens it again
// (with the checks of Open), drops every cache of what the file holds, and
// rewrites the file through a new one (Compact), so that what it holds is
// on disk whatever the failed fsync left in the kernel's cache. Deferred
// events taken by the commit that failed are written again unless that
// commit turned out to have reached the file. Buffered progress is kept.
// It refuses a path that names another file than the journal that stopped:
// the same file is the same inode, on the same device or, on a file system
// mounted again under another device number, with its transactions at
// least as far as this DB's (not an older copy).
//
// If any of it fails the DB stays stopped, with that failure as its cause,
// and Reopen can be called again later (when the disk has space again, or
// is writable again). Reopen of a DB that is not stopped does nothing. The
// caller should read the states it relies on afresh afterwards: the events
// of a failed Append may or may not be in the file (Landed tells).
func (db *DB) Reopen() error {
	if db.opts.ReadOnly {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Load() {
		return db.wrap("reopen", ErrClosed)
	}
	db.smu.Lock()
	cause, failedTx := db.stopErr, db.failedTx
	db.smu.Unlock()
	if cause == nil {
		return nil
	}
	_ = db.bolt.Close() // its errors are the failure's: the handle is dropped either way
	db.forgetFree()
	// The path must still name the journal: a disk unmounted under it
	// leaves an empty folder where Open would create a new, empty journal
	// and the worker would go on without its history.
	fi, err := os.Stat(db.path)
	if err != nil {
		return db.restop("reopen", fmt.Errorf("the journal file is gone (was its disk unmounted?): %w", err))
	}
	// The same file, or the same inode on a file system mounted again
	// under another device number (then its transactions must go at least
	// as far as this DB's: not an older copy).
	// (An empty file would be made a new journal. The size comes first:
	// on Windows, SameFile reads the identity of db.fi's path the first
	// time it is asked, and it must not be an empty file's.)
	if fi.Size() == 0 {
		return db.restop("reopen", errAnotherFile)
	}
	same := db.fi == nil || os.SameFile(fi, db.fi)
	if !same && !sameInode(fi, db.fi) {
		return db.restop("reopen", errAnotherFile)
	}
	bdb, err := openLocked(db.path, db.opts)
	if err != nil {
		return db.restop("reopen", err)
	}
	db.bolt = bdb
	if !same {
		older := false
		_ = bdb.View(func(tx *bolt.Tx) error {
			older = int64(tx.ID()) < db.lastTx.Load()
			return nil
		})
		if older {
			_ = bdb.Close()
			return db.restop("reopen", errAnotherFile)
		}
		db.fi = fi
	}
	landed := false
	if failedTx > 0 {
		err := db.view("reopen", func(tx *bolt.Tx) error {
			landed = tx.ID() >= failedTx
			return nil
		})
		if err != nil {
			return db.restop("reopen", err)
		}
	}
	db.slots = nil // mu is held exclusively: no commit runs
	db.tailAhead = false
	db.dmu.Lock()
	db.pub = nil
	kept := db.deferred[:0:0]
	for _, d := range db.deferred {
		if landed && slices.Contains(db.lostTaken, d) {
			continue // the failed commit wrote it after all
		}
		d.tx = 0
		kept = append(kept, d)
	}
	db.deferred, db.lostTaken = kept, nil
	db.dmu.Unlock()
	db.smu.Lock()
	db.stopErr, db.failedTx, db.landed = nil, 0, landed
	db.reopening = true // a failure of the rewrite is Reopen's to report, once
	db.smu.Unlock()
	_, _, err = db.compactLocked("reopen")
	db.smu.Lock()
	db.reopening = false
	db.smu.Unlock()
	if err != nil {
		var se *StoppedError
		if errors.As(err, &se) {
			_ = db.bolt.Close() // the rewrite's commit stopped the DB again
			return err
		}
		return db.restop("reopen", err)
	}
	return nil
}

// restop stops the DB again with err, the failure of Reopen, as its
// cause, and closes the handle Reopen opened. The caller holds mu.
func (db *DB) restop(op string, err error) error {
	db.smu.Lock()
	db.stopErr = err
	db.failedTx = 0
	db.smu.Unlock()
	_ = db.bolt.Close()
	db.logger().Debug("journal still stopped: reopening failed", "path", db.path, "err", err)
	return db.wrap(op, &StoppedError{Err: err})
}

// Landed reports whether the commit whose failure stopped the DB before the
// last successful Reopen reached the file after all (its events, and the
// deferred events it took, are then in the journal). A caller that got a
// *StoppedError from Append reads the slot's State after Reopen to know
// whether its event is there; Landed says whether it may be.
func (db *DB) Landed() bool {
	db.smu.Lock()
	defer db.smu.Unlock()
	return db.landed
}

// checkSpace refuses a commit whose records (sp) would grow the file past
// Options.MaxSize, or leave fewer than Options.MinFree bytes free on its
// file system: ErrFull, returned by the transaction's function so that
// nothing is written and the DB goes on.
//
// bbolt allocates pages only when it commits, so the growth is estimated
// (space.need), less the free pages the file already has. The estimate
// spares a commit that bbolt would refuse; it does not decide: it counts
// the free pages as if any could take any record, but a record larger than
// a page needs contiguous ones, so a commit that passes may still need new
// pages. bbolt refuses to allocate those past MaxSize (bolt.Options.MaxSize),
// which update reports as ErrFull too. The disk check ignores the file's
// free pages: it costs one statfs (a microsecond beside two fsyncs; none
// while a recent measure leaves far more room, see freecache.go), and a
// disk that full refuses every write rather than the one that would hit
// ENOSPC in the middle of a commit.
func (db *DB) checkSpace(tx *bolt.Tx, sp space) error {
	db.size.Store(tx.Size())
	page := int64(tx.DB().Info().PageSize)
	need := sp.need(page)
	if max := db.opts.MaxSize; max > 0 {
		st := db.bolt.Stats()
		if err := overMax(tx.Size(), need, st, page, max); err != nil {
			db.wantCompact(st, tx.Size(), page)
			return err
		}
	}
	if min := db.opts.MinFree; min > 0 {
		free, _, err := db.diskFree(min + need)
		if err == nil && free-need < min {
			return &FullError{Size: tx.Size(), Limit: min, Free: max(free-need, 0)}
		}
	}
	return nil
}

// overMax projects a commit needing need bytes onto a file of size bytes
// with st's free pages: a *FullError when bbolt would grow the file past
// maxSize (see fileAfter), nil otherwise.
func overMax(size, need int64, st bolt.Stats, page, maxSize int64) *FullError {
	growth := need - int64(st.FreePageN+st.PendingPageN)*page
	if growth <= 0 {
		return nil
	}
	if after := fileAfter(size+growth, page, maxSize); after > maxSize {
		return &FullError{Size: after, Limit: maxSize, Free: -1}
	}
	return nil
}

// space counts the records a commit writes, for checkSpace.
type space struct {
	small  int64 // bytes of records that share pages
	large  int64 // bytes of larger records
	nlarge int64 // how many larger records
}

func (sp *space) add(n int) {
	if n <= smallRecord {
		sp.small += int64(n)
	} else {
		sp.large += int64(n)
		sp.nlarge++
	}
}

// smallRecord is the largest record counted as small: one that shares a
// page with others (a quarter of a 4 KiB page).
const smallRecord = 1 << 10

// need estimates the bytes a commit of these records takes from the file
// at most: small records twice over (a B-tree page is half full at worst),
// a large one in a run of whole pages of its own (its bytes and one page:
// the last one's rest, the page and element headers, the key), and four
// pages for the branches, root and meta.
func (sp space) need(page int64) int64 {
	return 2*sp.small + sp.large + (4+sp.nlarge)*page
}

// wantCompact asks the flusher to compact the file after a write was
// refused for MaxSize, when free pages make up at least an eighth of the
// file's size (a high-water mark of size bytes): a compacted file no longer
// holds them, and the same write may fit. Freed pages are scattered, so a
// record larger than a page may find no room among them, and the file's
// high-water mark stays where the largest burst of writes left it.
func (db *DB) wantCompact(st bolt.Stats, size, page int64) {
	if int64(st.FreePageN+st.PendingPageN)*page >= size/8 {
		db.compactWanted.Store(true)
	}
}

// allocSize is the bbolt AllocSize for a journal of at most maxSize bytes:
// the step by which bbolt grows the file past its high-water mark. Under
// bbolt's default (16 MiB) the file takes the size of its mapping, which
// doubles, and bbolt refuses a growth that would take it past
// bolt.Options.MaxSize, so a journal limited to 1.5 MiB could not pass
// 1 MiB; a sixteenth of maxSize (at least a page, at most the default)
// lets it fill all but that step. 0: bbolt's default (no limit).
func allocSize(maxSize int64) int {
	if maxSize <= 0 {
		return 0
	}
	return int(min(max(maxSize/16&^4095, 4096), 16<<20))
}

// Writable reports whether a write may succeed now, without writing: the
// DB's stop (a *StoppedError) if it is stopped, a *FullError if the file
// could not take a commit of a few KiB without passing Options.MaxSize or
// leaving its file system less than Options.MinFree bytes free, else nil. A caller that is about to take on
// work it must record later (the client, before it claims a job) asks
// first, so as not to start what it cannot finish.
func (db *DB) Writable() error {
	if db.opts.ReadOnly {
		return db.wrap("write", ErrReadOnly)
	}
	if err := db.stopped("write"); err != nil {
		return err
	}
	// Room for a small commit, as checkSpace counts it, and four pages
	// more: the indexes a claim's commit may rewrite, which checkSpace's
	// four pages do not always cover, and which bbolt then refuses
	// (bolt.Options.MaxSize). A disk with less would pass this check and
	// refuse the claim's own commit, and a caller that probes (dcworker)
	// would see its disk turn writable and full again at every probe.
	need := space{small: writableRoom}.need(int64(os.Getpagesize())) + 4*int64(os.Getpagesize())
	size := db.size.Load() // as the last commit began: a read gives it as it ended
	if max := db.opts.MaxSize; max > 0 {
		if err := db.acquire("write"); err != nil {
			return err
		}
		var page int64
		err := db.bolt.View(func(tx *bolt.Tx) error {
			// (Info reads the mapping's address: only under a
			// transaction, which keeps a commit from remapping it.)
			size, page = tx.Size(), int64(tx.DB().Info().PageSize)
			return nil
		})
		st := db.bolt.Stats()
		db.release()
		if err != nil {
			return nil // no answer: let the write tell
		}
		if err := overMax(size, need, st, page, max); err != nil {
			return db.wrap("write", err)
		}
	}
	free, readOnly, err := db.diskFree(max(db.opts.MinFree, 0) + need)
	if err != nil {
		return nil // no answer: let the write tell
	}
	// A file system that cannot be written stops the DB as a failed write
	// would: the next Reopen drops the handle on it (a file system
	// repaired and mounted again is a new one: only a new open reaches it).
	if readOnly {
		err := db.failStop("write", fmt.Errorf("the file system is mounted read-only: %w", syscall.EROFS), 0)
		db.dropHandle()
		return err
	}
	// A file system can also turn read-only without its mount flags saying
	// so (ext4's errors=remount-ro sets emergency_ro): opening the file for
	// writing asks the file system itself (see probeWrite).
	if err := probeWrite(db.path); err != nil {
		err = db.failStop("write", &fs.PathError{Op: "open", Path: db.path, Err: err}, 0)
		db.dropHandle()
		return err
	}
	if min := db.opts.MinFree; min > 0 && free-need < min {
		return db.wrap("write", &FullError{Size: size, Limit: min, Free: max(free-need, 0)})
	}
	return nil
}

// writableRoom is how many bytes of records Writable asks room for: a
// claim of a job of up to about 4 KiB (its event, and the slot's state that
// holds the job), or a completion of that size.
const writableRoom = 8 << 10
