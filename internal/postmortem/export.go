package postmortem

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/journal"
)

// ExportOptions chooses what [Export] writes and where.
type ExportOptions struct {
	// Dir is the directory the files go to; it is created if missing. Files of an
	// earlier export to the same directory are overwritten (an export is repeatable).
	Dir string
	// Orphans exports the orphaned outputs not yet resolved.
	Orphans bool
	// All exports every output the journal still holds: settled (accepted,
	// applied-earlier, orphaned), still pending, and every unresolved orphan.
	All bool
	// Now stamps the index; zero means time.Now().
	Now time.Time
}

// Outcome of an exported output that [Export] adds to the journal's outcomes.
const (
	OutcomePending = "pending" // completion written, the tracker's answer never recorded
)

// IndexFile is the name of the index [Export] writes beside the outputs.
const IndexFile = "index.json"

// ExportIndex is the content of index.json.
type ExportIndex struct {
	SchemaVersion int           `json:"schema_version"`
	Journal       string        `json:"journal"`
	ExportedAt    time.Time     `json:"exported_at"`
	Outputs       []ExportEntry `json:"outputs"`
}

// ExportEntry describes one exported output.
type ExportEntry struct {
	File    string    `json:"file"`    // name within the export directory, e.g. "a-000042.json"
	Slot    string    `json:"slot"`    // the journal slot (worker) that produced it
	Stage   string    `json:"stage"`   // the stage letter the job was done at
	Job     int       `json:"job"`     // the job number
	Kind    string    `json:"kind"`    // "json" (file holds the JSON, without the <!json!> marker) or "text"
	Time    time.Time `json:"time"`    // when the output was written to the journal
	Outcome string    `json:"outcome"` // accepted, applied-earlier, orphaned or pending
	// Resolved is how an orphan was resolved (resubmitted, exported, acknowledged),
	// empty while it is not.
	Resolved string `json:"resolved,omitempty"`
	Seq      uint64 `json:"seq"` // the completion-pending event; an orphan's id for --ack
	Bytes    int    `json:"bytes"`
	// Reason says why an orphan was orphaned.
	Reason string `json:"reason,omitempty"`

	output string
}

// Export writes outputs of db to opts.Dir, one file per output named by stage and job
// (a-000042.json, b-000007.txt; a second output of the same stage and job gets its
// sequence number: a-000042-seq57.json), and index.json listing them. A text output
// is written byte for byte; a JSON one without the <!json!> marker and with a final
// newline. It only reads db. It returns the index it wrote.
func Export(db *journal.DB, opts ExportOptions) (*ExportIndex, error) {
	if !opts.Orphans && !opts.All {
		return nil, ErrNothingSelected
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	orphans, err := db.Orphans()
	if err != nil {
		return nil, fmt.Errorf("reading orphans: %w", err)
	}
	var entries []ExportEntry
	if opts.All {
		entries, err = allOutputs(db, orphans)
		if err != nil {
			return nil, err
		}
	} else {
		for _, o := range orphans {
			entries = append(entries, orphanEntry(o))
		}
	}

	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the export directory: %w", err)
	}
	used := map[string]bool{IndexFile: true}
	for i := range entries {
		e := &entries[i]
		ext := "txt"
		if e.Kind == "json" {
			ext = "json"
		}
		stage := e.Stage
		if len(stage) != 1 || stage[0] < 'a' || stage[0] > 'z' {
			stage = "x" // unknown, or not a stage letter: never let a record choose a path
		}
		name := fmt.Sprintf("%s-%06d.%s", stage, e.Job, ext)
		if used[name] {
			name = fmt.Sprintf("%s-%06d-seq%d.%s", stage, e.Job, e.Seq, ext)
		}
		used[name] = true
		e.File = name
		data := []byte(e.output)
		if e.Kind == "json" && !strings.HasSuffix(e.output, "\n") {
			data = append(data, '\n') // a text file ends with a newline; JSON does not mind
		}
		if err := writeFileAtomic(filepath.Join(opts.Dir, name), data); err != nil {
			return nil, err
		}
	}
	idx := &ExportIndex{SchemaVersion: SchemaVersion, Journal: db.Path(), ExportedAt: now.UTC(), Outputs: entries}
	if idx.Outputs == nil {
		idx.Outputs = []ExportEntry{}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(opts.Dir, IndexFile), append(b, '\n')); err != nil {
		return nil, err
	}
	return idx, nil
}

func orphanEntry(o journal.Orphan) ExportEntry {
	return ExportEntry{
		Slot: o.Slot, Stage: o.Stage, Job: o.Job, Kind: wireKind(&o.Output), Time: o.Time.UTC(),
		Outcome: journal.OutcomeOrphaned, Seq: o.Seq, Bytes: len(payloadText(&o.Output)), Reason: o.Reason,
		output: payloadText(&o.Output),
	}
}

// allOutputs walks the history for every completion written, with how it settled.
// Orphans are kept forever while history is pruned, so those not met in the history
// are added from the orphan records.
func allOutputs(db *journal.DB, orphans []journal.Orphan) ([]ExportEntry, error) {
	stage := map[string]string{}      // slot -> stage of its session
	open := map[string]*ExportEntry{} // slot -> completion written, not settled
	resolved := map[uint64]string{}   // orphan seq -> outcome
	var out []ExportEntry
	err := db.Events(journal.Filter{}, func(e journal.Event) error {
		switch e.Kind {
		case journal.KindRegistered:
			stage[e.Slot] = e.Stage
		case journal.KindCompletionPending:
			out := payloadText(e.Output)
			open[e.Slot] = &ExportEntry{
				Slot: e.Slot, Stage: stage[e.Slot], Job: e.Job, Kind: wireKind(e.Output), Time: e.Time.UTC(),
				Outcome: OutcomePending, Seq: e.Seq, Bytes: len(out), output: out,
			}
		case journal.KindCompletionSettled:
			if p := open[e.Slot]; p != nil {
				p.Outcome = e.Outcome
				if e.Outcome == journal.OutcomeOrphaned {
					p.Reason = e.Reason
				}
				out = append(out, *p)
				delete(open, e.Slot)
			}
		case journal.KindSessionLost:
			if p := open[e.Slot]; p != nil {
				p.Outcome, p.Reason = journal.OutcomeOrphaned, e.Reason
				out = append(out, *p)
				delete(open, e.Slot)
			}
		case journal.KindOrphanResolved:
			resolved[e.OrphanSeq] = e.Outcome
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	for _, slot := range sortedKeys(open) {
		out = append(out, *open[slot])
	}
	seen := map[uint64]bool{}
	for i := range out {
		seen[out[i].Seq] = true
		if r, ok := resolved[out[i].Seq]; ok && out[i].Outcome == journal.OutcomeOrphaned {
			out[i].Resolved = r
		}
	}
	for _, o := range orphans {
		if !seen[o.Seq] {
			out = append(out, orphanEntry(o))
		}
	}
	// Orphan records hold the stage even where the history did not (pruned registration).
	byseq := map[uint64]journal.Orphan{}
	for _, o := range orphans {
		byseq[o.Seq] = o
	}
	for i := range out {
		if o, ok := byseq[out[i].Seq]; ok && out[i].Stage == "" {
			out[i].Stage = o.Stage
		}
	}
	sortEntries(out)
	return out, nil
}

func sortEntries(es []ExportEntry) {
	sort.SliceStable(es, func(i, k int) bool { return es[i].Seq < es[k].Seq })
}

// writeFileAtomic writes data to path through a temporary file and a rename, so that a
// reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".export-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Ack records in db that the unresolved orphans among entries were exported (an
// orphan-resolved event with outcome "exported" each), so that they are no longer
// listed as orphans. db must be open for writing. It returns how many it recorded.
func Ack(db *journal.DB, entries []ExportEntry) (int, error) {
	orphans, err := db.Orphans()
	if err != nil {
		return 0, fmt.Errorf("reading orphans: %w", err)
	}
	unresolved := map[uint64]bool{}
	for _, o := range orphans {
		unresolved[o.Seq] = true
	}
	n := 0
	for _, e := range entries {
		if !unresolved[e.Seq] {
			continue
		}
		_, err := db.Append(journal.Event{Slot: e.Slot, Kind: journal.KindOrphanResolved, OrphanSeq: e.Seq, Outcome: journal.OutcomeExported})
		if err != nil {
			return n, fmt.Errorf("recording orphan %d as exported: %w", e.Seq, err)
		}
		n++
	}
	return n, nil
}
