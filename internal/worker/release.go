package worker

import (
	"context"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
)

// recordFailure journals a command's final failure on slot i (an
// informational KindFailed event, with the end of its stderr) for
// `dcjournal inspect`.
func (e *engine) recordFailure(i, job int, reason string, stderrTail []byte) error {
	r := reason
	if len(stderrTail) > 0 {
		r += "\nstderr (last 4 KiB):\n" + string(stderrTail)
	}
	_, err := e.db.Append(journal.Event{Slot: e.clients[i].Slot(), Kind: journal.KindFailed, Job: job, Reason: r})
	return err
}

// releaseJob hands the job c holds back to the tracker. The protocol has no
// release call: bye re-opens the held job (and ends the worker, which the
// client replaces with a fresh registration on its next claim). newJob would
// release it too, but might hand the same job straight back.
func releaseJob(ctx context.Context, c *client.Client, reason string) error {
	_ = reason // bye journals its own "released" event
	return c.Bye(ctx)
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
