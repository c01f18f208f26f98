package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"time"
)

// WorkerStatus is one local worker in GET /status. It holds no token.
type WorkerStatus struct {
	JournalSlot string    `json:"journal_slot"`
	DisplayName string    `json:"display_name"`
	Stage       string    `json:"stage"`
	State       string    `json:"state"` // "idle", "working", "settling", "dead"
	Job         int       `json:"job,omitempty"`
	Program     int       `json:"program"` // -1: not one of the proxy's programs
	LastSeen    time.Time `json:"last_seen"`
}

// ProgramStatus is one copy of the command in GET /status.
type ProgramStatus struct {
	Index    int    `json:"index"`
	PID      int    `json:"pid,omitempty"`
	Runs     int    `json:"runs"`
	LastExit string `json:"last_exit,omitempty"`
}

// Status is the JSON document served at GET /status.
type Status struct {
	Tracker  string           `json:"tracker"`
	Listen   string           `json:"listen"`
	Journal  string           `json:"journal"`
	Ack      string           `json:"ack"`
	Draining bool             `json:"draining"`
	Workers  []WorkerStatus   `json:"workers"`
	Programs []ProgramStatus  `json:"programs,omitempty"`
	Poison   []string         `json:"poison,omitempty"` // "stage/job"
	Counters map[string]int64 `json:"counters"`
}

func (p *Proxy) counters() map[string]int64 {
	lost := int64(0)
	p.mu.Lock()
	for _, l := range p.bySlot {
		lost += int64(l.c.sessionsLost())
	}
	p.mu.Unlock()
	return map[string]int64{
		"registered":         p.m.registered.Load(),
		"adopted":            p.m.adopted.Load(),
		"claims":             p.m.claims.Load(),
		"handed_back":        p.m.handedBack.Load(),
		"completed":          p.m.completed.Load(),
		"flagged":            p.m.flagged.Load(),
		"resends_answered":   p.m.resentAnswered.Load(),
		"released":           p.m.released.Load(),
		"dead_workers":       p.m.deadWorkers.Load(),
		"poisoned":           p.m.poisoned.Load(),
		"sessions_lost":      lost,
		"program_runs":       p.m.programRuns.Load(),
		"program_failures":   p.m.programFailures.Load(),
		"passed_through":     p.m.passedThrough.Load(),
		"preemption_notices": p.m.preemptions.Load(),
	}
}

// Status returns what the proxy is doing now.
func (p *Proxy) Status() Status {
	st := Status{Tracker: p.tracker.String(), Listen: p.addr, Journal: p.cfg.Journal, Ack: string(p.cfg.Ack),
		Draining: p.isDraining(), Counters: p.counters()}
	p.mu.Lock()
	for _, l := range p.bySlot {
		n, _, held := l.c.job()
		d, _, _ := l.c.names()
		ws := WorkerStatus{JournalSlot: l.slotName, DisplayName: d, Stage: l.stage, State: "idle", Program: l.prog,
			LastSeen: time.Unix(0, l.lastSeen.Load()).UTC()}
		if held {
			ws.State, ws.Job = "working", n
		}
		if l.settling != nil {
			select {
			case <-l.settling:
			default:
				ws.State = "settling"
			}
		}
		if l.dead {
			ws.State = "dead"
		}
		st.Workers = append(st.Workers, ws)
	}
	for k := range p.poison {
		st.Poison = append(st.Poison, fmt.Sprintf("%s/%d", k.stage, k.number))
	}
	progs := append([]*program(nil), p.progs...)
	p.mu.Unlock()
	sort.Slice(st.Workers, func(i, j int) bool { return st.Workers[i].JournalSlot < st.Workers[j].JournalSlot })
	sort.Strings(st.Poison)
	for _, pr := range progs {
		pr.mu.Lock()
		st.Programs = append(st.Programs, ProgramStatus{Index: pr.index, PID: pr.pid, Runs: pr.runs, LastExit: pr.lastExit})
		pr.mu.Unlock()
	}
	return st
}

func (p *Proxy) writeMetrics(w io.Writer) {
	c := p.counters()
	for _, m := range []struct{ name, key, help string }{
		{"dcproxy_workers_registered_total", "registered", "Local workers registered by programs."},
		{"dcproxy_workers_adopted_total", "adopted", "Dead programs' workers taken over by a new registration."},
		{"dcproxy_claims_total", "claims", "Jobs claimed at the tracker."},
		{"dcproxy_jobs_handed_back_total", "handed_back", "Held jobs handed to a program without a claim (after a restart or a program's death)."},
		{"dcproxy_jobs_completed_total", "completed", "Completions settled (accepted or applied earlier)."},
		{"dcproxy_jobs_flagged_total", "flagged", "Flags settled."},
		{"dcproxy_resends_answered_total", "resends_answered", "Resent completions or flags answered as applied."},
		{"dcproxy_jobs_released_total", "released", "Held jobs released (dead worker, poison, exit)."},
		{"dcproxy_dead_workers_total", "dead_workers", "Local workers counted dead after silence."},
		{"dcproxy_poison_jobs_total", "poisoned", "Jobs recorded as poison."},
		{"dcproxy_sessions_lost_total", "sessions_lost", "Times the tracker lost a worker and the proxy registered afresh."},
		{"dcproxy_program_runs_total", "program_runs", "Program starts."},
		{"dcproxy_program_failures_total", "program_failures", "Program runs that failed (non-zero exit or signal)."},
		{"dcproxy_passed_through_total", "passed_through", "Requests passed through to the tracker."},
		{"dcproxy_preemption_notices_total", "preemption_notices", "Cloud preemption notices received."},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, c[m.key])
	}
	states := map[string]int{}
	for _, ws := range p.Status().Workers {
		states[ws.State]++
	}
	fmt.Fprintf(w, "# HELP dcproxy_workers Local workers in each state.\n# TYPE dcproxy_workers gauge\n")
	for _, s := range []string{"idle", "working", "settling", "dead"} {
		fmt.Fprintf(w, "dcproxy_workers{state=%q} %d\n", s, states[s])
	}
	d := 0
	if p.isDraining() {
		d = 1
	}
	fmt.Fprintf(w, "# HELP dcproxy_draining 1 while the proxy drains.\n# TYPE dcproxy_draining gauge\ndcproxy_draining %d\n", d)
}

func (p *Proxy) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(p.Status())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		p.writeMetrics(w)
	})
	return mux
}

func (p *Proxy) serveStatus() (func(), error) {
	ln, err := net.Listen("tcp", p.cfg.StatusAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy: status server: %w", err)
	}
	if p.cfg.StatusListening != nil {
		p.cfg.StatusListening(ln.Addr())
	}
	p.log.Info("status server listening", "addr", ln.Addr().String())
	srv := &http.Server{Handler: p.statusHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
