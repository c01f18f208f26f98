package worker

import (
	"context"
	"errors"

	"github.com/distcompute/distcompute-go/client"
)

// recordFailure journals a command's final failure on slot i (an
// informational failed event, with the end of its stderr) for
// `dcjournal inspect`.
func (e *engine) recordFailure(i int, reason string, stderrTail []byte) error {
	r := reason
	if len(stderrTail) > 0 {
		r += "\nstderr (last 4 KiB):\n" + string(stderrTail)
	}
	return e.clients[i].RecordFailure(r)
}

// releaseJob hands the job c holds back to the tracker (client.Release: a
// bye, then a fresh registration). A job no longer held (a pending flag of
// it was applied meanwhile, or the worker was lost and the tracker re-opened
// it) counts as released.
func releaseJob(ctx context.Context, c *client.Client) error {
	err := c.Release(ctx)
	if errors.Is(err, client.ErrNoJobHeld) || errors.Is(err, client.ErrWorkerGone) {
		return nil
	}
	return err
}

// refusedJobs returns how many distinct jobs the slots' clients refused at
// a claim (see client.Client.RefusedJobs).
func (e *engine) refusedJobs() int {
	seen := map[int]bool{}
	unknown := 0
	for _, c := range e.clients {
		for _, n := range c.RefusedJobs() {
			if n == 0 {
				unknown++
			}
			seen[n] = true
		}
	}
	delete(seen, 0)
	return len(seen) + unknown
}
