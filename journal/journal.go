package journal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Defaults used when the corresponding Options field is zero.
const (
	// DefaultTimeout is how long Open waits for another process to release
	// the file lock before it fails with ErrLocked.
	DefaultTimeout = time.Second
	// DefaultRetention is how many jobs' history each slot keeps: events
	// older than the claim of the DefaultRetention-th most recent job are
	// pruned (folded into the slot's base state).
	DefaultRetention = 100
	// DefaultProgressInterval is the longest time progress text given to
	// AppendProgress stays in memory before it is written.
	DefaultProgressInterval = time.Second
	// DefaultMaxSize is the file size past which writes are refused with
	// ErrFull. A journal of default retention stays far under it: it is a
	// guard against a runaway (a job checkpointing megabytes in a loop), not
	// a budget.
	DefaultMaxSize = 1 << 30
	// DefaultMinFree is how many bytes a write that grows the file leaves
	// free on its file system at least; a write that would leave fewer is
	// refused with ErrFull, so that a filling disk is reported as such
	// before the kernel answers ENOSPC in the middle of a commit.
	DefaultMinFree = 1 << 20
)

// Options configures Open. A nil *Options means all defaults.
type Options struct {
	// Timeout is how long Open waits for the file lock; 0 means
	// DefaultTimeout, a negative value means a single attempt.
	Timeout time.Duration
	// ReadOnly opens the journal with a shared lock and never writes to the
	// file: its bytes stay unchanged. Appends fail with ErrReadOnly.
	ReadOnly bool
	// Retention is how many jobs' history each slot keeps (see
	// DefaultRetention); 0 means DefaultRetention, a negative value keeps
	// all history. Orphans are kept regardless until resolved.
	Retention int
	// ProgressInterval is the longest time text given to AppendProgress
	// waits before the background flusher writes it; 0 means
	// DefaultProgressInterval.
	ProgressInterval time.Duration
	// NoSync skips fsync: for tests and benchmarks only, a crash may lose
	// or corrupt the journal.
	NoSync bool
	// NoAutoCompact disables compaction by the background flusher (Compact
	// can still be called).
	NoAutoCompact bool
	// MaxSize bounds the file: a write that would grow it past MaxSize
	// bytes is refused with ErrFull (nothing written; the DB goes on). 0
	// means DefaultMaxSize, a negative value no limit.
	MaxSize int64
	// MinFree is how many bytes a write that grows the file must leave free
	// on its file system, else it is refused with ErrFull. 0 means
	// DefaultMinFree, a negative value no check. The free space is measured
	// at each commit, or reused for half a second while it is 64 MiB more
	// than needed (freecache.go).
	MinFree int64
	// Logger receives what the background flusher cannot return to a
	// caller: events given to AppendDeferred and refused when written.
	// nil: discard.
	Logger *slog.Logger
}

// Bucket and key names of the file layout (see doc.go).
var (
	bucketMeta     = []byte("meta")
	bucketEvents   = []byte("events")
	bucketStates   = []byte("states")
	bucketBases    = []byte("bases")
	bucketSlotMeta = []byte("slotmeta")
	bucketSlotIdx  = []byte("slotidx")
	bucketClaims   = []byte("claims")
	bucketJobs     = []byte("jobs")
	bucketOrphans  = []byte("orphans")
	bucketTail     = []byte("tail") // see tail.go

	allBuckets = [][]byte{bucketEvents, bucketStates, bucketBases, bucketSlotMeta,
		bucketSlotIdx, bucketClaims, bucketJobs, bucketOrphans}

	keyMagic  = []byte("magic")
	keyFormat = []byte("format")
)

const magic = "distcompute-journal"

// DB is an open journal. All methods are safe for concurrent use. A DB
// holds the file lock until Close; writable DBs also run a background
// goroutine that writes buffered progress and compacts the file.
type DB struct {
	path      string
	opts      Options
	retention int

	// mu guards bolt: held shared by every operation and exclusively by
	// Compact (which swaps the file) and Close.
	mu     sync.RWMutex
	bolt   *bolt.DB
	closed atomic.Bool

	// Group commit: requests queue up under qmu; the leader commits
	// everything queued in one transaction while holding commitMu (which
	// Verify and AppendBatch take to keep commits out).
	qmu         sync.Mutex
	queue       []*request
	leading     bool // a goroutine is committing or about to
	gathering   bool // the leader waits in gather (for gatherCh or gatherTimer)
	gatherCh    chan struct{}
	gatherTimer *time.Timer // used by the leader only (under commitMu)
	commitMu    sync.Mutex
	slots       map[string]cachedSlot // committed state of slots, guarded by commitMu (see txWriter.keep)
	// tailAhead: the file's tail counter was found at least as high as
	// its events counter (see txWriter.nextSeq); guarded by commitMu.
	tailAhead bool
	inflight  atomic.Int64 // requests inside submit, not yet done
	commits   atomic.Int64 // write transactions committed
	synced    atomic.Int64 // of which fsynced
	appended  atomic.Int64 // events written
	deferredN atomic.Int64 // events given to AppendDeferred

	// Deferred events (AppendDeferred), oldest first, refusals of deferred
	// events not yet reported, by slot, and what readers need to tell which
	// deferred events their read transaction sees. Guarded by dmu.
	dmu       sync.Mutex
	pub       map[string]published // committed states, for State without a read transaction; guarded by dmu
	deferred  []*deferredEvent
	deferFail map[string]error
	recent    []*deferredEvent // written while readers (viewDeferred) run
	readers   int              // viewDeferred calls running

	// Buffered progress: latest text per slot.
	pmu     sync.Mutex
	pending map[string]string

	stop        chan struct{}
	flusherDone chan struct{}

	// Fail-stop (see Reopen): the failure that stopped the DB, nil while it
	// writes, and the id of the write transaction that failed.
	smu       sync.Mutex
	stopErr   error
	failedTx  int
	landed    bool         // see Landed
	reopening bool         // Reopen rewrites the file (see failStop)
	fi        os.FileInfo  // the file as opened (or last swapped in), for Reopen; guarded by smu
	size      atomic.Int64 // the file's high-water mark in bytes at the last commit (see Writable)
	// compactWanted: a commit was refused for MaxSize that the file's free
	// pages would have made room for; the flusher compacts the file.
	compactWanted atomic.Bool
	// lastTx is the file's transaction ID as this DB last committed or
	// opened it: a file found again by Reopen on a disk mounted anew must
	// be at least as new (see Reopen).
	lastTx atomic.Int64
	freeC  freeCache // the last free-space measure (see freecache.go)
	// markFormat: the file has an older format (OldestFormatVersion up);
	// the next commit sets its format to FormatVersion.
	markFormat atomic.Bool
	// fault, set by tests only, fails a commit before (after false) or
	// after (true) bbolt commits it, as a failed write or fsync would.
	fault     func(after bool) error
	lostTaken []*deferredEvent // deferred events the failed commit took; guarded by dmu

	now func() time.Time
}

// Open opens the journal at path, creating it (mode 0600, and its folder
// with mode 0700 if missing) unless opts.ReadOnly. It waits at most
// opts.Timeout for the file lock, then fails with ErrLocked. It refuses
// files that are not journals (ErrNotJournal), damaged ones (ErrCorrupt) and
// journals of another format version (ErrNewerFormat, ErrOldFormat); every
// error names the file.
// A read-only Open never changes the file's bytes.
func Open(path string, opts *Options) (*DB, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MinFree == 0 {
		o.MinFree = DefaultMinFree
	}
	db := &DB{path: path, opts: o, retention: o.Retention, now: time.Now, gatherCh: make(chan struct{}, 1)}
	if db.retention == 0 {
		db.retention = DefaultRetention
	}

	if !o.ReadOnly {
		dir := filepath.Dir(path)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, &Error{Op: "open", Path: path, Err: fmt.Errorf("create folder: %w", err)}
			}
		}
	}

	bdb, err := openLocked(path, o)
	if err != nil {
		return nil, err
	}
	db.bolt = bdb
	if err := db.checkFile(); err != nil {
		bdb.Close()
		return nil, err
	}
	db.fi, _ = os.Stat(path)
	db.noteTx()
	if !o.ReadOnly {
		os.Remove(path + ".compact") // left by a compaction that crashed
		db.pending = make(map[string]string)
		db.stop = make(chan struct{})
		db.flusherDone = make(chan struct{})
		go db.flusher()
	}
	return db, nil
}

// openLocked opens the bbolt file at path and returns it with its lock
// held.
func openLocked(path string, o Options) (*bolt.DB, error) {
	for attempt := 0; ; attempt++ {
		bdb, file, err := openBolt(path, o)
		if err != nil {
			return nil, err
		}
		// A process that waited for the lock while another compacted the
		// file got the lock of the replaced file: open the new one.
		if sameFile(file, path) || attempt == 5 {
			return bdb, nil
		}
		bdb.Close()
	}
}

// openBolt opens the bbolt file and maps its errors (and panics) onto the
// package's sentinels.
func openBolt(path string, o Options) (bdb *bolt.DB, file *os.File, err error) {
	if err := precheck(path, o.ReadOnly); err != nil {
		return nil, nil, err
	}
	bo := &bolt.Options{
		Timeout:        o.Timeout,
		ReadOnly:       o.ReadOnly,
		NoSync:         o.NoSync,
		NoFreelistSync: noFreelistSync(path),
		MaxSize:        int(max(o.MaxSize, 0)), // the exact guard (see checkSpace)
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := openFile(name, flag, perm) // per OS: owner-only ACL on Windows
			file = f
			return f, err
		},
	}
	if o.Timeout < 0 {
		bo.Timeout = time.Nanosecond
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if file != nil {
				file.Close() // releases the lock
			}
			bdb, file, err = nil, nil, &Error{Op: "open", Path: path, Err: corrupt("", 0, "%v", r)}
		}
	}()
	bdb, err = bolt.Open(path, 0o600, bo)
	if err == nil {
		if a := allocSize(o.MaxSize); a > 0 {
			bdb.AllocSize = a // before any write: see fileAfter
		}
		return bdb, file, nil
	}
	err = mapOpenError(path, o, err)
	return nil, nil, err
}

// FreelistSyncSize is the file size from which commits write bbolt's
// freelist. Under it they do not (NoFreelistSync: one page fewer per commit,
// a few percent of a durable append), and a writable Open rebuilds the
// freelist by walking every page of the file instead, which takes time in
// proportion to the file's size (BENCHMARKS.md has the figures). A journal
// of default retention stays far under it; a file that grows past it has its
// freelist rebuilt once at the next Open, and written from then on.
const FreelistSyncSize = 16 << 20

func noFreelistSync(path string) bool {
	fi, err := os.Stat(path)
	return err != nil || fi.Size() < FreelistSyncSize
}

// mapOpenError maps bbolt's Open errors onto the package's errors.
func mapOpenError(path string, o Options, err error) error {
	var e error
	var pe *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		e = &LockedError{Waited: o.Timeout, PIDs: lockHolders(path)}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch):
		e = &NotJournalError{Reason: err.Error()}
	case errors.As(err, &pe) && pe.Path == path:
		e = pe.Err // the path is the journal's
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission), errors.As(err, &pe):
		e = err
	default: // berrors.ErrChecksum, and what else bbolt finds wrong
		e = corrupt("", 0, "%v", err)
	}
	return &Error{Op: "open", Path: path, Err: e}
}

// sameFile reports whether the open file f is still the file at path.
func sameFile(f *os.File, path string) bool {
	if f == nil {
		return true
	}
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// checkFile checks the high-water mark against the file size, then the meta
// bucket (format and magic), and initialises a new journal.
func (db *DB) checkFile() error {
	fi, err := os.Stat(db.path)
	if err != nil {
		return openErr(db.path, err)
	}
	isNew, older := false, false
	err = db.view("open", func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return corrupt("", 0, "truncated: the file has %d bytes, its pages need %d", fi.Size(), tx.Size())
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return &NotJournalError{Reason: "a bbolt file without the journal's meta bucket"}
			}
			isNew = true
			return nil
		}
		if string(meta.Get(keyMagic)) != magic {
			return &NotJournalError{Reason: "a bbolt file with a foreign meta bucket"}
		}
		v, err := strconv.Atoi(string(meta.Get(keyFormat)))
		if err != nil || v < 1 {
			return corrupt("", 0, "unreadable format version %q", meta.Get(keyFormat))
		}
		if v < OldestFormatVersion || v > FormatVersion {
			return &FormatError{Version: v, Record: "file"}
		}
		older = v < FormatVersion
		return nil
	})
	if err != nil || db.opts.ReadOnly {
		return err
	}
	// A file of an older format this version reads (see
	// OldestFormatVersion) is one of the current format already; the
	// first commit marks it so (see commitBatch), in the transaction that
	// writes what the older format would not read.
	db.markFormat.Store(older)
	if !isNew {
		return nil
	}
	return db.update("open", func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyMagic, []byte(magic)); err != nil {
			return err
		}
		if err := meta.Put(keyFormat, []byte(strconv.Itoa(FormatVersion))); err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return createTail(tx)
	})
}

// Path returns the journal's file path as given to Open.
func (db *DB) Path() string { return db.path }

// ReadOnly reports whether the journal was opened read-only.
func (db *DB) ReadOnly() bool { return db.opts.ReadOnly }

// Close writes buffered progress and deferred events, stops the background
// flusher and releases the file. It returns the refusals of deferred events
// not reported yet (see AppendDeferred). Calling Close again returns nil;
// other methods then fail with ErrClosed.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	if db.stop != nil {
		close(db.stop)
		<-db.flusherDone
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	var err error
	if !db.opts.ReadOnly {
		err = db.flushLocked("close")
	}
	if cerr := db.bolt.Close(); cerr != nil && err == nil {
		err = db.wrap("close", cerr)
	}
	return err
}

// acquire takes the shared lock for operation op and checks the DB is open.
func (db *DB) acquire(op string) error {
	db.mu.RLock()
	if db.closed.Load() {
		db.mu.RUnlock()
		return db.wrap(op, ErrClosed)
	}
	return nil
}

func (db *DB) release() { db.mu.RUnlock() }

// wrap returns err as an *Error of op on this journal, unless it is nil or
// one already (or a join of them).
func (db *DB) wrap(op string, err error) error {
	switch e := err.(type) {
	case nil, *Error:
		return err
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			if _, ok := x.(*Error); !ok {
				return &Error{Op: op, Path: db.path, Err: err}
			}
		}
		return err
	}
	return &Error{Op: op, Path: db.path, Err: err}
}

// openErr is an error of Open, the OS's path errors unwrapped: the path is
// the journal's.
func openErr(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = pe.Err
	}
	return &Error{Op: "open", Path: path, Err: err}
}

// view runs fn in a read transaction, turning bbolt panics and memory faults
// (from damaged pages) into ErrCorrupt.
func (db *DB) view(op string, fn func(*bolt.Tx) error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = db.wrap(op, corrupt("", 0, "%v", r))
		}
	}()
	return db.wrap(op, db.bolt.View(fn))
}

// update runs fn in a write transaction (fsynced unless NoSync), turning
// panics into ErrCorrupt. An error of fn rolls the transaction back and is
// returned; a failure to commit it (a write or an fsync that failed), or a
// panic, stops the DB (see Reopen) and is returned as a *StoppedError. A
// stopped DB runs no transaction.
func (db *DB) update(op string, fn func(*bolt.Tx) error) (err error) {
	if err := db.stopped(op); err != nil {
		return err
	}
	var tx *bolt.Tx
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			txid := 0
			if tx != nil {
				txid = tx.ID()
				_ = tx.Rollback()
			}
			err = db.failStop(op, corrupt("", 0, "%v", r), txid)
		}
	}()
	tx, err = db.bolt.Begin(true)
	if err != nil {
		return db.failStop(op, err, 0)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return db.wrap(op, err)
	}
	txid := tx.ID()
	if db.fault != nil {
		if err := db.fault(false); err != nil {
			_ = tx.Rollback()
			return db.failStop(op, err, txid)
		}
	}
	if err := tx.Commit(); err != nil {
		if errors.Is(err, berrors.ErrMaxSizeReached) {
			// bbolt found no room under MaxSize for a page it had to
			// allocate, and rolled the transaction back before writing:
			// refused like a write checkSpace refuses.
			st := db.bolt.Stats()
			size := db.size.Load()
			db.wantCompact(st, size, int64(db.bolt.Info().PageSize))
			return db.wrap(op, &FullError{Limit: db.opts.MaxSize, Free: -1})
		}
		return db.failStop(op, err, txid)
	}
	db.lastTx.Store(int64(txid))
	if db.fault != nil {
		if err := db.fault(true); err != nil {
			return db.failStop(op, err, txid)
		}
	}
	db.commits.Add(1)
	if !db.opts.NoSync {
		db.synced.Add(1)
	}
	return nil
}

// WriteSnapshot writes a consistent copy of the journal file to w (a bbolt
// read transaction, so appends continue meanwhile) and returns the number of
// bytes written. The copy opens as a journal.
func (db *DB) WriteSnapshot(w io.Writer) (n int64, err error) {
	if err := db.acquire("snapshot"); err != nil {
		return 0, err
	}
	defer db.release()
	err = db.view("snapshot", func(tx *bolt.Tx) error {
		var werr error
		n, werr = tx.WriteTo(w)
		return werr
	})
	return n, err
}

// noteTx records the file's newest transaction ID (see lastTx). The
// caller holds mu or has not shared the DB yet.
func (db *DB) noteTx() {
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		db.lastTx.Store(int64(tx.ID()))
		return nil
	})
}
