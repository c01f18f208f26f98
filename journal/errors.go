package journal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors. Every error a DB method or Open returns is an *Error naming the
// journal file and the operation; its Err is one of these sentinels, a type
// below that wraps one (*CorruptError, *LockedError, *FormatError,
// *NotJournalError, *InvalidEventError), or an error of the operating system. Test with
// errors.Is and errors.As; never with the message, which is for people.
var (
	// ErrLocked: another process holds the journal's file lock and did not
	// release it within Options.Timeout. The error is a *LockedError.
	ErrLocked = errors.New("journal is locked: another process holds it")
	// ErrNotJournal: the file is not a journal (not a bbolt file, or a bbolt
	// file written by something else). The error is a *NotJournalError.
	ErrNotJournal = errors.New("not a journal")
	// ErrCorrupt: the file is a journal but damaged (truncated, bad pages,
	// undecodable records, broken invariants). The error is a
	// *CorruptError.
	ErrCorrupt = errors.New("journal is corrupt")
	// ErrNewerFormat: the journal, or one of its records, was written by a
	// newer version of this package; it is refused rather than misread. The
	// error is a *FormatError.
	ErrNewerFormat = errors.New("journal has a newer format version")
	// ErrOldFormat: the journal was written by a development version of
	// this package, in a format this version no longer reads. The error is
	// a *FormatError.
	ErrOldFormat = errors.New("journal has an older format version")
	// ErrReadOnly: a write was attempted on a journal opened read-only.
	ErrReadOnly = errors.New("journal is open read-only")
	// ErrClosed: the DB was used after Close.
	ErrClosed = errors.New("journal is closed")
	// ErrInvalidEvent: Append refused an event that does not fit the slot's
	// current state (nothing was written). The error is an
	// *InvalidEventError.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrStopped: an earlier write, fsync or commit of this DB failed, so
	// it refuses every write until Reopen (fail-stop: see Reopen). The error
	// is a *StoppedError that also wraps the failure's cause, so
	// errors.Is(err, syscall.ENOSPC) and the like hold.
	ErrStopped = errors.New("journal stopped after a failed write; it must be reopened")
	// ErrFull: the write would grow the file past Options.MaxSize, or
	// into the last Options.MinFree bytes of its file system. Nothing was
	// written and the DB goes on (it is not stopped). The error is a
	// *FullError.
	ErrFull = errors.New("journal is full")
)

// StoppedError is the error of a write to a DB that stopped after a failed
// write: Err is the failure that stopped it (an error of the operating
// system, typically: EIO, ENOSPC, EROFS). errors.Is(err, ErrStopped) holds
// for it, and so does errors.Is(err, cause) for Err's chain.
type StoppedError struct {
	Err error
}

func (e *StoppedError) Error() string {
	return ErrStopped.Error() + ": " + e.Err.Error()
}

func (e *StoppedError) Unwrap() []error { return []error{ErrStopped, e.Err} }

// FullError says why a write was refused for space: the file would pass
// Options.MaxSize (Free is then -1), or its file system would keep fewer than
// Options.MinFree bytes.
type FullError struct {
	Size  int64 // the file's size in bytes after the write; 0 when bbolt refused it (unknown)
	Limit int64 // Options.MaxSize, or Options.MinFree
	Free  int64 // bytes free on the file system after the write; -1 for the size limit
}

func (e *FullError) Error() string {
	if e.Free < 0 && e.Size == 0 {
		return fmt.Sprintf("%s: the write would grow the file past its limit of %d bytes (Options.MaxSize)", ErrFull, e.Limit)
	}
	if e.Free < 0 {
		return fmt.Sprintf("%s: the write would grow the file to %d bytes, over its limit of %d (Options.MaxSize)", ErrFull, e.Size, e.Limit)
	}
	return fmt.Sprintf("%s: the write would leave %d bytes free on the disk, under the %d kept free (Options.MinFree)", ErrFull, e.Free, e.Limit)
}

func (e *FullError) Unwrap() error { return ErrFull }

// Error is the error of an operation on a journal file, in the manner of
// *os.PathError: what was done, to which file, and what went wrong.
type Error struct {
	Op   string // the operation: "open", "append", "state", "events", "verify", "compact"...
	Path string // the journal file, as given to Open
	Err  error  // what went wrong (see the Errors above)
}

func (e *Error) Error() string {
	return "journal: " + e.Path + ": " + e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// CorruptError says what is damaged in a journal file. It names records by
// slot, sequence number and kind and never quotes their contents, which
// hold tokens. errors.Is(err, ErrCorrupt) holds for it.
type CorruptError struct {
	Slot   string // the slot whose records are damaged; "" if not one slot's
	Seq    uint64 // the damaged event's sequence number; 0 if not one event's
	Detail string // what is wrong
}

func (e *CorruptError) Error() string { return ErrCorrupt.Error() + ": " + e.Text() }

// Text says what is damaged, as Error does without its "journal is
// corrupt" prefix: the slot, the event, the detail.
func (e *CorruptError) Text() string {
	var s string
	if e.Slot != "" {
		s += "slot " + strconv.Quote(e.Slot) + ": "
	}
	if e.Seq != 0 {
		s += "event " + strconv.FormatUint(e.Seq, 10) + ": "
	}
	return s + e.Detail
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// corrupt returns a *CorruptError whose Detail is formatted from format and
// args; args must not hold record contents.
func corrupt(slot string, seq uint64, format string, args ...any) *CorruptError {
	return &CorruptError{Slot: slot, Seq: seq, Detail: fmt.Sprintf(format, args...)}
}

// at returns err with slot and seq filled in where err is a *CorruptError
// that does not name them yet; other errors are returned as they are.
func at(err error, slot string, seq uint64) error {
	var ce *CorruptError
	if !errors.As(err, &ce) {
		return err
	}
	c := *ce
	if c.Slot == "" {
		c.Slot = slot
	}
	if c.Seq == 0 {
		c.Seq = seq
	}
	return &c
}

// NotJournalError says why a file is not a journal.
// errors.Is(err, ErrNotJournal) holds for it.
type NotJournalError struct {
	Reason string // "not a bbolt database file", "the file is empty"...
}

func (e *NotJournalError) Error() string { return ErrNotJournal.Error() + ": " + e.Reason }

func (e *NotJournalError) Unwrap() error { return ErrNotJournal }

// LockedError is the error of an Open that did not get the file lock
// within Options.Timeout. errors.Is(err, ErrLocked) holds for it.
type LockedError struct {
	// Waited is how long Open waited for the lock.
	Waited time.Duration
	// PIDs are the processes holding a lock on the file as the operating
	// system lists them (Linux: /proc/locks), best effort: empty when they
	// cannot be found. It may include the calling process (another DB of
	// the same file).
	PIDs []int
}

func (e *LockedError) Error() string {
	msg := ErrLocked.Error()
	if len(e.PIDs) > 0 {
		pids := make([]string, len(e.PIDs))
		for i, p := range e.PIDs {
			pids[i] = strconv.Itoa(p)
		}
		msg += " (pid " + strings.Join(pids, ", ") + ")"
	}
	return fmt.Sprintf("%s; waited %v for the file lock", msg, e.Waited)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// FormatError is the error for a file or record whose format version this
// package does not read: errors.Is(err, ErrNewerFormat) holds for a newer
// version, errors.Is(err, ErrOldFormat) for an older one.
type FormatError struct {
	Version int    // the version found
	Record  string // "file", or the kind of record ("event record")
}

func (e *FormatError) Error() string {
	if e.Version < OldestFormatVersion {
		return fmt.Sprintf("%s: the %s was written by a development version of format %d, this program reads formats %d to %d only; export it with that version",
			ErrOldFormat, e.Record, e.Version, OldestFormatVersion, FormatVersion)
	}
	return fmt.Sprintf("%s: the %s has format version %d, this program reads up to %d", ErrNewerFormat, e.Record, e.Version, FormatVersion)
}

func (e *FormatError) Unwrap() error {
	if e.Version < OldestFormatVersion {
		return ErrOldFormat
	}
	return ErrNewerFormat
}

// InvalidEventError is Append's refusal of an event that does not fit its
// slot's state. errors.Is(err, ErrInvalidEvent) holds for it.
type InvalidEventError struct {
	Slot   string
	Kind   Kind
	Reason string // why it does not fit
	// Earlier is set when the event was not written because an event of the
	// same slot given to AppendDeferred before it was refused when written
	// (the caller's view of the slot was wrong): it is that refusal.
	Earlier error
}

func (e *InvalidEventError) Error() string {
	msg := fmt.Sprintf("%s: slot %q: %s: %s", ErrInvalidEvent, e.Slot, e.Kind, e.Reason)
	var ie *InvalidEventError
	switch {
	case errors.As(e.Earlier, &ie):
		msg += fmt.Sprintf(" (the %s: %s)", ie.Kind, ie.Reason)
	case e.Earlier != nil:
		msg += " (" + e.Earlier.Error() + ")"
	}
	return msg
}

func (e *InvalidEventError) Unwrap() []error {
	if e.Earlier == nil {
		return []error{ErrInvalidEvent}
	}
	return []error{ErrInvalidEvent, e.Earlier}
}
