package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// maxRefusalsPerClaim bounds the jobs one claim may refuse before NewJob
// gives up with ErrNoJobs: the tracker hands out open jobs at random, so a
// stage whose open jobs are mostly ones this worker cannot take would
// otherwise keep the claim going.
const maxRefusalsPerClaim = 8

// refuseTimeout bounds the requests that hand a refused job back, which
// run to the end even when the claim's context ends.
const refuseTimeout = 10 * time.Second

// refusals is what a Client remembers of the jobs it could not take. It is
// guarded by Client.smu (written with mu held too).
type refusals struct {
	jobs  map[int]string // job number -> why; 0 = a job whose number was not found
	count int            // decisions taken (flag or release), repeats included
}

// RefusedJobs returns the numbers of the jobs this client refused at a
// claim because it could not take them (data that cannot be decoded, an
// answer over the size limit), sorted. A job whose number could not be read
// from an oversized answer is listed as 0.
func (c *Client) RefusedJobs() []int {
	c.smu.RLock()
	defer c.smu.RUnlock()
	out := make([]int, 0, len(c.refused.jobs))
	for n := range c.refused.jobs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Refusals returns how many times a claim of this client refused a job
// (flagged it, or released it), the same job counted each time.
func (c *Client) Refusals() int {
	c.smu.RLock()
	defer c.smu.RUnlock()
	return c.refused.count
}

// refuse decides on a job the tracker assigned at a claim that the client
// cannot take (cause is NewJob's error), within that claim: data that
// cannot be decoded is flagged as invalid (what the protocol has for it),
// an answer over the size limit is released, and so is a job whose flag
// the tracker refuses or that this client refused before. Each decision is
// journaled with its reason. handled reports whether cause was such a job;
// then err nil means "claim again" (the tracker's newJob releases a job
// still held), and ErrNoJobs means the open jobs are only ones this client
// refused (the job was handed back with bye). tries counts the refusals of
// this claim. The caller holds mu.
func (c *Client) refuse(ctx context.Context, job session.Job, cause error, tries *int) (handled bool, err error) {
	var se *session.ServerError
	tooLarge := errors.Is(cause, session.ErrResponseTooLarge) && errors.As(cause, &se) && se.Status == http.StatusOK
	invalid := errors.Is(cause, session.ErrInvalidPayload) && job.Number > 0
	if !tooLarge && !invalid {
		return false, nil
	}
	n := job.Number
	why := "data cannot be decoded: " + cause.Error()
	if tooLarge {
		why = "the answer is over this worker's size limit: " + cause.Error()
	}
	*tries++
	c.smu.Lock()
	_, before := c.refused.jobs[n]
	if c.refused.jobs == nil {
		c.refused.jobs = map[int]string{}
	}
	c.refused.jobs[n] = why
	c.refused.count++
	c.smu.Unlock()

	if before || *tries > maxRefusalsPerClaim {
		return true, c.refuseAgain(ctx, n, why, *tries)
	}
	if tooLarge {
		c.log.Warn("job refused: released", slog.Int("job", n), slog.String("reason", why))
		return true, c.append(journal.Event{Kind: journal.KindRefused, Job: n, Reason: "released unread: " + why})
	}

	// Flag it: the claim (its input as received) and the flag are
	// written in one commit before the flag is sent.
	if err := c.appendDeferred(journal.Event{Kind: journal.KindClaimed, Job: n, Input: job.Data.Wire()}); err != nil {
		return true, err
	}
	c.claimed()
	if err := c.append(journal.Event{Kind: journal.KindFlagPending, Job: n, Reason: why}); err != nil {
		return true, err
	}
	c.log.Warn("job refused: flagging it as invalid data", slog.Int("job", n), slog.String("reason", why))
	settled, err := c.sendFlag(ctx, n, false)
	switch {
	case !settled:
		return true, err // pending: resent before the next claim
	case err == nil:
		return true, nil
	}
	var verr *session.ValidationError
	if errors.As(err, &verr) && c.held() != nil {
		// The tracker refused the flag (the upstream 5th flag at stage b)
		// and still assigns the job to this worker: release it.
		c.log.Warn("job refused: the tracker refused the flag; released", slog.Int("job", n), slog.String("err", err.Error()))
		return true, c.append(journal.Event{Kind: journal.KindReleased, Job: n, Reason: "released: the tracker refused the flag (" + verr.Error() + "); " + why})
	}
	// The worker was lost, or holds no job: the journal holds no job any
	// more (the settle recorded it).
	return true, nil
}

// refuseAgain releases job n, refused before by this client (or the
// claim's refusals ran over maxRefusalsPerClaim), without flagging it
// again. If the stage's open jobs are only ones this client refused, it
// hands the job back at once (bye: the next claim registers afresh) and
// returns ErrNoJobs, so that WaitForJob waits and dcworker
// --exit-when-empty can stop; otherwise it returns nil and the claim goes
// on (its newJob releases the job).
func (c *Client) refuseAgain(ctx context.Context, n int, why string, tries int) error {
	if err := c.append(journal.Event{Kind: journal.KindRefused, Job: n, Reason: "released: refused before by this worker: " + why}); err != nil {
		return err
	}
	c.log.Warn("job refused again: released", slog.Int("job", n))
	// The job is held at the tracker and in no journal state: finish the
	// decision even if ctx ends now (a bye not confirmed is journaled and
	// resent before the next claim or on restart).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refuseTimeout)
	defer cancel()
	open, err := c.conn.JobCount(ctx, c.stage)
	c.smu.RLock()
	refused := len(c.refused.jobs)
	c.smu.RUnlock()
	// The job is held by this worker, so open does not count it.
	if err == nil && open >= refused && tries <= maxRefusalsPerClaim {
		return nil
	}
	if err := c.append(journal.Event{Kind: journal.KindByePending}); err != nil {
		return err
	}
	if err := c.sendBye(ctx); err != nil {
		return err
	}
	return fmt.Errorf("client: newJob: %w: the open jobs at stage %s are ones this worker refused (%d)", ErrNoJobs, c.stage, refused)
}
