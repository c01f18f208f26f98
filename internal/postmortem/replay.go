package postmortem

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/distcompute/distcompute-go/replay"
)

// ReplayLines says in words what a recovery did to one slot, one phrase per fact.
func ReplayLines(r replay.Report) []string {
	var out []string
	jobs := func(format string, ns []int) {
		for _, n := range ns {
			out = append(out, fmt.Sprintf(format, n))
		}
	}
	if r.ByeResent {
		out = append(out, "pending bye resent: the session is over")
	}
	if r.SessionLost {
		out = append(out, "the tracker no longer knew the worker (timed out): session lost")
	}
	jobs("completion of job %d resubmitted and accepted", r.Resubmitted)
	jobs("completion of job %d had been applied already (its answer was lost)", r.AppliedEarlier)
	jobs("output of job %d orphaned: kept in the journal, export it with --orphans", r.Orphaned)
	jobs("flag of job %d resent", r.FlagsResent)
	jobs("flag of job %d refused by the tracker: the job is still held", r.FlagsFailed)
	jobs("job %d released: the tracker re-opened it for another worker", r.Released)
	jobs("job %d kept for the worker to resume at its next start", r.Resumed)
	jobs("job %d had been taken back by the tracker (no output to keep)", r.Lost)
	if r.Closed && !r.ByeResent {
		out = append(out, "session closed (bye)")
	}
	if r.Reregistered {
		out = append(out, "registered afresh")
	}
	for _, e := range r.Errors {
		out = append(out, "not settled, still pending in the journal: "+oneLine(e))
	}
	if len(out) == 0 {
		out = append(out, "nothing to do")
	}
	return out
}

// PrintReplay writes the reports of a recovery for people: one block of lines per
// slot. An empty list says that no slot needed recovery.
func PrintReplay(w io.Writer, reports []replay.Report) error {
	if len(reports) == 0 {
		_, err := fmt.Fprintln(w, "nothing to replay: no slot has an open session or a pending completion")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tWHAT RECOVERY DID")
	for _, r := range reports {
		for i, line := range ReplayLines(r) {
			label := ""
			if i == 0 {
				label = r.Slot
			}
			fmt.Fprintf(tw, "%s\t%s\n", oneLine(label), oneLine(line))
		}
	}
	return tw.Flush()
}
