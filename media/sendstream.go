package media

import (
	"math/rand/v2"
	"time"
)

// relayMaxSkew is how far a relayed source's timestamps may drift from the
// stream's clock before the stream stops following them and continues
// from the clock instead. Network jitter toward us stays well inside it; a
// source that paused without advancing its timestamps, or jumped, does not.
const relayMaxSkew = 250 * time.Millisecond

const relayMaxSkewSamples = int32(relayMaxSkew / (time.Second / SampleRate))

// SendStream numbers one outgoing RTP stream whose audio comes in turn from
// different places — frames made here (prompts, hold music, silence) and
// packets relayed from another party — so that the receiver sees a single
// source: one SSRC, sequence numbers that go up by one per packet sent,
// and timestamps that follow the clock and never repeat or go backwards.
// The first packet after a switch of content carries the marker bit.
//
// Relayed packets keep the spacing of their source's timestamps (shifted
// by a fixed offset chosen at the first packet), so the jitter of their
// arrival is not baked into the stream and the receiver's jitter buffer
// sees what the source meant. When a source's timestamps leave the clock
// by more than relayMaxSkew (it paused without counting the pause, or its
// numbering jumped) the stream continues from the clock; a gap shows as a
// jump of the timestamp with the marker bit, never as a step back.
//
// A SendStream is not safe for concurrent use: its owner serialises calls.
type SendStream struct {
	ssrc  uint32
	seq   uint16
	epoch time.Time // the clock: timestamp ts0 at epoch, SampleRate per second
	ts0   uint32

	sent   bool
	next   uint32 // the timestamp that follows the last packet: its own plus its samples
	marker bool   // the next packet starts new content

	mapped bool   // a relayed source is being followed
	src    uint32 // its SSRC
	offset uint32 // our timestamp minus its timestamp
}

// NewSendStream starts a stream with a random SSRC, first sequence number
// and timestamp (RFC 3550 §5.1), its clock running from now.
func NewSendStream(now time.Time) *SendStream {
	return &SendStream{
		ssrc:  rand.Uint32(),
		seq:   uint16(rand.IntN(1 << 16)),
		epoch: now,
		ts0:   rand.Uint32(),
	}
}

// SSRC is the stream's synchronisation source.
func (st *SendStream) SSRC() uint32 { return st.ssrc }

// Switch says the next packet starts new content (a prompt after relayed
// audio, relayed audio after prompts, another source): it gets the marker
// bit, and a relayed source is followed afresh.
func (st *SendStream) Switch() {
	st.marker = true
	st.mapped = false
}

// clock is the stream's timestamp at t.
func (st *SendStream) clock(t time.Time) uint32 {
	return st.ts0 + uint32(int64(t.Sub(st.epoch)/(time.Second/SampleRate)))
}

// Frame stamps a frame made here, due at the given time (the pace's
// deadline), with samples samples; marker asks for the marker bit (the
// first frame of a prompt).
func (st *SendStream) Frame(at time.Time, samples int, marker bool) (seq uint16, ts uint32, m bool) {
	ts = st.clock(at)
	if st.sent && int32(ts-st.next) < 0 {
		// Relayed audio ran ahead of the clock: continue after it.
		ts = st.next
	}
	return st.emit(ts, samples, marker)
}

// Relay stamps a packet relayed from a source (its SSRC, timestamp and
// marker bit) arriving now with samples samples. ok is false when the
// packet must not be sent: it repeats or shortly precedes what was already
// sent for this source (a duplicate, or late after reordering). A source
// whose numbering jumps back further is followed afresh.
func (st *SendStream) Relay(now time.Time, ssrc, srcTS uint32, samples int, srcMarker bool) (seq uint16, ts uint32, m, ok bool) {
	clock := st.clock(now)
	same := st.mapped && ssrc == st.src
	if same {
		ts = srcTS + st.offset
		behind := int32(st.next - ts)
		if st.sent && behind > 0 && behind <= relayMaxSkewSamples {
			return 0, 0, false, false // a duplicate or reordered packet
		}
		if d := int32(ts - clock); (!st.sent || behind <= 0) && d <= relayMaxSkewSamples && d >= -relayMaxSkewSamples {
			seq, ts, m = st.emit(ts, samples, srcMarker)
			return seq, ts, m, true
		}
	}
	// A new source, or one whose timestamps left the clock: follow it from
	// here, at the clock, or right after the last packet if that is later.
	ts, gap := clock, true
	if st.sent && int32(ts-st.next) <= 0 {
		ts, gap = st.next, false
	}
	st.mapped, st.src, st.offset = true, ssrc, ts-srcTS
	seq, ts, m = st.emit(ts, samples, srcMarker || (st.sent && (gap || !same)))
	return seq, ts, m, true
}

func (st *SendStream) emit(ts uint32, samples int, marker bool) (uint16, uint32, bool) {
	m := marker || st.marker
	st.marker = false
	seq := st.seq
	st.seq++
	st.sent = true
	st.next = ts + uint32(samples)
	return seq, ts, m
}
