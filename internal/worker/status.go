package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Slot states, as shown by /status and the dcworker_state_seconds_total metric.
const (
	stateIdle       = "idle"       // not started yet
	stateWaiting    = "waiting"    // waiting for a job
	stateRunning    = "running"    // the command runs
	stateCompleting = "completing" // sending the output
	stateFlagging   = "flagging"   // flagging invalid data
	stateReleasing  = "releasing"  // handing a failed job back
	stateDraining   = "draining"   // stop signal passed on, grace period running
	stateStopped    = "stopped"    // the slot is done
)

var allStates = []string{stateIdle, stateWaiting, stateRunning, stateCompleting, stateFlagging, stateReleasing, stateDraining, stateStopped}

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
type SlotStatus struct {
	Slot        int       `json:"slot"`
	JournalSlot string    `json:"journal_slot"`
	DisplayName string    `json:"display_name"`
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	Job         int       `json:"job,omitempty"`
	Progress    string    `json:"progress,omitempty"`
}

// Status is the JSON document served at GET /status.
type Status struct {
	Tracker  string           `json:"tracker"`
	Stage    string           `json:"stage"`
	Journal  string           `json:"journal,omitempty"`
	Draining bool             `json:"draining"`
	Slots    []SlotStatus     `json:"slots"`
	Counters map[string]int64 `json:"counters"`
	Reach
}

func (e *engine) counters() map[string]int64 {
	// Resubmissions: those of the start-up replay, plus orphaned outputs the
	// clients submitted when they claimed the same job again.
	resubmitted, lost := e.m.resubmitted.Load(), int64(0)
	for _, c := range e.clients {
		resubmitted += int64(len(c.Resubmitted()))
		lost += int64(c.SessionsLost())
	}
	return map[string]int64{
		"completed":          e.m.completed.Load(),
		"failed":             e.m.failed.Load(),
		"flagged":            e.m.flagged.Load(),
		"resubmitted":        resubmitted,
		"sessions_lost":      lost,
		"orphaned":           e.m.orphaned.Load(),
		"heartbeat_failures": e.m.heartbeatFailures.Load(),
		"command_failures":   e.m.commandFailures.Load(),
		"command_runs":       e.m.runs.Load(),
		"tracker_failures":   e.m.trackerFailures.Load(),
		"checkpoints":        e.m.checkpoints.Load(),
		"preemption_notices": e.m.preemptions.Load(),
	}
}

func (e *engine) status() Status {
	st := Status{Tracker: e.cfg.TrackerURL, Stage: e.cfg.Stage, Journal: e.cfg.Journal, Draining: e.isDraining(), Counters: e.counters(), Reach: e.reach.snapshot()}
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

func (e *engine) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e.status())
	})
	mux.Handle("GET /metrics", e.metricsHandler())
	e.pageRoutes(mux)
	mux.HandleFunc("GET /journal", func(w http.ResponseWriter, r *http.Request) {
		// Snapshot to a temporary file first, so that the answer has a
		// Content-Length (a cut transfer is detectable) and a failed
		// snapshot is a 500, not a truncated 200.
		f, err := os.CreateTemp(e.workDir, "snapshot-*.db")
		if err != nil {
			http.Error(w, "journal snapshot failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := e.db.WriteSnapshot(f); err != nil {
			http.Error(w, "journal snapshot failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="journal.db"`)
		http.ServeContent(w, r, "", time.Time{}, f)
	})
	return mux
}

// serveStatus starts the status server; the returned func stops it.
func (e *engine) serveStatus() (func(), error) {
	ln, err := net.Listen("tcp", e.cfg.StatusAddr)
	if err != nil {
		return nil, fmt.Errorf("worker: status server: %w", err)
	}
	if e.cfg.StatusListening != nil {
		e.cfg.StatusListening(ln.Addr())
	}
	e.log.Info("status server listening", "addr", ln.Addr().String())
	srv := &http.Server{Handler: e.statusHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// countingTransport counts failed heartbeats (updateProgress requests).
type countingTransport struct {
	next  http.RoundTripper
	m     *metrics
	reach *reachability
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if t.reach.observe(resp, err) {
		t.m.trackerFailures.Add(1)
	}
	if len(r.URL.Path) >= len("updateProgress") && r.URL.Path[len(r.URL.Path)-len("updateProgress"):] == "updateProgress" {
		if err != nil || resp.StatusCode != http.StatusOK {
			t.m.heartbeatFailures.Add(1)
		}
	}
	return resp, err
}
