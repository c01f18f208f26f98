package postmortem

import "errors"

// Errors of this package; test with errors.Is. Reading a damaged journal gives the
// journal package's errors (journal.ErrCorrupt, journal.ErrNewerFormat), wrapped.
var (
	// ErrNoSuchSlot: InspectOptions.Slot names no slot of the journal.
	ErrNoSuchSlot = errors.New("no such slot")
	// ErrNoSuchJob: InspectOptions.Job appears in no event and no orphan of the journal.
	ErrNoSuchJob = errors.New("no event about that job")
	// ErrNothingSelected: ExportOptions sets neither Orphans nor All.
	ErrNothingSelected = errors.New("choose what to export: orphans or all")
)
