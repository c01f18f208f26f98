package proxy

import (
	"fmt"
	"sort"
	"time"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

// Local worker states in GET /status and the metrics.
const (
	stateIdle     = "idle"     // no job held
	stateWorking  = "working"  // holding a job
	stateSettling = "settling" // a completion or flag is being settled (AckJournal: after its answer)
	stateDead     = "dead"     // its program died; the next program at its stage takes it over
)

var allStates = []string{stateIdle, stateWorking, stateSettling, stateDead}

// ProgramStatus is one copy of the command in GET /status.
type ProgramStatus struct {
	Index    int    `json:"index"`
	PID      int    `json:"pid,omitempty"`
	Runs     int    `json:"runs"`
	LastExit string `json:"last_exit,omitempty"`
}

// Status is the JSON document served at GET /status: dcworker's document
// (one slot per local worker, the counters) and the proxy's own fields. It
// holds no token, and the tracker URL's password is redacted.
type Status struct {
	statusserver.Status
	Listen   string          `json:"listen"`
	Ack      string          `json:"ack"`
	Programs []ProgramStatus `json:"programs,omitempty"`
	Poison   []string        `json:"poison,omitempty"` // "stage/job"
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
	st := Status{Status: p.slotStatus(), Listen: p.addr, Ack: string(p.cfg.Ack)}
	p.mu.Lock()
	for k := range p.poison {
		st.Poison = append(st.Poison, fmt.Sprintf("%s/%d", k.stage, k.number))
	}
	progs := append([]*program(nil), p.progs...)
	p.mu.Unlock()
	sort.Strings(st.Poison)
	for _, pr := range progs {
		pr.mu.Lock()
		st.Programs = append(st.Programs, ProgramStatus{Index: pr.index, PID: pr.pid, Runs: pr.runs, LastExit: pr.lastExit})
		pr.mu.Unlock()
	}
	return st
}

// slotStatus is the part of Status that dcworker's has too. A worker's
// state is derived from what it does when asked, so its "since" is when a
// status request first saw that state.
func (p *Proxy) slotStatus() statusserver.Status {
	now := time.Now()
	reach, disk := p.reach.snapshot(), p.disk.Snapshot()
	st := statusserver.Status{Tracker: statusserver.RedactURL(p.tracker.String()), Journal: p.cfg.Journal,
		Draining: p.isDraining(), Counters: p.counters(), Slots: []statusserver.SlotStatus{}, Reach: &reach, JournalStatus: &disk}
	p.mu.Lock()
	for _, l := range p.bySlot {
		n, _, held := l.c.job()
		held = held && !l.ahead // a job claimed ahead is not the program's yet
		d, _, _ := l.c.names()
		state := stateIdle
		switch {
		case l.dead:
			state = stateDead
		case l.settling != nil && !isClosed(l.settling):
			state = stateSettling
		case held:
			state = stateWorking
		}
		if state != l.shown || l.shownSince.IsZero() {
			l.shown, l.shownSince = state, now
		}
		seen := time.Unix(0, l.lastSeen.Load()).UTC()
		ss := statusserver.SlotStatus{JournalSlot: l.slotName, DisplayName: d, State: state, Since: l.shownSince.UTC(),
			Progress: l.progress, Stage: l.stage, LastSeen: &seen}
		ss.Slot, _ = slotIndex(l.slotName)
		if held {
			ss.Job = n
		}
		if l.prog >= 0 {
			prog := l.prog
			ss.Program = &prog
		}
		st.Slots = append(st.Slots, ss)
	}
	p.mu.Unlock()
	sort.Slice(st.Slots, func(i, j int) bool { return st.Slots[i].Slot < st.Slots[j].Slot })
	return st
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// counterHelp names and explains each counter of counters as a metric, and
// labels those the live page shows.
var counterHelp = []statusserver.Counter{
	{Key: "registered", Metric: "dcproxy_workers_registered_total", Help: "Local workers registered by programs.", Label: "registered"},
	{Key: "adopted", Metric: "dcproxy_workers_adopted_total", Help: "Dead programs' workers taken over by a new registration.", Label: "taken over"},
	{Key: "claims", Metric: "dcproxy_claims_total", Help: "Jobs claimed at the tracker.", Label: "claims"},
	{Key: "handed_back", Metric: "dcproxy_jobs_handed_back_total", Help: "Held jobs handed to a program without a claim (after a restart or a program's death).", Label: "handed back"},
	{Key: "completed", Metric: "dcproxy_jobs_completed_total", Help: "Completions settled (accepted or applied earlier).", Label: "completed"},
	{Key: "flagged", Metric: "dcproxy_jobs_flagged_total", Help: "Flags settled.", Label: "flagged"},
	{Key: "resends_answered", Metric: "dcproxy_resends_answered_total", Help: "Resent completions or flags answered as applied.", Label: "resends answered"},
	{Key: "released", Metric: "dcproxy_jobs_released_total", Help: "Held jobs released (dead worker, poison, exit).", Label: "released"},
	{Key: "dead_workers", Metric: "dcproxy_dead_workers_total", Help: "Local workers counted dead after silence.", Label: "dead workers"},
	{Key: "poisoned", Metric: "dcproxy_poison_jobs_total", Help: "Jobs recorded as poison.", Label: "poison jobs"},
	{Key: "sessions_lost", Metric: "dcproxy_sessions_lost_total", Help: "Times the tracker lost a worker and the proxy registered afresh.", Label: "sessions lost"},
	{Key: "program_runs", Metric: "dcproxy_program_runs_total", Help: "Program starts.", Label: "program runs"},
	{Key: "program_failures", Metric: "dcproxy_program_failures_total", Help: "Program runs that failed (non-zero exit or signal).", Label: "program failures"},
	{Key: "passed_through", Metric: "dcproxy_passed_through_total", Help: "Requests passed through to the tracker."},
	{Key: "preemption_notices", Metric: "dcproxy_preemption_notices_total", Help: "Cloud preemption notices received.", Label: "preemption notices"},
}

// serveStatus starts the status server (dcworker's, see package
// statusserver); the returned func stops it.
func (p *Proxy) serveStatus() (func(), error) {
	o := statusserver.Options{
		Addr: p.cfg.StatusAddr, Listening: p.cfg.StatusListening, Logger: p.log,
		Name: "dcproxy", Status: p.slotStatus, Document: func() any { return p.Status() },
		Counters: counterHelp, States: allStates, BusyState: stateWorking, DB: p.db,
	}
	if len(p.cfg.Command) > 0 {
		o.Command = p.cfg.Command[0]
	}
	stop, err := statusserver.Serve(o)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return stop, nil
}
