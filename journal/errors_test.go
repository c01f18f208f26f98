package journal_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/journal"
)

// Each error type reads as one lowercase message with one "journal: PATH:
// OP:" prefix, and unwraps to its sentinel.
func TestErrorMessages(t *testing.T) {
	const path = "/v/j.db"
	checkpoint := &journal.InvalidEventError{Slot: "s", Kind: journal.KindCheckpoint, Reason: "no job is held"}
	for _, tc := range []struct {
		err      error
		sentinel error
		want     string
	}{
		{&journal.CorruptError{Slot: "s", Seq: 7, Detail: "event record: not a JSON object"}, journal.ErrCorrupt,
			`journal: /v/j.db: events: journal is corrupt: slot "s": event 7: event record: not a JSON object`},
		{&journal.CorruptError{Detail: "both bbolt meta pages are damaged"}, journal.ErrCorrupt,
			`journal: /v/j.db: events: journal is corrupt: both bbolt meta pages are damaged`},
		{&journal.LockedError{Waited: time.Second, PIDs: []int{42, 43}}, journal.ErrLocked,
			`journal: /v/j.db: events: journal is locked: another process holds it (pid 42, 43); waited 1s for the file lock`},
		{&journal.LockedError{Waited: time.Second}, journal.ErrLocked,
			`journal: /v/j.db: events: journal is locked: another process holds it; waited 1s for the file lock`},
		{&journal.FormatError{Version: journal.FormatVersion + 1, Record: "file"}, journal.ErrNewerFormat,
			fmt.Sprintf(`journal: /v/j.db: events: journal has a newer format version: the file has format version %d, this program reads up to %d`, journal.FormatVersion+1, journal.FormatVersion)},
		{&journal.FormatError{Version: 2, Record: "file"}, journal.ErrOldFormat,
			fmt.Sprintf(`journal: /v/j.db: events: journal has an older format version: the file was written by a development version of format 2, this program reads formats %d to %d only; export it with that version`, journal.OldestFormatVersion, journal.FormatVersion)},
		{&journal.NotJournalError{Reason: "the file is empty"}, journal.ErrNotJournal,
			`journal: /v/j.db: events: not a journal: the file is empty`},
		{checkpoint, journal.ErrInvalidEvent,
			`journal: /v/j.db: events: invalid event: slot "s": checkpoint: no job is held`},
		{&journal.InvalidEventError{Slot: "s", Kind: journal.KindClaimed, Reason: "not written", Earlier: checkpoint}, journal.ErrInvalidEvent,
			`journal: /v/j.db: events: invalid event: slot "s": claimed: not written (the checkpoint: no job is held)`},
	} {
		err := &journal.Error{Op: "events", Path: path, Err: tc.err}
		if got := err.Error(); got != tc.want {
			t.Errorf("message\n got %s\nwant %s", got, tc.want)
		}
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("%v does not wrap %v", err, tc.sentinel)
		}
	}
}
