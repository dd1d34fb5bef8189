package sip

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the SIP front end's Prometheus series. A nil *Metrics records
// nothing, so tests and tools can leave it out.
type Metrics struct {
	requests  *prometheus.CounterVec
	malformed *prometheus.CounterVec
	calls     *prometheus.CounterVec
	active    prometheus.Gauge
}

// NewMetrics registers the SIP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_sip_requests_total", Help: "SIP requests received, by method.",
		}, []string{"method"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_sip_malformed_total", Help: "Malformed SIP messages, by the status we answered (-1: dropped response).",
		}, []string{"status"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_calls_total", Help: "Calls ended or rejected, by outcome.",
		}, []string{"outcome"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ivrd_calls_active", Help: "Calls in progress.",
		}),
	}
	reg.MustRegister(m.requests, m.malformed, m.calls, m.active)
	return m
}

func (m *Metrics) request(method string) {
	if m != nil {
		m.requests.WithLabelValues(method).Inc()
	}
}

func (m *Metrics) malformedMsg(status int) {
	if m != nil {
		m.malformed.WithLabelValues(statusLabel(status)).Inc()
	}
}

func (m *Metrics) callStarted() {
	if m != nil {
		m.active.Inc()
	}
}

func (m *Metrics) callFinished(o Outcome) {
	if m != nil {
		m.active.Dec()
		m.calls.WithLabelValues(string(o)).Inc()
	}
}

func (m *Metrics) callRejected(o Outcome) {
	if m != nil {
		m.calls.WithLabelValues(string(o)).Inc()
	}
}

func statusLabel(status int) string {
	switch status {
	case 400:
		return "400"
	case 513:
		return "513"
	}
	return "dropped"
}
