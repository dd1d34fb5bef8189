package media

import (
	"sync/atomic"
	"time"
)

// Relay latency: how long the server held a relayed packet, from the
// kernel's receive stamp on the socket it came in on (EnableRxStamps) to
// the moment the copy had been handed to the kernel on the way out —
// decoding, transcoding, SRTP, scheduling and waiting for the CPU
// included. It is what the server adds to the call's delay, measured per
// packet and kept process-wide in fixed buckets, lock-free.

// Relay directions.
const (
	ToAgent  = 0 // the caller's audio, RTP in, SRTP out
	ToCaller = 1 // the agent's audio, SRTP in, RTP out
)

// RelayBuckets are the latency histogram's upper bounds.
var RelayBuckets = []time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
}

type latencyHist struct {
	counts [12]atomic.Uint64 // per bucket of RelayBuckets, the last beyond them
	sum    atomic.Int64      // nanoseconds
}

var relayLatency [2]latencyHist

// ObserveRelay counts one relayed packet of direction dir that arrived at
// rx (a kernel stamp) and has just been sent. A zero rx (no stamp) is not
// counted.
func ObserveRelay(dir int, rx time.Time) {
	if rx.IsZero() {
		return
	}
	d := max(time.Since(rx), 0) // the stamp is wall-clock time: a clock step can make it negative
	h := &relayLatency[dir]
	i := 0
	for i < len(RelayBuckets) && d > RelayBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// RelayLatency returns direction dir's histogram so far: the count in each
// bucket of RelayBuckets (not cumulative) and one more beyond the last,
// and the sum of every latency.
func RelayLatency(dir int) (counts []uint64, sum time.Duration) {
	h := &relayLatency[dir]
	counts = make([]uint64, len(h.counts))
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
	}
	return counts, time.Duration(h.sum.Load())
}
