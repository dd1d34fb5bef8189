package sip

import (
	"bytes"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"ivrd/media"
)

// Metrics are the SIP front end's Prometheus series. A nil *Metrics records
// nothing, so tests and tools can leave it out.
type Metrics struct {
	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
	malformed *prometheus.CounterVec
	calls     *prometheus.CounterVec
	active    prometheus.Gauge
	inState   *prometheus.GaugeVec

	rtpPackets *prometheus.CounterVec
	rtpBytes   *prometheus.CounterVec
	rtpDropped *prometheus.CounterVec
	rtpLost    prometheus.Counter
	rtpLate    prometheus.Counter
}

// Call states for ivrd_calls_in_state.
const (
	stateRinging  = "ringing"  // INVITE taken, not yet confirmed by the ACK of our 200 OK
	stateAnswered = "answered" // confirmed, until the call ends
)

// NewMetrics registers the SIP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_sip_requests_total", Help: "SIP requests received, by method.",
		}, []string{"method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_sip_responses_total",
			Help: "SIP responses sent, by request method and status code, provisional and final. " +
				"Each response counts once: retransmissions (of a 200 OK until its ACK, of an answer to a repeated request) do not. " +
				"Includes the 400 and 513 answers to malformed messages and the 200 to a CANCEL and 487 to the INVITE it ends.",
		}, []string{"method", "code"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_sip_malformed_total", Help: "Malformed SIP messages, by the status we answered (dropped: an unparseable response or not SIP at all, never answered).",
		}, []string{"status"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_calls_total", Help: "Calls ended or rejected, by outcome.",
		}, []string{"outcome"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ivrd_calls_active", Help: "Calls in progress.",
		}),
		inState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ivrd_calls_in_state",
			Help: "Calls held by the SIP server, by state: ringing (INVITE taken, not yet confirmed by the ACK of our 200 OK), " +
				"answered (confirmed, until the call ends). Calls rejected outright are in neither.",
		}, []string{"state"}),
		rtpPackets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_rtp_packets_total",
			Help: "RTP packets, by direction: in (valid, from the caller's address), out (sent to callers). Added when each call ends.",
		}, []string{"direction"}),
		rtpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_rtp_bytes_total",
			Help: "RTP bytes (header and payload) of ivrd_rtp_packets_total, by direction. Added when each call ends.",
		}, []string{"direction"}),
		rtpDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_rtp_dropped_total",
			Help: "Packets received on media ports and dropped, by reason: malformed (not RTP), wrong_type (payload type not negotiated), " +
				"foreign (not from the caller's address). Added when each call ends.",
		}, []string{"reason"}),
		rtpLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ivrd_rtp_lost_total",
			Help: "RTP packets from callers that never arrived, from their sequence numbers (RFC 3550 A.3; counted afresh for each SSRC; " +
				"late packets are not lost, duplicates do not make up for lost ones). Added when each call ends.",
		}),
		rtpLate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ivrd_rtp_late_total",
			Help: "RTP packets from callers that arrived after a higher-numbered one (reordered). Added when each call ends.",
		}),
	}
	for _, st := range []string{stateRinging, stateAnswered} {
		m.inState.WithLabelValues(st)
	}
	for _, d := range []string{"in", "out"} {
		m.rtpPackets.WithLabelValues(d)
		m.rtpBytes.WithLabelValues(d)
	}
	for _, r := range []string{"malformed", "wrong_type", "foreign"} {
		m.rtpDropped.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.responses, m.malformed, m.calls, m.active, m.inState,
		m.rtpPackets, m.rtpBytes, m.rtpDropped, m.rtpLost, m.rtpLate)
	return m
}

func (m *Metrics) request(method string) {
	if m != nil {
		m.requests.WithLabelValues(method).Inc()
	}
}

// response counts one response sent to a request with this method.
func (m *Metrics) response(method string, status int) {
	if m != nil {
		m.responses.WithLabelValues(methodLabel(method), strconv.Itoa(status)).Inc()
	}
}

// methodLabel keeps the method label to the methods we serve.
func methodLabel(method string) string {
	switch method {
	case "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE":
		return method
	}
	return "other"
}

// rawMethod is the method of a raw request we could not parse, for the
// metric label ("other" when there is none to read).
func rawMethod(msg []byte) string {
	method, _, ok := bytes.Cut(msg, []byte(" "))
	if !ok || len(method) > 16 {
		return "other"
	}
	return methodLabel(string(method))
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

// callState moves one call from one state to another; "" is none.
func (m *Metrics) callState(from, to string) {
	if m == nil || from == to {
		return
	}
	if from != "" {
		m.inState.WithLabelValues(from).Dec()
	}
	if to != "" {
		m.inState.WithLabelValues(to).Inc()
	}
}

// rtp adds a finished call's media counters. Done once per call, not per
// packet: the receive path stays free of shared counters.
func (m *Metrics) rtp(st media.SessionStats) {
	if m == nil {
		return
	}
	m.rtpPackets.WithLabelValues("in").Add(float64(st.PacketsIn))
	m.rtpPackets.WithLabelValues("out").Add(float64(st.PacketsOut))
	m.rtpBytes.WithLabelValues("in").Add(float64(st.BytesIn))
	m.rtpBytes.WithLabelValues("out").Add(float64(st.BytesOut))
	m.rtpDropped.WithLabelValues("malformed").Add(float64(st.Malformed))
	m.rtpDropped.WithLabelValues("wrong_type").Add(float64(st.WrongType))
	m.rtpDropped.WithLabelValues("foreign").Add(float64(st.Foreign))
	m.rtpLost.Add(float64(st.Lost))
	m.rtpLate.Add(float64(st.Late))
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
