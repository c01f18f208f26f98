package replay

import (
	"context"
	"errors"
	"fmt"

	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// Op is a recorded action that Settle sends: one whose request must not
// leave the machine before its record is durable, and whose answer decides
// what the journal records next.
type Op int

const (
	// OpComplete sends the slot's pending completion (completeJob).
	OpComplete Op = iota + 1
	// OpFlag sends the slot's pending flag of its held job (flagInvalidData).
	OpFlag
	// OpBye sends the slot's pending bye.
	OpBye
)

// String names the operation as the hooks and logs do.
func (op Op) String() string {
	switch op {
	case OpComplete:
		return "complete"
	case OpFlag:
		return "flag"
	case OpBye:
		return "bye"
	}
	return fmt.Sprintf("op(%d)", int(op))
}

// Outcome is what became of a recorded action once the tracker answered.
type Outcome int

const (
	// Unsettled: no answer that settles the action: the tracker could not
	// be reached, answered 5xx until the retry policy gave up, or ctx
	// ended. Nothing more is recorded: the action stays pending in the
	// journal and is resent (as a resend) before the slot's next claim or
	// on the next start.
	Unsettled Outcome = iota
	// Accepted: the tracker applied the action now (200; 404 for a bye
	// sent once, which finds the worker gone: either way it is over).
	Accepted
	// AppliedEarlier: the tracker refused a resend because an earlier
	// attempt was applied and its answer lost (403 to a resent completion
	// or flag, 404 to a resent bye).
	AppliedEarlier
	// Orphaned: a completion the tracker refused for good (403 to a first
	// send, 422): its output is kept in the journal as an orphan. For a
	// flag: 403 to a first send, the worker holds no job.
	Orphaned
	// Refused: a flag the tracker refused (422, the upstream tracker's 5th
	// flag at stage b): nothing was applied and the job is still held.
	Refused
	// WorkerGone: the tracker does not know the worker (404 to a completion
	// or flag): the session is recorded lost, which turns a pending
	// completion into an orphan and drops the held job.
	WorkerGone
)

var outcomeNames = [...]string{"unsettled", "accepted", "applied-earlier", "orphaned", "refused", "worker-gone"}

// String names the outcome.
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Settled reports whether the outcome ends the action's pending state.
func (o Outcome) Settled() bool { return o != Unsettled }

// Interpret maps the answer to op (the error Conn returned, nil for 200) to
// its outcome. resend says an earlier attempt of the same record may have
// reached the tracker (it was sent before by this process, or by one that
// crashed): only then does a 403 mean "applied earlier", because the
// tracker binds a completion or flag to the token's held job and refuses a
// second one. This is the one place that reads the protocol's answers to
// the write-ahead actions; docs/PROTOCOL.md lists them.
func Interpret(op Op, err error, resend bool) Outcome {
	var verr *session.ValidationError
	switch op {
	case OpComplete, OpFlag:
		switch {
		case err == nil:
			return Accepted
		case errors.Is(err, session.ErrAppliedEarlier), resend && errors.Is(err, session.ErrNoJobHeld):
			return AppliedEarlier
		case errors.Is(err, session.ErrWorkerGone):
			return WorkerGone
		case errors.Is(err, session.ErrNoJobHeld):
			return Orphaned
		case errors.As(err, &verr):
			if op == OpFlag {
				return Refused
			}
			return Orphaned
		}
	case OpBye:
		switch {
		case err == nil:
			return Accepted
		case errors.Is(err, session.ErrAppliedEarlier), resend && errors.Is(err, session.ErrWorkerGone):
			return AppliedEarlier
		case errors.Is(err, session.ErrWorkerGone):
			return Accepted // the worker is gone either way: the bye's effect holds
		}
	}
	return Unsettled
}

// Settled is the result of Settle.
type Settled struct {
	Op      Op
	Outcome Outcome
	// Job is the job the action concerned (0 for a bye without a held job).
	Job int
	// Err is the tracker's answer when it was not a 200 (the error Conn
	// returned), nil otherwise. For an Unsettled outcome it says why.
	Err error
}

// Settle sends the action op that slot has recorded as pending, with the
// slot's recorded token, and records its outcome in db before it returns:
// completion-settled or flag-settled with the outcome, session-lost for
// WorkerGone, released (the held job) and closed for a bye. Both the live
// client and recovery settle through it, so an answer means the same thing
// on both paths. hook, if not nil, is called after the answer arrived and
// before it is recorded (crash tests kill the process there).
//
// The error is non-nil only when the outcome could not be recorded (the
// journal refused the write) or the slot records no such pending action;
// the tracker's refusals are in Settled.Err.
func Settle(ctx context.Context, db *journal.DB, conn *session.Conn, slot string, op Op, resend bool, hook func(op string)) (Settled, error) {
	res := Settled{Op: op}
	st, err := db.State(slot)
	if err != nil {
		return res, err
	}
	if st.Session == nil || st.Closed {
		return res, fmt.Errorf("replay: settle %s: slot %q has no open session", op, slot)
	}
	token := st.Session.Token
	switch op {
	case OpComplete:
		if st.Completion == nil {
			return res, fmt.Errorf("replay: settle %s: slot %q has no pending completion", op, slot)
		}
		res.Job = st.Completion.Job.Number
		// The recorded wire form is sent byte for byte.
		res.Err = conn.CompleteJob(ctx, token, session.String(st.Completion.Output))
	case OpFlag:
		if !st.FlagPending || st.Job == nil {
			return res, fmt.Errorf("replay: settle %s: slot %q has no pending flag", op, slot)
		}
		res.Job = st.Job.Number
		res.Err = conn.FlagInvalidData(ctx, token)
	case OpBye:
		if !st.ByePending {
			return res, fmt.Errorf("replay: settle %s: slot %q has no pending bye", op, slot)
		}
		if st.Job != nil {
			res.Job = st.Job.Number
		}
		res.Err = conn.Bye(ctx, token)
	default:
		return res, fmt.Errorf("replay: settle: unknown operation %d", int(op))
	}
	if hook != nil {
		hook(op.String())
	}
	res.Outcome = Interpret(op, res.Err, resend)
	if err := record(db, slot, st, res); err != nil {
		res.Outcome = Unsettled
		return res, err
	}
	return res, nil
}

// record writes the events that res's outcome calls for.
func record(db *journal.DB, slot string, st journal.State, res Settled) error {
	add := func(e journal.Event) error {
		e.Slot = slot
		_, err := db.Append(e)
		return err
	}
	switch o := res.Outcome; {
	case o == Unsettled:
		return nil
	case res.Op == OpBye:
		if st.Job != nil && !st.FlagPending {
			if err := add(journal.Event{Kind: journal.KindReleased, Job: st.Job.Number, Reason: "bye"}); err != nil {
				return err
			}
		}
		return add(journal.Event{Kind: journal.KindClosed})
	case o == WorkerGone:
		return add(journal.Event{Kind: journal.KindSessionLost, Reason: op404(res.Op)})
	}
	kind := journal.KindCompletionSettled
	if res.Op == OpFlag {
		kind = journal.KindFlagSettled
	}
	e := journal.Event{Kind: kind, Job: res.Job, Outcome: journalOutcome[res.Outcome]}
	switch res.Outcome {
	case AppliedEarlier:
		e.Reason = "the tracker refused a resend: an earlier attempt was applied"
	case Orphaned, Refused:
		e.Reason = res.Err.Error()
	}
	return add(e)
}

// journalOutcome names a settled outcome in the journal's settle events.
var journalOutcome = map[Outcome]string{
	Accepted:       journal.OutcomeAccepted,
	AppliedEarlier: journal.OutcomeAppliedEarlier,
	Orphaned:       journal.OutcomeOrphaned,
	Refused:        journal.OutcomeFailed,
}

func op404(op Op) string {
	switch op {
	case OpComplete:
		return "completeJob answered 404: the worker timed out"
	case OpFlag:
		return "flagInvalidData answered 404: the worker timed out"
	}
	return "the tracker answered 404: the worker is gone"
}
