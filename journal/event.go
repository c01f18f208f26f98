package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"
)

// FormatVersion is the version of the record and file format this package
// writes (the layout is in doc.go). Files and records of a higher version
// are refused with ErrNewerFormat rather than misread; files older than
// OldestFormatVersion, written by development versions before the first
// release, with ErrOldFormat.
const FormatVersion = 4

// OldestFormatVersion is the oldest file format this package reads. A file
// of format 3 is a file of format 4 whose claims are all in the job and
// claim indexes (format 4 writes a claim's index entries when its
// slot-index entry leaves the slotmeta record); its first commit by this
// version marks it format 4, so that a program that reads format 3 only
// refuses it from then on.
const OldestFormatVersion = 3

// Kind names what an event records. The comment beside each constant lists
// the Event fields it uses.
type Kind string

// The event kinds; docs/DESIGN.md describes the event model.
const (
	KindRegistered        Kind = "registered"         // URL, Stage, Nickname, Token, DisplayName, Project, StageName
	KindClaimed           Kind = "claimed"            // Job, Input (wire form, nil = null data)
	KindProgress          Kind = "progress"           // Progress (Job is filled in with the held job)
	KindCheckpoint        Kind = "checkpoint"         // Job, Checkpoint
	KindCompletionPending Kind = "completion-pending" // Job, Output
	KindCompletionSettled Kind = "completion-settled" // Job, Outcome (OutcomeAccepted/AppliedEarlier/Orphaned)
	KindFlagPending       Kind = "flag-pending"       // Job, Reason (set when the client flagged data it could not decode)
	KindFlagSettled       Kind = "flag-settled"       // Job, Outcome (OutcomeAccepted/AppliedEarlier/Failed/Orphaned), Reason
	KindReleased          Kind = "released"           // Job, Reason (job handed back: release on restart, failed command, bye...)
	KindByePending        Kind = "bye-pending"        //
	KindClosed            Kind = "closed"             // session over (bye applied)
	KindSessionLost       Kind = "session-lost"       // Reason; token no longer valid; held job and pending completion dropped (completion -> orphan)
	KindReplayed          Kind = "replayed"           // Report (JSON)
	KindOrphanResolved    Kind = "orphan-resolved"    // OrphanSeq, Outcome ("resubmitted","exported","acknowledged")
	KindFailed            Kind = "failed"             // Job, Reason (a worker command failed; informational)
	KindRefused           Kind = "refused"            // Job (0 = not known), Reason: a job assigned at a claim that the client could not take, handed back without being held (informational)
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
		KindSessionLost, KindReplayed, KindOrphanResolved, KindFailed, KindRefused, KindDrained:
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
// format (a *FormatError), of an unknown kind, without a slot or sequence
// number, or that are not valid JSON (a *CorruptError). It never panics.
func DecodeEvent(data []byte) (Event, error) {
	e, ok := decodeEventFast(data)
	if !ok {
		e = Event{}
		if err := strictUnmarshal(data, &e); err != nil {
			return Event{}, corrupt("", 0, "event record: %v", err)
		}
	}
	if e.Version > FormatVersion {
		return Event{}, &FormatError{Version: e.Version, Record: "event record"}
	}
	if e.Version < 1 {
		return Event{}, corrupt("", e.Seq, "event record has format version %d", e.Version)
	}
	if e.Seq == 0 {
		return Event{}, corrupt(e.Slot, 0, "event record has no sequence number")
	}
	if e.Slot == "" {
		return Event{}, corrupt("", e.Seq, "event record has no slot")
	}
	if !KnownKind(e.Kind) {
		return Event{}, corrupt(e.Slot, e.Seq, "event record has unknown kind %q", e.Kind)
	}
	if len(e.Report) > 0 && !json.Valid(e.Report) {
		return Event{}, corrupt(e.Slot, e.Seq, "event record has an invalid report")
	}
	return e, nil
}

// strictUnmarshal decodes exactly one JSON object into v.
func strictUnmarshal(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return errors.New("not a JSON object")
	}
	// Unmarshal checks the whole input first: trailing data is an error.
	return json.Unmarshal(data, v)
}
