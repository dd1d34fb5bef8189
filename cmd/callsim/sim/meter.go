package sim

import (
	"math"
	"time"
)

// Meter measures one direction of one call at its receiver, from the
// stamps of the packets that arrive: how many were lost (gaps in the
// stamps' counters, RFC 3550 appendix A.3's expected minus received), the
// interarrival jitter (RFC 3550 §6.4.1, with the stamp's send time as the
// RTP timestamp, so it is in real time units), and each packet's relay
// latency (arrival minus send time; sender and receiver share callsim's
// clock) in a Hist, so its memory does not grow with the call. Its owner is
// the goroutine that receives the packets.
type Meter struct {
	started  bool
	minSeq   uint32
	maxSeq   uint32
	received int
	firstAt  time.Time
	transit  int64   // the previous packet's arrival minus its send time, ns
	jitter   float64 // ns
	latency  Hist
}

// Add takes one stamped packet and when it arrived.
func (m *Meter) Add(s Stamp, at time.Time) {
	transit := at.UnixNano() - s.Sent
	if !m.started {
		m.started = true
		m.minSeq, m.maxSeq = s.Seq, s.Seq
		m.firstAt = at
	} else {
		// RFC 3550 §6.4.1: J += (|D| − J)/16, D the change in transit time
		// between consecutive arrivals.
		d := math.Abs(float64(transit - m.transit))
		m.jitter += (d - m.jitter) / 16
		m.minSeq = min(m.minSeq, s.Seq)
		m.maxSeq = max(m.maxSeq, s.Seq)
	}
	m.transit = transit
	m.received++
	m.latency.Add(time.Duration(transit))
}

// Received is how many stamped packets arrived.
func (m *Meter) Received() int { return m.received }

// Expected is how many the sender sent between the first and the last
// that arrived.
func (m *Meter) Expected() int {
	if !m.started {
		return 0
	}
	return int(m.maxSeq-m.minSeq) + 1
}

// Lost is Expected minus Received, never below zero (a duplicate is not a
// negative loss).
func (m *Meter) Lost() int { return max(m.Expected()-m.received, 0) }

// Jitter is the RFC 3550 interarrival jitter after the last packet.
func (m *Meter) Jitter() time.Duration { return time.Duration(m.jitter) }

// FirstAt is when the first stamped packet arrived (zero: none did).
func (m *Meter) FirstAt() time.Time { return m.firstAt }

// Latency is the distribution of the packets' relay latencies.
func (m *Meter) Latency() *Hist { return &m.latency }
