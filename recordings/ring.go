package recordings

import (
	"sync/atomic"

	"ivrd/media"
)

// slot is one packet (or a 20 ms piece of a longer one) waiting for the
// writer.
type slot struct {
	at   int64 // nanoseconds after the recording's start when it arrived or was sent
	ts   uint32
	ssrc uint32
	n    int
	pcm  [media.FrameSamples]byte // G.711, the call's law
}

// ring is a bounded single-producer, single-consumer queue of slots
// between one media direction and the recorder's writer. push never
// blocks: when the ring is full the packet is dropped and counted.
// Producers for one direction are serialised by the media session (see
// media.Tap), which is what "single producer" needs.
type ring struct {
	slots   []slot
	head    atomic.Uint64 // next slot to fill (producer)
	tail    atomic.Uint64 // next slot to read (consumer)
	dropped atomic.Uint64 // slots lost to a full ring
}

func newRing(n int) *ring { return &ring{slots: make([]slot, n)} }

// push copies a packet in, in pieces of at most 20 ms; it never blocks
// and never allocates.
func (r *ring) push(at int64, ssrc, ts uint32, payload []byte) {
	for len(payload) > 0 {
		h, t := r.head.Load(), r.tail.Load()
		if h-t >= uint64(len(r.slots)) {
			r.dropped.Add(uint64((len(payload) + media.FrameSamples - 1) / media.FrameSamples))
			return
		}
		s := &r.slots[h%uint64(len(r.slots))]
		s.at, s.ssrc, s.ts = at, ssrc, ts
		s.n = copy(s.pcm[:], payload)
		payload = payload[s.n:]
		ts += uint32(s.n)
		r.head.Store(h + 1)
	}
}

// peek returns the oldest slot, or nil; it stays valid until pop.
func (r *ring) peek() *slot {
	t := r.tail.Load()
	if t == r.head.Load() {
		return nil
	}
	return &r.slots[t%uint64(len(r.slots))]
}

// pop frees the slot peek returned.
func (r *ring) pop() { r.tail.Add(1) }
