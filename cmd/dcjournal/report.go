package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/journal"
)

const reportHelp = `Usage: dcjournal report JOURNAL... [--out FILE] [flags]

Writes one self-contained HTML page (no network needed to open it) of one journal
or of a fleet of them (one file per machine) on one time axis: a lane per slot, a
bar per job from its claim to its settling coloured by outcome (accepted, applied
earlier, orphaned, released, flagged, failed, lost, still pending or held when the
journal ends), progress and checkpoints as ticks on the bars, the silences where a
worker was dead shaded, each recovery marked with what it did, and the orphaned
outputs listed. Hover a bar for its events, click it to keep them on the page, drag
across the chart to zoom. Thousands of jobs stay readable: bars too thin to see are
drawn as aggregates of their outcomes.

The journals are opened read-only and left unchanged. Tokens and tracker passwords
are redacted unless --show-secrets. Nothing is written when an argument is wrong.
`

func runReport(env *cmdEnv, args []string) error {
	fs := newFlags("report", reportHelp)
	out := fs.String("out", "report.html", "write the page to `FILE` (- for stdout)")
	title := fs.String("title", "", "the page's title (default: \"Post-mortem of JOURNAL\")")
	showSecrets := fs.Bool("show-secrets", false, "show worker tokens and tracker passwords in full")
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("report: give one or more journal files, e.g. report a.db b.db --out fleet.html")
	}
	if *out == "" {
		return usageErrorf("report: --out wants a file name, or - for stdout")
	}
	var journals []postmortem.ReportJournal
	defer func() {
		for _, j := range journals {
			j.DB.Close()
		}
	}()
	names := uniqueNames(pos)
	for i, p := range pos {
		db, err := fs.open(p, false)
		if err != nil {
			return err
		}
		journals = append(journals, postmortem.ReportJournal{Name: names[i], DB: db})
	}
	opts := postmortem.ReportOptions{Title: *title, ShowSecrets: *showSecrets}
	if *out == "-" {
		_, err := postmortem.Report(env.stdout, journals, opts)
		return reportError(err)
	}
	// Write beside the target and rename, so that a failed report leaves no half page.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".report-*.html")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer os.Remove(tmp.Name())
	st, err := postmortem.Report(tmp, journals, opts)
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err != nil {
		return reportError(err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	size := int64(0)
	if fi, err := os.Stat(*out); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(env.stdout, "wrote %s (%s): %d journal(s), %d slot(s), %d job(s), %d event(s), %d orphaned output(s)\n",
		*out, postmortem.ByteSize(size), st.Journals, st.Lanes, st.Jobs, st.Events, st.Orphans)
	return nil
}

func reportError(err error) error {
	if err != nil && (errors.Is(err, journal.ErrCorrupt) || errors.Is(err, journal.ErrNewerFormat)) {
		return withCode(exitJournal, err)
	}
	return err
}

// uniqueNames labels each journal by its file name, or by its directory and file
// name when two files share a name (host1/journal.db, host2/journal.db).
func uniqueNames(paths []string) []string {
	count := map[string]int{}
	for _, p := range paths {
		count[filepath.Base(p)]++
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
		if count[names[i]] > 1 {
			names[i] = filepath.Join(filepath.Base(filepath.Dir(p)), names[i])
		}
	}
	return names
}
