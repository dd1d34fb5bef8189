package agents

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the hub's Prometheus metrics; a nil *Metrics records nothing.
type Metrics struct {
	offers     *prometheus.CounterVec
	firstAudio prometheus.Histogram
	online     prometheus.Gauge
}

// NewMetrics registers the hub's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		offers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_agent_offers_total",
			Help: "Calls offered to agents, by result: accepted, declined, missed, caller_gone, agent_lost, failed.",
		}, []string{"result"}),
		firstAudio: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ivrd_agent_first_audio_seconds",
			Help:    "From the agent's accept to the first caller audio sent to the agent.",
			Buckets: []float64{.005, .01, .02, .05, .1, .2, .5, 1, 2},
		}),
		online: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ivrd_agents_online", Help: "Agents with a signalling session on this instance.",
		}),
	}
	for _, c := range []prometheus.Collector{m.offers, m.firstAudio, m.online} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) offer(result string) {
	if m != nil {
		m.offers.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) audio(seconds float64) {
	if m != nil {
		m.firstAudio.Observe(seconds)
	}
}

func (m *Metrics) onlineAdd(n float64) {
	if m != nil {
		m.online.Add(n)
	}
}
