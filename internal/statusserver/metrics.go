package statusserver

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector reads the program's counters and slot states at each scrape, so
// that the program keeps one set of counters (also shown by /status and the
// page).
type collector struct {
	o                                        Options
	counters                                 []*prometheus.Desc
	stateSeconds, slots, draining, reachable *prometheus.Desc
	writable, writeFails, held               *prometheus.Desc
}

func newCollector(o Options) collector {
	c := collector{
		o:            o,
		stateSeconds: prometheus.NewDesc(o.Name+"_state_seconds_total", "Time slots spent in each state.", []string{"state"}, nil),
		slots:        prometheus.NewDesc(o.Name+"_slots", "Slots currently in each state.", []string{"state"}, nil),
		draining:     prometheus.NewDesc(o.Name+"_draining", "1 while the program drains after a stop signal or preemption notice.", nil, nil),
		reachable:    prometheus.NewDesc(o.Name+"_tracker_reachable", "1 while the tracker answers, 0 from the first request it left unanswered (or answered 5xx/429) until one succeeds.", nil, nil),
		writable:     prometheus.NewDesc(o.Name+"_journal_writable", "1 while the journal can be written, 0 from a write it refused (full, read-only or failing disk) until one succeeds.", nil, nil),
		writeFails:   prometheus.NewDesc(o.Name+"_journal_write_failures_total", "Journal writes refused (each attempt: a completion, flag, release, checkpoint or claim that could not be recorded).", nil, nil),
		held:         prometheus.NewDesc(o.Name+"_held_in_memory", "Outputs, flags and releases held in memory because the journal cannot be written.", nil, nil),
	}
	for _, k := range o.Counters {
		c.counters = append(c.counters, prometheus.NewDesc(k.Metric, k.Help, nil, nil))
	}
	return c
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.o.Status()
	for i, k := range c.o.Counters {
		ch <- prometheus.MustNewConstMetric(c.counters[i], prometheus.CounterValue, float64(st.Counters[k.Key]))
	}
	var secs map[string]float64
	if c.o.StateSeconds != nil {
		secs = c.o.StateSeconds()
	}
	busy := map[string]int{}
	for _, s := range st.Slots {
		busy[s.State]++
	}
	for _, s := range c.o.States {
		if secs != nil {
			ch <- prometheus.MustNewConstMetric(c.stateSeconds, prometheus.CounterValue, secs[s], s)
		}
		ch <- prometheus.MustNewConstMetric(c.slots, prometheus.GaugeValue, float64(busy[s]), s)
	}
	ch <- prometheus.MustNewConstMetric(c.draining, prometheus.GaugeValue, boolFloat(st.Draining))
	if st.Reach != nil {
		ch <- prometheus.MustNewConstMetric(c.reachable, prometheus.GaugeValue, boolFloat(st.Reachable))
	}
	if js := st.JournalStatus; js != nil {
		ch <- prometheus.MustNewConstMetric(c.writable, prometheus.GaugeValue, boolFloat(js.Writable))
		ch <- prometheus.MustNewConstMetric(c.writeFails, prometheus.CounterValue, float64(js.Failures))
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(len(js.Held)))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves GET /metrics: the program's metrics beside the
// standard go_* (runtime) and process_* (CPU, memory, file descriptors)
// collectors, from a registry of its own (never the global one).
func metricsHandler(o Options) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(o),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
