package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// State is a slot's current state, the fold of its events. The journal
// stores it beside the events, updated in the same transaction, so recovery
// reads it without scanning history.
type State struct {
	Slot        string          `json:"slot"`
	Session     *Session        `json:"session,omitempty"`    // nil: never registered, closed, or lost
	Job         *Job            `json:"job,omitempty"`        // held job, nil if none
	Completion  *Completion     `json:"completion,omitempty"` // pending completion, nil if none
	FlagPending bool            `json:"flag_pending,omitempty"`
	ByePending  bool            `json:"bye_pending,omitempty"`
	Closed      bool            `json:"closed,omitempty"`
	Progress    string          `json:"progress,omitempty"` // last progress text of the held job (or of the idle worker); cleared when the job changes
	LastSeq     uint64          `json:"last_seq,omitempty"`
	LastTime    time.Time       `json:"last_time,omitzero"`
	LastReport  json.RawMessage `json:"last_report,omitempty"` // Report of the last replayed event
}

// Session is a registration with the tracker: where, as whom, and the
// token. Token is a secret and is never logged whole.
type Session struct {
	URL         string    `json:"url,omitempty"`
	Stage       string    `json:"stage,omitempty"`
	Nickname    string    `json:"nickname,omitempty"`
	Token       string    `json:"token,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	Project     string    `json:"project,omitempty"`
	StageName   string    `json:"stage_name,omitempty"`
	Since       time.Time `json:"since,omitzero"`
}

// Job is a claimed job: its number, the stage it was claimed at, its input
// in wire form (nil: the tracker served null data) and the last checkpoint
// recorded for it.
type Job struct {
	Number     int       `json:"number"`
	Stage      string    `json:"stage,omitempty"`
	Input      *string   `json:"input,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	Checkpoint []byte    `json:"checkpoint,omitempty"`
}

// Completion is a completion recorded (completion-pending) and not yet
// settled: the job it completes, the output in wire form, and the sequence
// number and time of its completion-pending event.
type Completion struct {
	Job    Job       `json:"job"`
	Output string    `json:"output"`
	Seq    uint64    `json:"seq"`
	Since  time.Time `json:"since,omitzero"`
}

// Orphan is completed output the tracker never accepted: its completion was
// settled as orphaned, or the session was lost while it was pending. Orphans
// are kept (and never pruned) until an orphan-resolved event names their Seq.
// Seq is the sequence number of the completion-pending event that recorded
// the output; Time and Reason are those of the event that orphaned it.
type Orphan struct {
	Seq    uint64    `json:"seq"`
	Slot   string    `json:"slot"`
	Stage  string    `json:"stage,omitempty"`
	Job    int       `json:"job"`
	Input  *string   `json:"input,omitempty"`
	Output string    `json:"output"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason,omitempty"`
}

// Fold applies e to s and returns the new state. It is the journal's state
// machine: pure, it validates nothing and never modifies what s points to
// (Append validates before it writes). A slot's stored state always equals
// the fold of its events, starting from the zero State.
func Fold(s State, e Event) State {
	s.Slot = e.Slot
	s.LastSeq = e.Seq
	s.LastTime = e.Time
	switch e.Kind {
	case KindRegistered:
		s.Session = &Session{
			URL: e.URL, Stage: e.Stage, Nickname: e.Nickname, Token: e.Token,
			DisplayName: e.DisplayName, Project: e.Project, StageName: e.StageName,
			Since: e.Time,
		}
		s.Closed = false
		s.ByePending = false
	case KindClaimed:
		j := &Job{Number: e.Job, Input: cloneString(e.Input), Since: e.Time}
		if s.Session != nil {
			j.Stage = s.Session.Stage
		}
		s.Job = j
		s.FlagPending = false
		s.Progress = "" // text logged for another job is not this job's
	case KindProgress:
		s.Progress = e.Progress
	case KindCheckpoint:
		if s.Job != nil && s.Job.Number == e.Job {
			j := *s.Job
			j.Checkpoint = bytes.Clone(e.Checkpoint)
			s.Job = &j
		}
	case KindCompletionPending:
		c := &Completion{Seq: e.Seq, Since: e.Time}
		if e.Output != nil {
			c.Output = *e.Output
		}
		if s.Job != nil {
			c.Job = *s.Job
		} else {
			c.Job = Job{Number: e.Job}
		}
		s.Completion = c
		s.Job = nil
		s.Progress = ""
	case KindCompletionSettled:
		s.Completion = nil
	case KindFlagPending:
		s.FlagPending = true
	case KindFlagSettled:
		s.FlagPending = false
		if e.Outcome != OutcomeFailed {
			s.Job = nil // a flag that was applied releases the job
			s.Progress = ""
		}
	case KindReleased:
		s.Job = nil
		s.FlagPending = false
		s.Progress = ""
	case KindByePending:
		s.ByePending = true
	case KindClosed:
		s.Session = nil
		s.Job = nil
		s.FlagPending = false
		s.ByePending = false
		s.Closed = true
		s.Progress = ""
	case KindSessionLost:
		s.Session = nil
		s.Progress = ""
		s.Job = nil
		s.Completion = nil
		s.FlagPending = false
		s.ByePending = false
	case KindReplayed:
		s.LastReport = bytes.Clone(e.Report)
	case KindOrphanResolved, KindFailed, KindRefused, KindDrained:
		// Informational for the slot's state.
	}
	return s
}

// checkEvent is the state machine's preconditions: it says why e does not
// fit s ("" if it does), so that Append refuses what Fold must never see.
// It fills in e.Job where the kind refers to the held job (or to the
// pending completion) and the caller left it zero.
func checkEvent(s State, e *Event) string {
	fill := func() {
		if e.Job == 0 {
			if s.Job != nil {
				e.Job = s.Job.Number
			} else if s.Completion != nil {
				e.Job = s.Completion.Job.Number
			}
		}
	}
	needSession := func() string {
		if s.Session == nil {
			if s.Closed {
				return "the session is closed"
			}
			return "the slot has no session"
		}
		return ""
	}
	needJob := func() string {
		if s.Job == nil {
			return "no job is held"
		}
		if s.Job.Number != e.Job {
			return fmt.Sprintf("the held job is %d", s.Job.Number)
		}
		return ""
	}
	switch e.Kind {
	case KindRegistered:
		if s.Session != nil {
			return "the slot already has a session (record session-lost or closed first)"
		}
		if s.Job != nil || s.Completion != nil {
			return "the slot still holds a job or a pending completion"
		}
		if e.Token == "" {
			return "no token"
		}
	case KindClaimed:
		if r := needSession(); r != "" {
			return r
		}
		switch {
		case s.Completion != nil:
			return fmt.Sprintf("the completion of job %d is pending (claiming would release nothing but lose track of it)", s.Completion.Job.Number)
		case s.FlagPending:
			return "a flag is pending"
		case s.ByePending:
			return "a bye is pending"
		case e.Job <= 0:
			return "job number must be positive"
		}
	case KindProgress:
		fill()
		return needSession()
	case KindCheckpoint:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		return needJob()
	case KindCompletionPending:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		if r := needJob(); r != "" {
			return r
		}
		switch {
		case e.Output == nil:
			return "no output"
		case s.Completion != nil:
			return fmt.Sprintf("the completion of job %d is pending", s.Completion.Job.Number)
		case s.FlagPending:
			return "a flag is pending"
		}
	case KindCompletionSettled:
		if s.Completion != nil && e.Job == 0 {
			e.Job = s.Completion.Job.Number
		}
		if s.Completion == nil {
			return "no completion is pending"
		}
		if s.Completion.Job.Number != e.Job {
			return fmt.Sprintf("the pending completion is of job %d", s.Completion.Job.Number)
		}
		switch e.Outcome {
		case OutcomeAccepted, OutcomeAppliedEarlier, OutcomeOrphaned:
		default:
			return fmt.Sprintf("outcome %q is not accepted, applied-earlier or orphaned", e.Outcome)
		}
	case KindFlagPending:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		if r := needJob(); r != "" {
			return r
		}
		if s.FlagPending {
			return "a flag is already pending"
		}
	case KindFlagSettled:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		if !s.FlagPending {
			return "no flag is pending"
		}
		if r := needJob(); r != "" {
			return r
		}
		switch e.Outcome {
		case OutcomeAccepted, OutcomeAppliedEarlier, OutcomeFailed, OutcomeOrphaned:
		default:
			return fmt.Sprintf("outcome %q is not accepted, applied-earlier, failed or orphaned", e.Outcome)
		}
	case KindReleased:
		if s.Job != nil && e.Job == 0 {
			e.Job = s.Job.Number
		}
		if r := needJob(); r != "" {
			return r
		}
		if s.FlagPending {
			return "a flag is pending: settle it first"
		}
	case KindByePending:
		if r := needSession(); r != "" {
			return r
		}
		if s.Completion != nil {
			return fmt.Sprintf("the completion of job %d is pending: settle it first", s.Completion.Job.Number)
		}
		if s.ByePending {
			return "a bye is already pending"
		}
	case KindClosed:
		if r := needSession(); r != "" {
			return r
		}
		if s.Completion != nil {
			return fmt.Sprintf("the completion of job %d is pending: settle it first", s.Completion.Job.Number)
		}
	case KindSessionLost:
		fill()
		return needSession()
	case KindOrphanResolved:
		if e.OrphanSeq == 0 {
			return "no orphan seq"
		}
		switch e.Outcome {
		case OutcomeResubmitted, OutcomeExported, OutcomeAcknowledged:
		default:
			return fmt.Sprintf("outcome %q is not resubmitted, exported or acknowledged", e.Outcome)
		}
	case KindReplayed:
	case KindFailed:
		fill()
	case KindRefused:
		if e.Reason == "" {
			return "no reason"
		}
	case KindDrained:
	}
	return ""
}

// MaxSlotName is the longest slot name Append accepts, in bytes.
const MaxSlotName = 512

func checkSlotName(slot string) string {
	switch {
	case slot == "":
		return "no slot"
	case len(slot) > MaxSlotName:
		return fmt.Sprintf("slot name longer than %d bytes", MaxSlotName)
	case strings.IndexByte(slot, 0) >= 0:
		return "slot name contains a NUL byte"
	}
	return ""
}

// FoldAll folds events onto base in order.
func FoldAll(base State, events []Event) State {
	for _, e := range events {
		base = Fold(base, e)
	}
	return base
}

// Equal reports whether two states are the same (as stored).
func (s State) Equal(t State) bool {
	a, err1 := encodeState(s)
	b, err2 := encodeState(t)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// Idle reports whether the slot has nothing in flight: no held job, no
// pending completion, flag or bye.
func (s State) Idle() bool {
	return s.Job == nil && s.Completion == nil && !s.FlagPending && !s.ByePending
}

// Redacted returns a copy of s fit for display, with the session token cut
// to 8 characters.
func (s State) Redacted() State {
	if s.Session != nil {
		ss := *s.Session
		ss.Token = RedactToken(ss.Token)
		s.Session = &ss
	}
	return s
}

// DecodeState decodes a stored state record (a *CorruptError if it is not
// one). It never panics.
func DecodeState(data []byte) (State, error) {
	var s State
	if err := strictUnmarshal(data, &s); err != nil {
		return State{}, corrupt("", 0, "state record: %v", err)
	}
	if s.Slot == "" {
		return State{}, corrupt("", 0, "state record has no slot")
	}
	if len(s.LastReport) > 0 && !json.Valid(s.LastReport) {
		return State{}, corrupt(s.Slot, 0, "state record has an invalid report")
	}
	return s, nil
}

func encodeOrphan(o Orphan) ([]byte, error) { return json.Marshal(o) }

func decodeOrphan(data []byte) (Orphan, error) {
	var o Orphan
	if err := strictUnmarshal(data, &o); err != nil {
		return Orphan{}, corrupt("", 0, "orphan record: %v", err)
	}
	return o, nil
}

func cloneString(p *string) *string {
	if p == nil {
		return nil
	}
	s := *p
	return &s
}

// clone returns a copy of s that shares nothing mutable with it.
func (s State) clone() State {
	if s.Session != nil {
		ss := *s.Session
		s.Session = &ss
	}
	if s.Job != nil {
		s.Job = s.Job.clone()
	}
	if s.Completion != nil {
		c := *s.Completion
		c.Job = *c.Job.clone()
		s.Completion = &c
	}
	s.LastReport = bytes.Clone(s.LastReport)
	return s
}

func (j *Job) clone() *Job {
	c := *j
	c.Input = cloneString(j.Input)
	c.Checkpoint = bytes.Clone(j.Checkpoint)
	return &c
}
