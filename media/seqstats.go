package media

// Loss from sequence numbers, as RFC 3550 appendix A.1 (validating the
// sequence) and A.3 (expected and lost) compute it, with two changes: a
// duplicate is recognised (a 128-packet window behind the highest sequence
// number) and not counted as received, so loss never goes negative; and a
// late packet from before the first one moves the base back instead of
// counting as received beyond what was expected.

const (
	maxDropout  = 3000 // A.1 MAX_DROPOUT: a forward jump up to this is a gap of lost packets
	maxMisorder = 100  // A.1 MAX_MISORDER: a packet less than this behind the highest is late
	seqMod      = 1 << 16
)

// seqResult is what update made of a packet.
type seqResult int

const (
	seqInOrder   seqResult = iota // the highest so far (possibly after a gap)
	seqLate                       // reordered: arrived after a higher one, counted as received
	seqDuplicate                  // seen before: not counted
	seqJump                       // a large jump not yet confirmed by the next packet: not counted
)

// seqStats follows the sequence numbers of the caller's stream. It is owned
// by the receive path and allocates nothing.
type seqStats struct {
	started  bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint64    // wraps seen, times 2^16; starts at 2^16 so a late packet before the first cannot go below zero
	base     uint64    // extended sequence number of the earliest packet of this run
	badSeq   uint32    // A.1 bad_seq: after a large jump, the number that confirms it (2^16+1: none)
	received uint64    // distinct packets of this run
	window   [2]uint64 // bit i set: extended highest minus i was received

	// Runs ended by a new SSRC or a confirmed restart of the numbering.
	prevExpected, prevLost uint64
}

// update takes one packet's SSRC and sequence number.
func (q *seqStats) update(ssrc uint32, seq uint16) seqResult {
	if !q.started {
		q.restart(ssrc, seq)
		return seqInOrder
	}
	if ssrc != q.ssrc {
		// A new source (transfer, re-INVITE, a gateway's new stream) numbers
		// from anywhere: what the old one lost stays counted.
		q.fold()
		q.restart(ssrc, seq)
		return seqInOrder
	}
	udelta := seq - q.maxSeq
	switch {
	case udelta == 0:
		return seqDuplicate
	case udelta < maxDropout:
		if seq < q.maxSeq {
			q.cycles += seqMod // wrapped past 65535
		}
		q.maxSeq = seq
		q.shift(uint(udelta))
		q.window[0] |= 1
		q.received++
		return seqInOrder
	case udelta <= seqMod-maxMisorder:
		// A large jump: the sender restarted its numbering, or a stray
		// packet. Two in a row in the new numbering confirm a restart.
		if uint32(seq) == q.badSeq {
			q.fold()
			q.restart(ssrc, seq)
			return seqInOrder
		}
		q.badSeq = uint32(seq + 1)
		return seqJump
	}
	back := uint(q.maxSeq - seq) // 1 … maxMisorder-1
	bit := &q.window[back/64]
	mask := uint64(1) << (back % 64)
	if *bit&mask != 0 {
		return seqDuplicate
	}
	*bit |= mask
	q.received++
	if ext := q.cycles + uint64(q.maxSeq) - uint64(back); ext < q.base {
		q.base = ext // the stream began before the first packet we saw
	}
	return seqLate
}

func (q *seqStats) restart(ssrc uint32, seq uint16) {
	q.started = true
	q.ssrc = ssrc
	q.maxSeq = seq
	q.cycles = seqMod
	q.base = q.cycles + uint64(seq)
	q.badSeq = seqMod + 1
	q.received = 1
	q.window = [2]uint64{1, 0}
}

// fold adds the current run to the totals.
func (q *seqStats) fold() {
	q.prevExpected += q.runExpected()
	q.prevLost += q.runLost()
}

// shift moves the window d places as the highest sequence number advances.
func (q *seqStats) shift(d uint) {
	switch {
	case d >= 128:
		q.window = [2]uint64{}
	case d >= 64:
		q.window[1], q.window[0] = q.window[0]<<(d-64), 0
	default:
		q.window[1] = q.window[1]<<d | q.window[0]>>(64-d)
		q.window[0] <<= d
	}
}

func (q *seqStats) runExpected() uint64 {
	if !q.started {
		return 0
	}
	return q.cycles + uint64(q.maxSeq) - q.base + 1
}

func (q *seqStats) runLost() uint64 {
	e := q.runExpected()
	if q.received >= e {
		return 0
	}
	return e - q.received
}

// expected is the number of packets the sender sent, by their numbers.
func (q *seqStats) expected() uint64 { return q.prevExpected + q.runExpected() }

// lost is expected minus the distinct packets received.
func (q *seqStats) lost() uint64 { return q.prevLost + q.runLost() }
