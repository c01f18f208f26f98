package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/internal/termtext"
)

const exportHelp = `Usage: dcjournal export JOURNAL (--orphans | --all) --out DIR [--ack]

Writes outputs held in JOURNAL to DIR (created if missing), one file per output:
JSON outputs as JSON (without the <!json!> marker the tracker protocol adds), plain
ones as text, named by stage and job number: a-000042.json, b-000007.txt (a second
output of the same stage and job also gets its sequence number: a-000042-seq57.json).
Beside them index.json lists every file:

  {"schema_version": 1, "journal": PATH, "exported_at": TIME,
   "outputs": [{"file", "slot", "stage", "job", "kind": "json"|"text", "time",
                "outcome": "accepted"|"applied-earlier"|"orphaned"|"pending",
                "resolved", "seq", "bytes", "reason"}]}

--orphans exports the orphaned outputs: finished work the tracker no longer accepts
from this worker (its session was lost). --all exports every output the journal still
holds (history is kept for the last jobs of each slot, orphans until resolved).

export is read-only: the journal is left unchanged, and running it again is safe.
--ack then records the exported orphans as resolved (outcome "exported"), so that
inspect and workers stop offering them; that writes to the journal and needs its lock.
`

func runExport(env *cmdEnv, args []string) error {
	fs := newFlags("export", exportHelp)
	var opts postmortem.ExportOptions
	fs.BoolVar(&opts.Orphans, "orphans", false, "export the orphaned outputs")
	fs.BoolVar(&opts.All, "all", false, "export every output the journal holds, settled or pending")
	fs.StringVar(&opts.Dir, "out", "", "write the files to directory `DIR` (required)")
	ack := fs.Bool("ack", false, "after exporting, record the exported orphans as resolved (writes to the journal)")
	path, err := fs.parseJournal(env, args)
	if err != nil {
		return err
	}
	if !opts.Orphans && !opts.All {
		return usageErrorf("export: say what to export: --orphans or --all")
	}
	if opts.Dir == "" {
		return usageErrorf("export: say where: --out DIR")
	}
	db, err := fs.open(path, *ack)
	if err != nil {
		return err
	}
	defer db.Close()
	idx, err := postmortem.Export(db, opts)
	if err != nil {
		err = readError(path, err)
		if opts.All {
			err = fmt.Errorf("%w; --orphans reads only the orphan records and may still work", err)
		}
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	if len(idx.Outputs) > 0 {
		fmt.Fprintln(tw, "FILE\tSLOT\tSTAGE\tJOB\tKIND\tBYTES\tOUTCOME")
	}
	for _, e := range idx.Outputs {
		outcome := e.Outcome
		if e.Resolved != "" {
			outcome += " (" + e.Resolved + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", termtext.Line(e.File), termtext.Line(e.Slot), termtext.Line(e.Stage), e.Job, termtext.Line(e.Kind), e.Bytes, termtext.Line(outcome))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	what := "orphaned output"
	if opts.All {
		what = "output"
	}
	if len(idx.Outputs) != 1 {
		what += "s"
	}
	fmt.Fprintf(env.stdout, "exported %d %s to %s, listed in %s\n", len(idx.Outputs), what, opts.Dir, filepath.Join(opts.Dir, postmortem.IndexFile))
	if *ack {
		n, err := postmortem.Ack(db, idx.Outputs)
		if err != nil {
			return err
		}
		plural := "s"
		if n == 1 {
			plural = ""
		}
		fmt.Fprintf(env.stdout, "recorded %d orphan%s as exported in %s\n", n, plural, path)
	}
	return nil
}
