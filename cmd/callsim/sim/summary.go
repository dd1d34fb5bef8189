package sim

import (
	"math"
	"slices"
)

// Summary is a distribution of measurements in milliseconds.
type Summary struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// Summarize describes values (milliseconds). Percentiles are nearest-rank:
// the smallest value with at least p% of the values at or below it, always
// one of the measurements.
func Summarize(values []float64) Summary {
	if len(values) == 0 {
		return Summary{}
	}
	v := slices.Clone(values)
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += x
	}
	return Summary{
		N:    len(v),
		Mean: sum / float64(len(v)),
		P50:  Percentile(v, 50),
		P95:  Percentile(v, 95),
		P99:  Percentile(v, 99),
		Max:  v[len(v)-1],
	}
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
