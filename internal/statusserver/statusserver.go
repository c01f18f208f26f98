// Package statusserver is the status server of dcworker and dcproxy
// (--status-addr): GET /status (a JSON Status), GET /metrics (Prometheus:
// the program's counters and slot states beside the go_* and process_*
// collectors) and the live page (GET /, which refreshes itself from GET
// /page.json with the journal's latest events). Both programs serve the same
// document shape, metrics and page; what differs is what Options says: the
// program's name (the page's title and the metrics' prefix), its counters
// and its slot states.
//
// Nothing served holds a secret: the caller puts no token in a Status and
// gives the tracker URL through RedactURL; the page shows journal events as
// postmortem.EventLine does (tokens cut, payloads by size).
package statusserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/distcompute/distcompute-go/journal"
)

// Status is the JSON document served at GET /status.
type Status struct {
	Tracker  string           `json:"tracker"`
	Stage    string           `json:"stage,omitempty"` // dcworker's stage; dcproxy's workers each have theirs
	Journal  string           `json:"journal,omitempty"`
	Draining bool             `json:"draining"`
	Slots    []SlotStatus     `json:"slots"`
	Counters map[string]int64 `json:"counters"`
	// Reach is nil where the program does not follow the tracker's
	// reachability; JournalStatus where it does not follow the journal's
	// writability.
	*Reach
	*JournalStatus
}

// SlotStatus is one slot (one journaled worker) in GET /status.
type SlotStatus struct {
	Slot        int       `json:"slot"`
	JournalSlot string    `json:"journal_slot"`
	DisplayName string    `json:"display_name"`
	State       string    `json:"state"`
	Since       time.Time `json:"since"` // when the slot entered State
	Job         int       `json:"job,omitempty"`
	Progress    string    `json:"progress,omitempty"`
	// dcproxy only: the local worker's stage, the program copy that
	// registered it (absent: none of the proxy's programs), and when the
	// program last sent a request.
	Stage    string     `json:"stage,omitempty"`
	Program  *int       `json:"program,omitempty"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// Reach is the tracker's reachability as /status and the page show it.
type Reach struct {
	Reachable bool       `json:"tracker_reachable"`
	DownSince *time.Time `json:"tracker_unreachable_since,omitempty"`
	LastError string     `json:"tracker_error,omitempty"`
}

// JournalStatus is the journal's writability as /status and the page show
// it.
type JournalStatus struct {
	Writable bool `json:"journal_writable"`
	// Error is why the journal cannot be written ("" while writable).
	Error string `json:"journal_error,omitempty"`
	// Since is when it stopped being writable.
	Since *time.Time `json:"journal_unwritable_since,omitempty"`
	// NextRetry is the next attempt to journal what is held.
	NextRetry *time.Time `json:"journal_next_retry,omitempty"`
	// Deadline is when the program gives up (drains, exits 4).
	Deadline *time.Time `json:"journal_deadline,omitempty"`
	// Held lists what the slots hold in memory, not journaled yet.
	Held []string `json:"held_in_memory"`
	// Failures counts journal writes refused since the start.
	Failures int64 `json:"journal_write_failures"`
}

// Counter is one of the program's counters: its key in Status.Counters, its
// metric's name and help, and its label on the page (empty: not shown there).
type Counter struct {
	Key, Metric, Help, Label string
}

// Options say what a program's status server serves. Status is required.
type Options struct {
	// Addr is where to listen (":PORT" listens on every interface, and the
	// log says so); Listening, if set, is told the actual address.
	Addr      string
	Listening func(net.Addr)
	Logger    *slog.Logger // nil discards
	// Name is the program's name: the page's title and the metrics' prefix
	// ("dcworker": dcworker_slots, dcworker_draining, ...).
	Name string
	// Status returns what the program does now; it is called for every
	// request. The /status document is Document's, if set (a Status with
	// fields of the program's own embedded), else Status's.
	Status   func() Status
	Document func() any
	Counters []Counter
	// States lists every slot state, in the page's and metrics' order;
	// BusyState is the one the page's title counts ("running").
	States    []string
	BusyState string
	// StateSeconds, if set, returns the time slots spent in each state
	// (the NAME_state_seconds_total metric).
	StateSeconds func() map[string]float64
	// Command is shown on the page (the command's program name).
	Command string
	// DB is the journal whose latest events the page shows; nil: none.
	DB *journal.DB
	// Routes, if set, adds the program's own routes; Serves lists them for
	// the log line ("/journal (holds the worker tokens)").
	Routes func(*http.ServeMux)
	Serves string
}

// Handler serves /status, /metrics, / and /page.json per o.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		var doc any
		if o.Document != nil {
			doc = o.Document()
		} else {
			doc = o.Status()
		}
		_ = enc.Encode(doc)
	})
	mux.Handle("GET /metrics", metricsHandler(o))
	pageRoutes(mux, o)
	if o.Routes != nil {
		o.Routes(mux)
	}
	return mux
}

// Serve starts the status server; the returned func stops it. The error is
// the listener's.
func Serve(o Options) (stop func(), err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("status server: %w", err)
	}
	if o.Listening != nil {
		o.Listening(ln.Addr())
	}
	addr := ln.Addr().String()
	paths := "/status, /metrics, /"
	if o.Serves != "" {
		paths += ", " + o.Serves
	}
	if EveryInterface(ln.Addr()) {
		log.Warn("status server listening on every interface: anyone who can reach this machine can read it", "addr", addr, "serves", paths)
	} else {
		log.Info("status server listening", "addr", addr, "serves", paths)
	}
	srv := &http.Server{
		Handler:           Handler(o),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close() // a long answer (dcworker's journal snapshot) to a slow reader
		}
	}, nil
}

// EveryInterface reports whether a listens on every interface (":PORT",
// "0.0.0.0:PORT", "[::]:PORT").
func EveryInterface(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsUnspecified()
}

// RedactURL returns the tracker URL with its password, if any, replaced by
// "xxxxx", as the logs and dcjournal show it.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unreadable URL)"
	}
	return u.Redacted()
}
