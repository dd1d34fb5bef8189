package queue

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the queue's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	callers    *prometheus.CounterVec
	matches    *prometheus.CounterVec
	dispatchEr prometheus.Counter
	repairs    *prometheus.CounterVec
	restarts   *prometheus.CounterVec
	up         prometheus.Gauge
}

// NewMetrics registers the queue's counters on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		callers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_queue_callers_total",
			Help: "Callers by skill and what happened: queued, not_queued, answered, abandoned, overflowed, to_menu, callback.",
		}, []string{"skill", "result"}),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_queue_matches_total", Help: "Callers matched with an agent by this instance's dispatcher.",
		}, []string{"skill"}),
		dispatchEr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ivrd_queue_dispatch_errors_total", Help: "Dispatch rounds that failed (Redis errors).",
		}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_queue_repairs_total",
			Help: "What reconciliation repaired: abandoned, lost, stale_entries, agents_freed, restored.",
		}, []string{"kind"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_queue_loop_restarts_total", Help: "Background loops restarted after a panic.",
		}, []string{"loop"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ivrd_redis_up", Help: "1 when Redis answered the last health check.",
		}),
	}
	for _, c := range []prometheus.Collector{m.callers, m.matches, m.dispatchEr, m.repairs, m.restarts, m.up} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) result(skill, result string) {
	if m != nil {
		m.callers.WithLabelValues(skill, result).Inc()
	}
}

func (m *Metrics) matched(skill string) {
	if m != nil {
		m.matches.WithLabelValues(skill).Inc()
	}
}

func (m *Metrics) dispatchError() {
	if m != nil {
		m.dispatchEr.Inc()
	}
}

func (m *Metrics) repair(kind string) {
	if m != nil {
		m.repairs.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) reconciled(r ReconcileReport) {
	if m == nil {
		return
	}
	for kind, n := range map[string]int{"abandoned": r.Abandoned, "lost": r.Lost, "stale_entries": r.Removed,
		"agents_freed": r.Repaired, "restored": len(r.Missing)} {
		if n > 0 {
			m.repairs.WithLabelValues(kind).Add(float64(n))
		}
	}
}

func (m *Metrics) loopRestart(loop string) {
	if m != nil {
		m.restarts.WithLabelValues(loop).Inc()
	}
}

func (m *Metrics) redisUp(up bool) {
	if m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.up.Set(v)
	}
}

// StatsCollector exports each skill's queue as Prometheus gauges, read
// from Redis at scrape time: depth, longest wait, estimate, agents by
// state, and today's counters.
type StatsCollector struct {
	q *Queue

	waiting, longest, ewt, sl *prometheus.Desc
	agents, today             *prometheus.Desc
}

// NewStatsCollector returns a collector for q; register it on a registry.
func NewStatsCollector(q *Queue) *StatsCollector {
	return &StatsCollector{
		q:       q,
		waiting: prometheus.NewDesc("ivrd_queue_waiting", "Callers waiting now.", []string{"skill"}, nil),
		longest: prometheus.NewDesc("ivrd_queue_longest_wait_seconds", "How long the longest-waiting caller has waited.", []string{"skill"}, nil),
		ewt:     prometheus.NewDesc("ivrd_queue_estimated_wait_seconds", "Estimated wait of a caller joining now.", []string{"skill"}, nil),
		sl:      prometheus.NewDesc("ivrd_queue_service_level", "Share of today's answered callers answered within the threshold.", []string{"skill"}, nil),
		agents:  prometheus.NewDesc("ivrd_queue_agents", "Agents with the skill by state.", []string{"skill", "state"}, nil),
		today:   prometheus.NewDesc("ivrd_queue_today", "Today's counters: offered, answered, abandoned, lost, overflowed, to_menu, callbacks.", []string{"skill", "counter"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.waiting, c.longest, c.ewt, c.sl, c.agents, c.today} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A skill whose snapshot cannot
// be read (Redis down) is left out of the scrape.
func (c *StatsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, skill := range c.q.Skills() {
		r, err := c.q.Report(ctx, skill)
		if err != nil {
			continue
		}
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{skill}, labels...)...)
		}
		g(c.waiting, float64(r.Waiting))
		g(c.longest, r.LongestWaitS)
		g(c.ewt, r.EWTS)
		g(c.sl, r.ServiceLevel)
		for state, n := range r.Agents.byState() {
			g(c.agents, float64(n), state)
		}
		for name, n := range map[string]int{"offered": r.Offered, "answered": r.Answered, "abandoned": r.Abandoned,
			"lost": r.Lost, "overflowed": r.Overflowed, "to_menu": r.ToMenu, "callbacks": r.Callbacks} {
			g(c.today, float64(n), name)
		}
	}
}
