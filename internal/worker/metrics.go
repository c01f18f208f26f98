package worker

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// counterHelp names and explains each counter of [engine.counters] as a metric.
var counterHelp = []struct{ key, name, help string }{
	{"completed", "dcworker_jobs_completed_total", "Jobs completed (output accepted or journaled for resubmission)."},
	{"failed", "dcworker_jobs_failed_total", "Jobs released after the command failed on every attempt."},
	{"flagged", "dcworker_jobs_flagged_total", "Jobs whose input was flagged invalid."},
	{"resubmitted", "dcworker_jobs_resubmitted_total", "Completions resubmitted from the journal (on start, or orphaned output on a new claim)."},
	{"refused", "dcworker_jobs_refused_total", "Jobs refused at a claim (data that cannot be decoded: flagged; an answer over the size limit, a refused flag, a job refused before: released)."},
	{"orphaned", "dcworker_jobs_orphaned_total", "Completions orphaned: the worker had timed out (found on start, or answered on completion)."},
	{"sessions_lost", "dcworker_sessions_lost_total", "Times the tracker lost a worker identity (timed out) and the client registered afresh."},
	{"heartbeat_failures", "dcworker_heartbeat_failures_total", "Progress/heartbeat requests that failed."},
	{"tracker_failures", "dcworker_tracker_request_failures_total", "Requests to the tracker that got no answer or a 5xx/429 answer (each attempt)."},
	{"command_failures", "dcworker_command_failures_total", "Command runs that failed (each attempt)."},
	{"command_runs", "dcworker_command_runs_total", "Command runs started (each attempt, counted when the process has started)."},
	{"checkpoints", "dcworker_checkpoints_total", "Checkpoints stored."},
	{"preemption_notices", "dcworker_preemption_notices_total", "Cloud preemption notices received."},
}

var (
	descStateSeconds = prometheus.NewDesc("dcworker_state_seconds_total", "Time slots spent in each state.", []string{"state"}, nil)
	descSlots        = prometheus.NewDesc("dcworker_slots", "Slots currently in each state.", []string{"state"}, nil)
	descDraining     = prometheus.NewDesc("dcworker_draining", "1 while the worker drains after a stop signal or preemption notice.", nil, nil)
	descReachable    = prometheus.NewDesc("dcworker_tracker_reachable", "1 while the tracker answers, 0 from the first request it left unanswered (or answered 5xx/429) until one succeeds.", nil, nil)
	descWritable     = prometheus.NewDesc("dcworker_journal_writable", "1 while the journal can be written, 0 from a write it refused (full, read-only or failing disk) until one succeeds.", nil, nil)
	descWriteFails   = prometheus.NewDesc("dcworker_journal_write_failures_total", "Journal writes refused (each attempt: a completion, flag, release, checkpoint or claim that could not be recorded).", nil, nil)
	descHeld         = prometheus.NewDesc("dcworker_held_in_memory", "Outputs, flags and releases held in memory because the journal cannot be written.", nil, nil)
)

// engineCollector reads the engine's counters and slot states at each scrape, so
// that the engine keeps one set of counters (also shown by /status and the page).
type engineCollector struct{ e *engine }

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	counters := c.e.counters()
	for _, h := range counterHelp {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(h.name, h.help, nil, nil), prometheus.CounterValue, float64(counters[h.key]))
	}
	secs := c.e.stateSeconds()
	busy := map[string]int{}
	for _, s := range c.e.slotList() {
		s.mu.Lock()
		busy[s.state]++
		s.mu.Unlock()
	}
	for _, s := range allStates {
		ch <- prometheus.MustNewConstMetric(descStateSeconds, prometheus.CounterValue, secs[s], s)
		ch <- prometheus.MustNewConstMetric(descSlots, prometheus.GaugeValue, float64(busy[s]), s)
	}
	ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, boolFloat(c.e.isDraining()))
	ch <- prometheus.MustNewConstMetric(descReachable, prometheus.GaugeValue, boolFloat(c.e.reach.snapshot().Reachable))
	js := c.e.disk.snapshot()
	ch <- prometheus.MustNewConstMetric(descWritable, prometheus.GaugeValue, boolFloat(js.Writable))
	ch <- prometheus.MustNewConstMetric(descWriteFails, prometheus.CounterValue, float64(js.Failures))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(len(js.Held)))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves GET /metrics: the engine's metrics beside the standard
// go_* (runtime) and process_* (CPU, memory, file descriptors) collectors, from a
// registry of its own (never the global one).
func (e *engine) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		engineCollector{e},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
