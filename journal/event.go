package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// FormatVersion is the version of the record and file format this package
// writes. Records and files with a higher version are refused with
// ErrNewerFormat rather than misread.
//
// Version 2 lists each slot's newest events in its slotmeta record before
// they move into slotidx (see doc.go). Version 3 keeps the newest events in
// the small tail bucket before they move into events (see tail.go).
// Files of versions 1 and 2 are read as they are, and marked version 3
// (given a tail bucket) when opened for writing.
const FormatVersion = 3

// Kind names what an event records. The comment beside each constant lists
// the Event fields it uses.
type Kind string

// The event kinds. See DESIGN.md, "The event model".
const (
	KindRegistered        Kind = "registered"         // URL, Stage, Nickname, Token, DisplayName, Project, StageName
	KindClaimed           Kind = "claimed"            // Job, Input (wire form, nil = null data)
	KindProgress          Kind = "progress"           // Progress (Job is filled in with the held job)
	KindCheckpoint        Kind = "checkpoint"         // Job, Checkpoint
	KindCompletionPending Kind = "completion-pending" // Job, Output
	KindCompletionSettled Kind = "completion-settled" // Job, Outcome (OutcomeAccepted/AppliedEarlier/Orphaned)
	KindFlagPending       Kind = "flag-pending"       // Job
	KindFlagSettled       Kind = "flag-settled"       // Job, Outcome (OutcomeAccepted/AppliedEarlier/Failed/Orphaned), Reason
	KindReleased          Kind = "released"           // Job, Reason (job handed back: release on restart, failed command, bye...)
	KindByePending        Kind = "bye-pending"        //
	KindClosed            Kind = "closed"             // session over (bye applied)
	KindSessionLost       Kind = "session-lost"       // Reason; token no longer valid; held job and pending completion dropped (completion -> orphan)
	KindReplayed          Kind = "replayed"           // Report (JSON)
	KindOrphanResolved    Kind = "orphan-resolved"    // OrphanSeq, Outcome ("resubmitted","exported","acknowledged")
	KindFailed            Kind = "failed"             // Job, Reason (a worker command failed; informational)
	KindDrained           Kind = "drained"            // Reason (why the worker stopped claiming: "SIGTERM", a cloud notice...; informational)
)

// Outcomes of settle events (KindCompletionSettled, KindFlagSettled) and of
// KindOrphanResolved.
const (
	OutcomeAccepted       = "accepted"        // the tracker answered 200
	OutcomeAppliedEarlier = "applied-earlier" // a retry was refused because an earlier attempt was applied
	OutcomeOrphaned       = "orphaned"        // the worker was gone: the output is kept as an Orphan
	OutcomeFailed         = "failed"          // the tracker refused the flag; the job is still held

	OutcomeResubmitted  = "resubmitted"  // orphan-resolved: the output was completed again for a new claim
	OutcomeExported     = "exported"     // orphan-resolved: an operator exported the output
	OutcomeAcknowledged = "acknowledged" // orphan-resolved: an operator dropped it knowingly
)

// KnownKind reports whether k is one of the kinds this version understands.
func KnownKind(k Kind) bool {
	switch k {
	case KindRegistered, KindClaimed, KindProgress, KindCheckpoint,
		KindCompletionPending, KindCompletionSettled, KindFlagPending,
		KindFlagSettled, KindReleased, KindByePending, KindClosed,
		KindSessionLost, KindReplayed, KindOrphanResolved, KindFailed, KindDrained:
		return true
	}
	return false
}

// Event is one record of a slot's history. Version, Seq and Time are
// assigned by Append; the other fields are the caller's, and which of them a
// kind uses is listed beside the Kind constants. Events are stored as JSON
// so that a person can read a journal with any bbolt tool.
//
// Token is a secret: use Redacted before displaying or logging an Event.
type Event struct {
	Version int       `json:"v"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Slot    string    `json:"slot"`
	Kind    Kind      `json:"kind"`

	URL         string `json:"url,omitempty"`
	Stage       string `json:"stage,omitempty"`
	Nickname    string `json:"nickname,omitempty"`
	Token       string `json:"token,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Project     string `json:"project,omitempty"`
	StageName   string `json:"stage_name,omitempty"`

	Job        int     `json:"job,omitempty"`
	Input      *string `json:"input,omitempty"`
	Output     *string `json:"output,omitempty"`
	Progress   string  `json:"progress,omitempty"`
	Checkpoint []byte  `json:"checkpoint,omitempty"`

	Outcome   string          `json:"outcome,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	OrphanSeq uint64          `json:"orphan_seq,omitempty"`
	Report    json.RawMessage `json:"report,omitempty"`
}

// Redacted returns a copy of e fit for display: the token is cut to its
// first 8 characters followed by "…".
func (e Event) Redacted() Event {
	e.Token = RedactToken(e.Token)
	return e
}

// RedactToken cuts a token to its first 8 characters followed by "…", the
// form in which tokens may be displayed or logged. Short tokens are cut too,
// so a redacted value is never the whole secret (except the empty string).
func RedactToken(tok string) string {
	if tok == "" {
		return ""
	}
	n := 0
	for i := range tok {
		if n == 8 {
			return tok[:i] + "…"
		}
		n++
	}
	if n <= 8 && n > 1 {
		// Never show a short token whole.
		_, size := utf8.DecodeLastRuneInString(tok)
		return tok[:len(tok)-size] + "…"
	}
	return "…"
}

// String formats the event on one line, with the token redacted.
func (e Event) String() string {
	b, _ := json.Marshal(e.Redacted())
	return string(b)
}

// DecodeEvent decodes one stored record. It refuses records of a newer
// format (ErrNewerFormat), of an unknown kind, without a slot or sequence
// number, or that are not valid JSON (ErrCorrupt). It never panics.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if err := strictUnmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: event record: %v", ErrCorrupt, err)
	}
	if e.Version > FormatVersion {
		return Event{}, fmt.Errorf("%w: event record has format version %d, this program reads up to %d", ErrNewerFormat, e.Version, FormatVersion)
	}
	if e.Version < 1 {
		return Event{}, fmt.Errorf("%w: event record has format version %d", ErrCorrupt, e.Version)
	}
	if e.Seq == 0 {
		return Event{}, fmt.Errorf("%w: event record has no sequence number", ErrCorrupt)
	}
	if e.Slot == "" {
		return Event{}, fmt.Errorf("%w: event record %d has no slot", ErrCorrupt, e.Seq)
	}
	if !KnownKind(e.Kind) {
		return Event{}, fmt.Errorf("%w: event record %d has unknown kind %q", ErrCorrupt, e.Seq, e.Kind)
	}
	if len(e.Report) > 0 && !json.Valid(e.Report) {
		return Event{}, fmt.Errorf("%w: event record %d has an invalid report", ErrCorrupt, e.Seq)
	}
	return e, nil
}

// strictUnmarshal decodes exactly one JSON object into v.
func strictUnmarshal(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("not a JSON object")
	}
	// Unmarshal checks the whole input first: trailing data is an error.
	return json.Unmarshal(data, v)
}
