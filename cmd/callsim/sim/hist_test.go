package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank q-quantile of sorted.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// checkQuantiles compares h's quantiles with the exact ones of values
// against Hist's promise: within 1/128 of the value, or 0.5 µs.
func checkQuantiles(t *testing.T, h *Hist, values []time.Duration) {
	t.Helper()
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	for _, q := range []float64{0.0001, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1} {
		want := exactQuantile(sorted, q)
		got := h.Quantile(q)
		tol := max(float64(want)/128, 500)
		if diff := math.Abs(float64(got - want)); diff > tol {
			t.Errorf("q %g: %v, exact %v: off by %v (%.3f%%), allowed %v", q, got, want, time.Duration(diff), 100*diff/float64(want), time.Duration(tol))
		}
	}
	if h.Count() != len(values) || h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
		t.Errorf("count %d min %v max %v, want %d %v %v", h.Count(), h.Min(), h.Max(), len(values), sorted[0], sorted[len(sorted)-1])
	}
	var sum float64
	for _, v := range values {
		sum += float64(v)
	}
	if mean := sum / float64(len(values)); math.Abs(float64(h.Mean())-mean) > 1 {
		t.Errorf("mean %v, want %v", h.Mean(), time.Duration(mean))
	}
}

func TestHistQuantilesWithinBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() time.Duration
	}{
		// Every octave from 1 µs to 60 s equally likely.
		{"log-uniform 1µs-60s", func() time.Duration {
			return time.Duration(math.Exp(math.Log(1e3) + rng.Float64()*(math.Log(60e9)-math.Log(1e3))))
		}},
		// Relay latencies on loopback: a few hundred µs, a tail to 20 ms.
		{"latencies", func() time.Duration {
			if rng.IntN(100) == 0 {
				return time.Duration(rng.Int64N(int64(20 * time.Millisecond)))
			}
			return time.Duration(400e3 + rng.NormFloat64()*100e3)
		}},
		{"below 256 µs", func() time.Duration { return time.Duration(rng.Int64N(256e3)) }},
		{"call setup", func() time.Duration { return time.Duration(1e6 + rng.ExpFloat64()*300e6) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Hist
			values := make([]time.Duration, 100_000)
			for i := range values {
				values[i] = max(tc.gen(), 0)
				h.Add(values[i])
			}
			checkQuantiles(t, &h, values)
		})
	}
}

func TestHistMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all, merged Hist
	var values []time.Duration
	for part := range 5 {
		var h Hist
		for range 1000 * (part + 1) {
			v := time.Duration(rng.Int64N(int64(time.Duration(part+1) * 10 * time.Millisecond)))
			values = append(values, v)
			h.Add(v)
			all.Add(v)
		}
		merged.Merge(&h)
		merged.Merge(&Hist{}) // merging nothing changes nothing
	}
	checkQuantiles(t, &merged, values)
	for _, q := range []float64{0.01, 0.5, 0.99} {
		if merged.Quantile(q) != all.Quantile(q) {
			t.Errorf("q %g: merged %v, one histogram %v", q, merged.Quantile(q), all.Quantile(q))
		}
	}
	if merged.Count() != all.Count() || merged.Mean() != all.Mean() || merged.Min() != all.Min() || merged.Max() != all.Max() {
		t.Errorf("merged %d %v %v %v, one histogram %d %v %v %v", merged.Count(), merged.Mean(), merged.Min(), merged.Max(),
			all.Count(), all.Mean(), all.Min(), all.Max())
	}

	// Into an empty histogram: a copy.
	var empty Hist
	empty.Merge(&all)
	if empty.Count() != all.Count() || empty.Quantile(0.5) != all.Quantile(0.5) || empty.Min() != all.Min() {
		t.Errorf("merged into empty: %d %v %v", empty.Count(), empty.Quantile(0.5), empty.Min())
	}
}

// TestHistBuckets checks the buckets tile 0…2^26 µs without gaps or
// overlaps, each at most 1/64 of its start wide.
func TestHistBuckets(t *testing.T) {
	next := uint64(0)
	for i := range histBuckets {
		lo, w := histRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d µs, want %d", i, lo, next)
		}
		if histBucket(lo) != i || histBucket(lo+w-1) != i {
			t.Fatalf("bucket %d [%d, %d) µs: its ends fall in %d and %d", i, lo, lo+w, histBucket(lo), histBucket(lo+w-1))
		}
		if w > 1 && w*histSub > lo {
			t.Fatalf("bucket %d [%d, %d) µs is wider than 1/64 of its start", i, lo, lo+w)
		}
		next = lo + w
	}
	if next != 1<<histTopBits || time.Duration(next)*time.Microsecond < 60*time.Second {
		t.Fatalf("buckets end at %d µs", next)
	}
}

func TestHistEdges(t *testing.T) {
	var h Hist
	if h.Count() != 0 || h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Summary() != (Summary{}) {
		t.Errorf("empty: %d %v %v %+v", h.Count(), h.Quantile(0.5), h.Mean(), h.Summary())
	}
	h.Add(3 * time.Millisecond)
	if h.Quantile(0.01) != 3*time.Millisecond || h.Quantile(1) != 3*time.Millisecond {
		t.Errorf("one value: %v %v", h.Quantile(0.01), h.Quantile(1))
	}
	// Beyond the last bucket and below zero: counted, Max and Min exact.
	h.Add(2 * time.Minute)
	h.Add(-time.Millisecond)
	if h.Count() != 3 || h.Max() != 2*time.Minute || h.Min() != -time.Millisecond || h.Quantile(1) > 2*time.Minute {
		t.Errorf("count %d max %v min %v q1 %v", h.Count(), h.Max(), h.Min(), h.Quantile(1))
	}
	s := h.Summary()
	if s.N != 3 || s.Max != 120_000 || math.Abs(s.P50-3) > 3.0/128 {
		t.Errorf("summary %+v", s)
	}
}

func BenchmarkHistAdd(b *testing.B) {
	var h Hist
	b.ReportAllocs()
	for i := range b.N {
		h.Add(time.Duration(i%5000) * time.Microsecond)
	}
}
