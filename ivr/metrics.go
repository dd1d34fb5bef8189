package ivr

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what flows do. Create it once per process and share it
// between runners (a reloaded flow gets a new Runner, not new metrics).
type Metrics struct {
	outcomes *prometheus.CounterVec
	inputs   *prometheus.CounterVec
}

// Results of one menu or collect attempt (label result of
// ivrd_ivr_inputs_total).
const (
	inputValid   = "valid"
	inputInvalid = "invalid"
	inputTimeout = "timeout"
)

// NewMetrics creates the flow metrics and registers them on reg (nil: not
// registered): ivrd_ivr_flows_total{outcome} and
// ivrd_ivr_inputs_total{type, result}.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_ivr_flows_total",
			Help: "IVR flows run to an end, by outcome (hangup, queue_done, caller_gone, failed).",
		}, []string{"outcome"}),
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_ivr_inputs_total",
			Help: "Menu and collect attempts by node type and result (valid, invalid, timeout).",
		}, []string{"type", "result"}),
	}
	for _, o := range []Outcome{Hangup, QueueDone, CallerGone, Failed} {
		m.outcomes.WithLabelValues(string(o))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.outcomes, m.inputs} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register ivr metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *Metrics) outcome(o Outcome) {
	if m != nil {
		m.outcomes.WithLabelValues(string(o)).Inc()
	}
}

func (m *Metrics) input(t nodeType, result string) {
	if m != nil {
		m.inputs.WithLabelValues(string(t), result).Inc()
	}
}
