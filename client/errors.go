package client

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/distcompute/distcompute-go/session"
)

// Errors, matching the upstream client's (test with errors.Is). Most are
// package session's sentinels under the client's name, so an error from
// either package matches both.
var (
	// ErrNoJobs: there is no open job at the worker's stage right now (the
	// upstream ZeroJobError). Jobs are created dynamically: ask again later,
	// or use WaitForJob.
	ErrNoJobs = session.ErrNoJobs
	// ErrWorkerGone: the tracker no longer knows the worker: it timed out
	// (the upstream "Did the worker time out?"). The job it held is gone;
	// output given to CompleteJob is kept in the journal as an orphan. The
	// client registers afresh by itself.
	ErrWorkerGone = session.ErrWorkerGone
	// ErrNoJobHeld: the worker holds no job to complete, flag or checkpoint.
	ErrNoJobHeld = session.ErrNoJobHeld
	// ErrInvalidArgument: an argument refused before anything was sent.
	ErrInvalidArgument = session.ErrInvalidArgument
	// ErrInvalidStage: a stage that is not one of a..e.
	ErrInvalidStage = session.ErrInvalidStage
	// ErrStageDisabled: the tracker has not enabled the stage.
	ErrStageDisabled = session.ErrStageDisabled
	// ErrAppliedEarlier is never returned by the client (an action applied
	// by an earlier attempt succeeded); it appears in the journal's outcomes.
	ErrAppliedEarlier = session.ErrAppliedEarlier
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client closed")
	// ErrUnconfirmed: a recorded completion, flag or bye got no answer that
	// settles it (the tracker unreachable after the retry policy gave up,
	// ctx done, an answer the protocol does not foresee). It stays pending
	// in the journal and is resent before the next claim or on the next
	// start; nothing is lost. The cause is wrapped too.
	ErrUnconfirmed = errors.New("not confirmed: kept in the journal and resent")
	// ErrOrphaned: completed output the tracker no longer takes from this
	// worker (it lost the worker, or refused the completion). The output is
	// kept in the journal as an orphan: submitted if the job is claimed
	// again, exportable with dcjournal. It comes with ErrWorkerGone or the
	// tracker's refusal.
	ErrOrphaned = errors.New("the output is kept in the journal as an orphan")
	// ErrNotRecorded: the record of the action could not be made durable in
	// the journal (a failed write or fsync, a full or read-only disk, the
	// journal's size limit), so its request was not sent: the write-ahead
	// rule. Nothing was sent; the caller still holds its output or flag
	// and should try again later. The journal's error is wrapped too
	// (journal.ErrStopped, journal.ErrFull and the OS error:
	// errors.Is(err, syscall.ENOSPC) holds on a full disk). The client
	// reopens a stopped journal by itself at the next call; see
	// Client.JournalHealth.
	ErrNotRecorded = errors.New("not recorded in the journal, so not sent")
)

// ServerError is an answer the protocol does not foresee (including a 5xx
// after the retries gave up); see session.ServerError.
type ServerError = session.ServerError

// ValidationError is a 422 answer; see session.ValidationError. The upstream
// tracker answers it to the 5th flag of a job at stage b.
type ValidationError = session.ValidationError

// toPayload turns CompleteJob's argument into a payload: a string is sent as
// is, a session.Payload or json.RawMessage as they are, anything else is
// JSON-encoded and must encode to an array or object (sent as "<!json!>"...).
func toPayload(v any) (session.Payload, error) {
	var (
		p   session.Payload
		err error
	)
	switch x := v.(type) {
	case nil:
		return p, fmt.Errorf("client: completeJob: %w: nil output", ErrInvalidArgument)
	case string:
		return session.String(x), nil
	case session.Payload:
		p = x
	case *session.Payload:
		if x == nil {
			return p, fmt.Errorf("client: completeJob: %w: nil output", ErrInvalidArgument)
		}
		p = *x
	case json.RawMessage:
		p, err = session.RawJSON(x)
	default:
		p, err = session.JSON(x)
	}
	if err != nil {
		return p, fmt.Errorf("client: completeJob: %w: %w", ErrInvalidArgument, err)
	}
	if p.IsNull() {
		return p, fmt.Errorf("client: completeJob: %w: null output", ErrInvalidArgument)
	}
	return p, nil
}
