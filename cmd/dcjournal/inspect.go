package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/internal/term"
)

const inspectHelp = `Usage: dcjournal inspect JOURNAL [flags]
       dcjournal inspect --live http://ADDR [flags]

Shows what the worker that wrote JOURNAL was doing when it stopped: each slot with
its worker name, stage, tracker and project; the job it held, since when, its last
progress and checkpoint; pending completions, flags and byes; orphaned outputs; the
last recovery report; and when the last event was written (when the worker stopped).
The journal is opened read-only and left unchanged. Times are UTC.

If a running worker holds the journal, inspect says which process it is instead of
waiting. --live fetches a consistent snapshot from a running dcworker's status
address (GET /journal) and inspects that.

--json writes one JSON object for scripts (tokens redacted unless --show-secrets).
Fields are only added within a schema_version; times are RFC 3339, UTC:

  {
    "schema_version": 1,
    "journal": {"path", "size_bytes", "events", "first_seq", "last_seq",
                "first_event", "last_event"},
    "slots": [{"slot", "session": "open"|"closed"|"lost"|"none"|"unknown",
               "worker", "nickname", "token", "tracker", "stage", "stage_name",
               "project",
               "registered", "lost_reason",
               "job": {"number", "stage", "since", "input_kind": "json"|"text"|"null",
                       "input_bytes", "checkpoint_bytes", "checkpoint_time"},
               "progress", "progress_time",
               "completion_pending": {"job", "stage", "since", "output_kind",
                                      "output_bytes", "seq"},
               "flag_pending", "bye_pending", "last_seq", "last_event",
               "last_report": {"time", "report": {...as recovery wrote it}},
               "drained": {"time", "reason"}}],
    "orphans": [{"seq", "slot", "stage", "job", "time", "reason",
                 "output_kind", "output_bytes"}],
    "events": [{"seq", "time", "slot", "kind", "job", "detail",
                "input", "output"}],
    "warnings": ["what could not be read, for a damaged journal"]
  }

"events" is present with --timeline and --job; "input" and "output" (wire text,
JSON prefixed by <!json!>) only with --job. With --slot or --job, "slots" and
"orphans" hold only what concerns that slot or job. "warnings" is present only
for a damaged journal: inspect then shows what it could read, and exits 3.
`

func runInspect(env *cmdEnv, args []string) error {
	fs := newFlags("inspect", inspectHelp)
	var opts postmortem.InspectOptions
	fs.BoolVar(&opts.Timeline, "timeline", false, "list every event in order, with readable times, instead of the summary")
	fs.IntVar(&opts.Job, "job", 0, "show the whole history of job `N` instead: its events, input and outputs")
	fs.StringVar(&opts.Slot, "slot", "", "only slot `S`")
	fs.BoolVar(&opts.JSON, "json", false, "write JSON for scripts (schema above)")
	fs.BoolVar(&opts.ShowSecrets, "show-secrets", false, "show worker tokens and tracker passwords in full")
	live := fs.String("live", "", "inspect a running dcworker's journal snapshot from its status address `URL` (GET URL/journal)")
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if opts.Job < 0 {
		return usageErrorf("inspect: --job wants a job number, got %d", opts.Job)
	}
	opts.Color = colorOK(env.stdout)
	path := ""
	if *live != "" {
		if len(pos) > 0 {
			return usageErrorf("inspect: give either JOURNAL or --live, not both")
		}
		tmp, src, err := fetchSnapshot(env.ctx, *live)
		if err != nil {
			return err
		}
		defer os.RemoveAll(filepath.Dir(tmp))
		path, opts.Source = tmp, src
	} else if path, err = journalArg(fs, pos); err != nil {
		return err
	}
	db, err := fs.open(path, false)
	if *live != "" {
		// The copy holds whole tokens: unlink it as soon as it is open (the open
		// journal keeps reading it), so that nothing is left behind even when a
		// closed pipe (inspect --live URL | head -1) kills the process.
		os.RemoveAll(filepath.Dir(path))
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if opts.Slot != "" {
		if known, err := db.Slots(); err == nil {
			opts.Slot = resolveSlot(known, opts.Slot)
		}
	}
	return readError(path, postmortem.Inspect(env.stdout, db, opts))
}

// colorOK reports whether w may be coloured (see package term).
func colorOK(w io.Writer) bool { return term.Color(w, os.Getenv) }

// snapshotTimeout bounds fetching a live snapshot.
const snapshotTimeout = 30 * time.Second

// fetchSnapshot downloads a running worker's journal snapshot (journal.WriteSnapshot
// served at GET /journal) into a temporary directory and returns the file's path
// and the URL it came from.
func fetchSnapshot(ctx context.Context, raw string) (path, src string, err error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", usageErrorf("inspect: --live wants the worker's status address, like http://127.0.0.1:8080, got %q", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/journal"
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", "", usageErrorf("inspect: --live: %v", err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", withCode(exitJournal, fmt.Errorf("cannot fetch the live snapshot from %s: %v; is the worker running with --status-addr and --status-journal?", u, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := "is this a dcworker status address?"
		if resp.StatusCode == http.StatusNotFound {
			hint += " (dcworker serves its journal only with --status-journal)"
		}
		return "", "", withCode(exitJournal, fmt.Errorf("cannot fetch the live snapshot: %s answered %s; %s", u, resp.Status, hint))
	}
	dir, err := os.MkdirTemp("", "dcjournal-live-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "journal.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err == nil {
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", withCode(exitJournal, fmt.Errorf("cannot fetch the live snapshot from %s: %v", u, err))
	}
	return path, u.String(), nil
}
