package sim

import (
	"math"
	"sync"
	"time"

	"ivrd/media"
)

// streamMeter follows the whole RTP stream the server sends one caller —
// prompts, music, silence and relayed agent audio alike — by its own
// sequence numbers and timestamps: how many packets were lost (RFC 3550
// A.3, extended sequence numbers), the interarrival jitter (RFC 3550
// §6.4.1, from the RTP timestamps, so it measures the server's pacing as
// it reaches the caller) and the longest silence between two packets.
// It follows the first SSRC it sees; packets of any other are counted
// apart. The call's receive goroutine owns it.
type streamMeter struct {
	started  bool
	ssrc     uint32
	base     uint32 // first extended sequence number
	maxSeq   uint16
	cycles   uint32 // wraps of the sequence number, << 16
	received int
	others   int // packets of another SSRC

	last    time.Time
	transit float64 // arrival minus RTP timestamp, in samples
	jitter  float64 // samples
	maxGap  time.Duration
}

// add takes one packet of the stream.
func (m *streamMeter) add(ssrc uint32, seq uint16, ts uint32, at time.Time) {
	arrival := float64(at.UnixNano()) * media.SampleRate / 1e9
	if !m.started {
		m.started, m.ssrc = true, ssrc
		m.base, m.maxSeq = uint32(seq), seq
		m.received, m.last = 1, at
		m.transit = arrival - float64(ts)
		return
	}
	if ssrc != m.ssrc {
		m.others++
		return
	}
	if d := seq - m.maxSeq; d != 0 && d < 1<<15 { // in order, possibly after a gap
		if seq < m.maxSeq {
			m.cycles += 1 << 16
		}
		m.maxSeq = seq
	}
	m.received++
	// The transit difference uses the 32-bit timestamp difference, so a
	// wrap of the timestamp does not read as a jump.
	transit := arrival - float64(ts)
	d := transit - m.transit
	if math.Abs(d) > 1<<31 { // the timestamp wrapped between the two
		d -= math.Copysign(1<<32, d)
	}
	m.transit = transit
	m.jitter += (math.Abs(d) - m.jitter) / 16
	if gap := at.Sub(m.last); gap > m.maxGap {
		m.maxGap = gap
	}
	m.last = at
}

func (m *streamMeter) expected() int {
	if !m.started {
		return 0
	}
	return int(m.cycles+uint32(m.maxSeq)-m.base) + 1
}

func (m *streamMeter) lost() int { return max(m.expected()-m.received, 0) }

func (m *streamMeter) jitterDuration() time.Duration {
	return time.Duration(m.jitter * float64(time.Second) / media.SampleRate)
}

// ServerStream is the server's stream to the callers over every call:
// loss by its sequence numbers, and per call the RFC 3550 jitter and the
// longest gap between two packets (a paced stream has 20 ms).
type ServerStream struct {
	Calls   int     `json:"calls"`
	Packets int     `json:"packets"`
	Lost    int     `json:"lost"`
	LossPct float64 `json:"loss_pct"`
	Jitter  Summary `json:"jitter"`  // per call, at its end
	MaxGap  Summary `json:"max_gap"` // per call
}

// streamSum adds up the callers' streamMeters as their calls end.
type streamSum struct {
	mu                       sync.Mutex
	calls, packets, expected int
	lost                     int
	jitter, gap              Hist
}

func (s *streamSum) add(m *streamMeter) {
	if !m.started {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.packets += m.received
	s.expected += m.expected()
	s.lost += m.lost()
	s.jitter.Add(m.jitterDuration())
	s.gap.Add(m.maxGap)
}

func (s *streamSum) result() ServerStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ServerStream{Calls: s.calls, Packets: s.packets, Lost: s.lost, Jitter: s.jitter.Summary(), MaxGap: s.gap.Summary()}
	if s.expected > 0 {
		out.LossPct = 100 * float64(s.lost) / float64(s.expected)
	}
	return out
}
