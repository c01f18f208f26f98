package worker

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// Slot states, as shown by /status and the dcworker_state_seconds_total metric.
const (
	stateIdle       = "idle"       // not started yet
	stateWaiting    = "waiting"    // waiting for a job
	stateRunning    = "running"    // the command runs
	stateCompleting = "completing" // sending the output
	stateFlagging   = "flagging"   // flagging invalid data
	stateReleasing  = "releasing"  // handing a failed job back
	stateHolding    = "holding"    // the journal cannot be written: an output, flag or release held in memory
	stateDraining   = "draining"   // stop signal passed on, grace period running
	stateStopped    = "stopped"    // the slot is done
)

var allStates = []string{stateIdle, stateWaiting, stateRunning, stateCompleting, stateFlagging, stateReleasing, stateHolding, stateDraining, stateStopped}

// metrics are the engine's counters; all safe for concurrent use.
type metrics struct {
	completed, failed, flagged, resubmitted, orphaned atomic.Int64
	heartbeatFailures, commandFailures, runs          atomic.Int64
	checkpoints, preemptions, trackerFailures         atomic.Int64

	mu        sync.Mutex
	stateTime map[string]time.Duration // closed intervals only
}

func newMetrics(int) *metrics { return &metrics{stateTime: map[string]time.Duration{}} }

// slotState is what one slot is doing, for /status and the state-time metric.
type slotState struct {
	mu       sync.Mutex
	index    int
	name     string
	state    string
	since    time.Time
	job      int
	progress string
}

func (s *slotState) set(m *metrics, state string, job int) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == state && s.job == job {
		return
	}
	m.mu.Lock()
	m.stateTime[s.state] += now.Sub(s.since)
	m.mu.Unlock()
	if job != s.job {
		s.progress = ""
	}
	s.state, s.since, s.job = state, now, job
}

func (s *slotState) setProgress(p string) {
	s.mu.Lock()
	s.progress = p
	s.mu.Unlock()
}

// SlotStatus is one slot in GET /status.
type SlotStatus = statusserver.SlotStatus

// Status is the JSON document served at GET /status. It holds no secret:
// the tracker URL's password is redacted, and no token is in it.
type Status = statusserver.Status

func (e *engine) counters() map[string]int64 {
	// Resubmissions: those of the start-up replay, plus orphaned outputs the
	// clients submitted when they claimed the same job again.
	resubmitted, lost, refused := e.m.resubmitted.Load(), int64(0), int64(0)
	for _, c := range e.clients {
		resubmitted += int64(len(c.Resubmitted()))
		lost += int64(c.SessionsLost())
		refused += int64(c.Refusals())
	}
	return map[string]int64{
		"completed":          e.m.completed.Load(),
		"failed":             e.m.failed.Load(),
		"flagged":            e.m.flagged.Load(),
		"resubmitted":        resubmitted,
		"sessions_lost":      lost,
		"orphaned":           e.m.orphaned.Load(),
		"refused":            refused,
		"heartbeat_failures": e.m.heartbeatFailures.Load(),
		"command_failures":   e.m.commandFailures.Load(),
		"command_runs":       e.m.runs.Load(),
		"tracker_failures":   e.m.trackerFailures.Load(),
		"checkpoints":        e.m.checkpoints.Load(),
		"preemption_notices": e.m.preemptions.Load(),
	}
}

// status returns the worker's status, safe to expose: every page of the
// status server (JSON, metrics, HTML) is built from it or from counters,
// never from the configuration or the journal directly.
func (e *engine) status() Status {
	reach, disk := e.reach.snapshot(), e.disk.Snapshot()
	st := Status{Tracker: redactedURL(e.cfg.TrackerURL), Stage: e.cfg.Stage, Journal: e.cfg.Journal, Draining: e.isDraining(), Counters: e.counters(), Reach: &reach, JournalStatus: &disk}
	for i, s := range e.slots {
		s.mu.Lock()
		st.Slots = append(st.Slots, SlotStatus{Slot: s.index, JournalSlot: e.clients[i].Slot(), DisplayName: s.name, State: s.state, Since: s.since, Job: s.job, Progress: s.progress})
		s.mu.Unlock()
	}
	return st
}

// stateSeconds sums the time all slots spent in each state, including the
// current, still open, intervals.
func (e *engine) stateSeconds() map[string]float64 {
	now := time.Now()
	out := map[string]float64{}
	e.m.mu.Lock()
	for k, v := range e.m.stateTime {
		out[k] += v.Seconds()
	}
	e.m.mu.Unlock()
	for _, s := range e.slots {
		s.mu.Lock()
		out[s.state] += now.Sub(s.since).Seconds()
		s.mu.Unlock()
	}
	return out
}

// Limits of GET /journal.
const (
	// maxSnapshots is how many journal snapshots are served at once; more
	// are answered 503. Each holds a bbolt read transaction, which keeps the
	// journal from growing its memory map until it ends.
	maxSnapshots = 2
	// snapshotWriteTimeout bounds the time a snapshot may take to send, so
	// that a slow reader cannot hold its read transaction for long.
	snapshotWriteTimeout = 30 * time.Second
)

// serveJournal streams a consistent snapshot of the journal (a bbolt read
// transaction written straight to the answer: no temporary file) when
// Config.StatusJournal allows it. The body is chunked: a cut transfer, or
// a snapshot that fails midway (the connection is aborted), lacks the
// final chunk, which the reader sees.
func (e *engine) serveJournal(w http.ResponseWriter, r *http.Request) {
	if !e.cfg.StatusJournal {
		http.Error(w, "the journal is not served here: it holds the worker tokens and the tracker's password; start dcworker with --status-journal to serve it", http.StatusNotFound)
		return
	}
	select {
	case e.snapshots <- struct{}{}:
		defer func() { <-e.snapshots }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many journal snapshots in progress; try again", http.StatusServiceUnavailable)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(snapshotWriteTimeout))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="journal.db"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := &countWriter{w: w}
	if _, err := e.db.WriteSnapshot(cw); err != nil {
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			http.Error(w, "journal snapshot failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		e.log.Warn("journal snapshot cut short", "remote", r.RemoteAddr, "bytes", cw.n, "err", err)
		panic(http.ErrAbortHandler) // no final chunk: the reader sees the cut
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// serveStatus starts the status server; the returned func stops it.
func (e *engine) serveStatus() (func(), error) {
	e.snapshots = make(chan struct{}, maxSnapshots)
	stop, err := statusserver.Serve(e.statusOptions())
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return stop, nil
}

// statusHandler serves what the status server serves.
func (e *engine) statusHandler() http.Handler { return statusserver.Handler(e.statusOptions()) }

// statusOptions is what the status server serves for dcworker.
func (e *engine) statusOptions() statusserver.Options {
	o := statusserver.Options{
		Addr: e.cfg.StatusAddr, Listening: e.cfg.StatusListening, Logger: e.log,
		Name: "dcworker", Status: e.status, Counters: counterHelp, States: allStates, BusyState: stateRunning,
		StateSeconds: e.stateSeconds, DB: e.db,
		Routes: func(mux *http.ServeMux) { mux.HandleFunc("GET /journal", e.serveJournal) },
	}
	if len(e.cfg.Command) > 0 {
		o.Command = e.cfg.Command[0]
	}
	if e.cfg.StatusJournal {
		o.Serves = "/journal (holds the worker tokens and the tracker's password)"
	}
	return o
}

// redactedURL hides a password in the tracker URL.
func redactedURL(raw string) string { return statusserver.RedactURL(raw) }

// countingTransport counts failed heartbeats (updateProgress requests).
type countingTransport struct {
	next  http.RoundTripper
	m     *metrics
	reach *reachability
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	began := time.Now()
	resp, err := t.next.RoundTrip(r)
	if t.reach.observe(began, resp, err) {
		t.m.trackerFailures.Add(1)
	}
	if len(r.URL.Path) >= len("updateProgress") && r.URL.Path[len(r.URL.Path)-len("updateProgress"):] == "updateProgress" {
		if err != nil || resp.StatusCode != http.StatusOK {
			t.m.heartbeatFailures.Add(1)
		}
	}
	return resp, err
}
