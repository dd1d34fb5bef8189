package sim

import (
	"math"
	"math/bits"
	"time"
)

// Hist is a streaming histogram of durations: it keeps counts in fixed
// log-linear buckets instead of the values, so a run's millions of packet
// latencies take the same few kilobytes as one call's, and two histograms
// merge by adding their counts. Quantiles are within 0.8% of the exact
// nearest-rank value, or 0.5 µs below 128 µs, for values from 0 to 67 s;
// Count, Min, Max and Mean are exact. The zero value is empty and ready to
// use, and allocates nothing until its first Add.
//
// The buckets are those of an HDR histogram in microseconds: below 128 µs
// one per microsecond, above that 64 per power of two, so a bucket is at
// most 1/64 of its lower bound wide and its middle is within 1/128 of any
// value in it.
type Hist struct {
	counts   []uint64 // histBuckets of them, nil until the first Add
	n        int64
	sum      float64 // ns
	min, max time.Duration
}

const (
	histSubBits = 6 // 64 buckets per power of two
	histSub     = 1 << histSubBits
	histTopBits = 26 // the last bucket ends at 2^26 µs, 67.1 s
	histBuckets = (histTopBits - histSubBits + 1) * histSub
)

// histBucket is the bucket of us microseconds (larger values share the
// last bucket).
func histBucket(us uint64) int {
	if us < 2*histSub {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits - 1
	return min(shift*histSub+int(us>>shift), histBuckets-1)
}

// histRange is where bucket i starts and how wide it is, in microseconds.
func histRange(i int) (lo, width uint64) {
	if i < 2*histSub {
		return uint64(i), 1
	}
	shift := i/histSub - 1
	return uint64(i-shift*histSub) << shift, 1 << shift
}

// Add counts one value. Negative values count as 0.
func (h *Hist) Add(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	h.counts[histBucket(uint64(max(d, 0)/time.Microsecond))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if h.n == 0 || d > h.max {
		h.max = d
	}
	h.n++
	h.sum += float64(d)
}

// Merge adds every value counted in o.
func (h *Hist) Merge(o *Hist) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.n == 0 || o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is how many values were added.
func (h *Hist) Count() int { return int(h.n) }

// Min is the smallest value added (0: none).
func (h *Hist) Min() time.Duration { return h.min }

// Max is the largest value added (0: none).
func (h *Hist) Max() time.Duration { return h.max }

// Mean is the values' average (0: none).
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile estimates the nearest-rank q-quantile (0 < q <= 1): the
// smallest value with at least a share q of the values at or below it.
// The estimate is the middle of that value's bucket, kept within Min and
// Max (0: no values).
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := min(max(int64(math.Ceil(q*float64(h.n))), 1), h.n)
	var seen int64
	for i, c := range h.counts {
		seen += int64(c)
		if seen >= rank {
			lo, width := histRange(i)
			mid := time.Duration(lo)*time.Microsecond + time.Duration(width)*time.Microsecond/2
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}

// Summary describes the histogram in milliseconds.
func (h *Hist) Summary() Summary {
	if h.n == 0 {
		return Summary{}
	}
	return Summary{
		N:    h.Count(),
		Mean: ms(h.Mean()),
		P50:  ms(h.Quantile(0.50)),
		P95:  ms(h.Quantile(0.95)),
		P99:  ms(h.Quantile(0.99)),
		Max:  ms(h.Max()),
	}
}
