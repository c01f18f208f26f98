// Package journal is the worker's write-ahead log: a bbolt file holding,
// for each slot (one worker identity: one token, at most one job), the
// sequence of events that happened to it and its current state.
//
// Every client action whose loss would lose work or leave the tracker in an
// unknown state is appended here before its request leaves the machine. On
// restart, recovery (package replay) reads each slot's State, not its
// history: the state is updated in the same transaction as each event, and
// always equals the Fold of the slot's events, so it can be rebuilt and
// checked (Verify) but never needs to be.
//
// # Events and state
//
// An Event carries a format version, a sequence number (assigned by Append,
// increasing across the whole journal), a time, a slot, a Kind and the
// fields its kind uses. Fold is the state machine; Append validates an event
// against the current state and refuses (ErrInvalidEvent) what does not fit:
// a completion without a held job of that number, a claim while a
// completion is pending, a second registration, and so on.
//
// A completion settled as orphaned, or pending when a session-lost event
// drops it, becomes an Orphan: its output is kept, never pruned, until an
// orphan-resolved event names it.
//
// # Durability classes
//
//   - Durable: Append (registration, checkpoint, completion with its
//     output, flag, bye, settle records, session-lost, replayed...; a claim
//     too, unless deferred). The
//     transaction is fsynced before Append returns. Concurrent Appends share
//     one transaction and its fsyncs (group commit).
//   - Deferred: AppendDeferred. Validated at once and written at the start
//     of the next commit (a durable Append, Flush, the background flusher
//     within Options.ProgressInterval, Close), before that commit's own
//     events; it never waits for the disk, and a crash may lose it. State
//     includes it at once. Only for events whose loss is safe (the client
//     defers claims, nothing else).
//   - Buffered: AppendProgress. Latest text wins per slot; it is kept in
//     memory and written in the transaction of the next durable Append or by
//     a background flusher within Options.ProgressInterval, and by Close. It
//     never waits for the disk; a crash may lose the last interval of
//     progress text (and deferred events), and nothing else.
//
// Options.NoSync turns every class into "written when the OS likes it" and
// is for tests and benchmarks only.
//
// # Bounded size
//
// A slot keeps the history of its last Options.Retention jobs (default
// DefaultRetention): older events are folded into the slot's base state and
// deleted in small chunks (at most PruneBudget events of a slot every 16
// appends to it, and whenever its newest events move into its slot index),
// so appends stay cheap. A run of progress events with
// nothing else between them keeps only the last. Since
// bbolt never shrinks a file, the background flusher compacts it (Compact:
// copy into a new file, fsync, rename over the old one, under the lock) when
// free pages pass CompactFreeRatio of a file over CompactMinSize, or when a
// write was refused for Options.MaxSize that the free pages would have made
// room for (a large record needs contiguous free pages, and freed ones are
// scattered).
//
// Only the newest checkpoint of a job is kept: each one deletes the one
// before (the state does not change), so a job that checkpoints megabytes
// in a loop does not fill the disk. Options.MaxSize (DefaultMaxSize) bounds
// the file and Options.MinFree (DefaultMinFree) keeps room on its file
// system: a commit that would pass either is refused with ErrFull before
// anything is written, and the DB goes on. The size check before a commit
// estimates the pages it needs; bbolt's own limit (bolt.Options.MaxSize,
// checked as it allocates each page) makes the bound exact, and the file
// grows in steps of a sixteenth of MaxSize (at most bbolt's 16 MiB), so
// that a limit between two powers of two can be filled.
//
// # Disk faults: fail-stop
//
// A commit that fails (a write, an fsync, the file's growth) stops the DB:
// every later write fails with ErrStopped, wrapping the cause, and the file
// handle is closed. Reopen opens the file afresh, drops the caches, and
// rewrites it through a new file, so that what it holds is on disk whatever
// the failed fsync left in the kernel's cache; failstop.go says why a
// failed fsync is never retried on the same handle. Writable tells, without
// writing, whether a write can succeed now (stopped, full, read-only).
//
// # File layout
//
// Keys that are sequence numbers are 8-byte big-endian, so cursor order is
// append order. Values are JSON unless stated.
//
//	meta      "magic" -> "distcompute-journal", "format" -> FormatVersion (decimal text)
//	events    seq -> Event
//	tail      seq -> Event, the newest events while they fit inline (a
//	          quarter page); every seq here is above every seq in events;
//	          the bucket's sequence counter assigns seqs
//	states    slot -> the slot's current State
//	bases     slot -> State folded from the slot's pruned events (absent: zero State)
//	slotmeta  slot -> counters (events of the slot, claims kept, prune point,
//	          appends since pruning), then the slot's newest events (up to
//	          16: seq and a kind code), not yet in slotidx
//	slotidx   slot ++ NUL ++ seq -> kind: each slot's older events, in order
//	claims    slot ++ NUL ++ seq -> job number (8 bytes), one per claim still kept
//	jobs      job number (8 bytes) ++ seq -> slot name, for claims and orphan
//	          resolutions (a job's other events follow its claim in its slot)
//	          A claim gets its claims and jobs entries when its slot's
//	          newest events move from slotmeta into slotidx, or when pruning
//	          counts the slot's claims, not in its own commit (format 4;
//	          format 3 wrote them at once and is read as format 4)
//	orphans   seq of the completion-pending event -> Orphan
//
// Per-slot data lives in shared buckets, not a bucket per slot, so that a
// transaction carrying many slots' events (group commit) writes few pages.
// For the same reason a slot's newest events are listed in its slotmeta
// record, which every append to the slot rewrites anyway and which all
// slots' records share a few pages for, and move into slotidx (a leaf page
// per slot) 16 at a time; their claims enter the claims and jobs indexes
// then too, so that a job cycle's claim does not rewrite the last leaf of
// each index (two of the commit's pages, and most of what it allocates).
// Events with a Job filter find the claims still listed in slotmeta by
// reading them. And a lone append's event goes to the tail, an
// inline bucket inside the root page that every commit rewrites anyway, so
// that it writes one data page instead of three (the last events leaf, the
// branch above it and the root); the commit whose event does not fit moves
// the tail into events. A file of a format version outside
// OldestFormatVersion to FormatVersion is refused.
//
// # Errors
//
// Every error is an *Error naming the file and the operation, in the manner
// of *os.PathError; test it with errors.Is and errors.As, never by its
// message. Bad files are refused at Open with ErrNotJournal (garbage, a
// bbolt file of something else), ErrCorrupt (truncated or damaged: a
// *CorruptError saying what), ErrNewerFormat or ErrOldFormat (a
// *FormatError). Before bbolt may map or walk a file, Open checks its page
// structure with plain reads (meta pages, freelist, every page of the tree:
// see precheck.go), so that no file makes bbolt panic in a goroutine of its
// own, fault, loop or allocate without bound; Verify repeats the check. What
// damage remains (a record's contents) is found by Verify, and bbolt panics
// and memory faults on it are recovered at the package boundary and
// returned as ErrCorrupt. No error and no Verify finding quotes
// a record: records hold tokens. A DB is safe for concurrent use by many
// goroutines; one process at a time may open a file for writing (ErrLocked,
// a *LockedError listing the holders, after Options.Timeout), any number
// read-only.
package journal
