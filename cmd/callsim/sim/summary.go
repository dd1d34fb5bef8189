package sim

// Summary is a distribution of measurements in milliseconds, as a Hist
// describes it: N, Mean and Max exact, the percentiles nearest-rank
// estimates within 0.8% (or 0.5 µs).
type Summary struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}
