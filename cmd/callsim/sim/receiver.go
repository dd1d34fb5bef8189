package sim

import "time"

// receiver reads one side's stamps out of the packets the other side
// receives: a caller's receiver reads the agent's stamps, an agent's the
// caller's. The goroutine that receives the packets owns it until the
// call ends; then result gives the call's figures.
type receiver struct {
	from    Kind
	meter   Meter
	stream  int           // the stream heard first; -1 none yet
	foreign int           // stamped packets of another stream: crossed audio
	heard   chan struct{} // closed at the first stamped packet
}

func newReceiver(from Kind) *receiver {
	return &receiver{from: from, stream: -1, heard: make(chan struct{})}
}

// packet reads the stamp of one PCMU payload that arrived at at.
func (r *receiver) packet(payload []byte, at time.Time) {
	st, ok := ReadStamp(payload)
	if !ok || st.Kind != r.from {
		return
	}
	if r.stream < 0 {
		r.stream = int(st.Stream)
		close(r.heard)
	}
	if int(st.Stream) != r.stream {
		r.foreign++
		return
	}
	r.meter.Add(st, at)
}

// result is this direction of the call as the report shows it (nil:
// nothing stamped arrived).
func (r *receiver) result() *StreamLeg {
	m := &r.meter
	if m.Received() == 0 && r.foreign == 0 {
		return nil
	}
	return &StreamLeg{Packets: m.Received(), Lost: m.Lost(), JitterMs: ms(m.Jitter()), Latency: m.Latency().Summary(), Foreign: r.foreign}
}
