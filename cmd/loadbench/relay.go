package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// relayHist is ivrd's ivrd_relay_latency_seconds for one direction:
// cumulative counts by upper bound in seconds (+Inf last).
type relayHist struct {
	Bounds []float64 `json:"bounds"`
	Counts []float64 `json:"counts"`
}

// serverRelay is the latency ivrd itself added to relayed packets during a
// step, from its kernel receive stamps: per direction, the packets
// measured and the p50/p99 in milliseconds.
type serverRelay struct {
	Packets  [2]float64 `json:"packets"` // caller→agent, agent→caller
	P50, P99 [2]float64 // ms
}

// MarshalJSON writes a percentile without data (NaN, which JSON cannot
// hold) as null.
func (r serverRelay) MarshalJSON() ([]byte, error) {
	ms := func(v [2]float64) [2]*float64 {
		var out [2]*float64
		for i := range v {
			if !math.IsNaN(v[i]) {
				out[i] = &v[i]
			}
		}
		return out
	}
	return json.Marshal(struct {
		Packets  [2]float64  `json:"packets"`
		P50, P99 [2]*float64 // ms
	}{r.Packets, ms(r.P50), ms(r.P99)})
}

var relayDirections = [2]string{"to_agent", "to_caller"}

// relayHists reads both directions' histograms from ivrd's /metrics.
func (s *server) relayHists() ([2]relayHist, error) {
	var out [2]relayHist
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if err := parseRelayLine(sc.Text(), &out); err != nil {
			return out, err
		}
	}
	return out, sc.Err()
}

// parseRelayLine adds one /metrics line to h if it is a bucket of
// ivrd_relay_latency_seconds.
func parseRelayLine(line string, h *[2]relayHist) error {
	const prefix = "ivrd_relay_latency_seconds_bucket{"
	if !strings.HasPrefix(line, prefix) {
		return nil
	}
	end := strings.IndexByte(line, '}')
	if end < 0 {
		return fmt.Errorf("metrics line %q: no closing brace", line)
	}
	dir, le := -1, ""
	for _, kv := range strings.Split(line[len(prefix):end], ",") {
		k, v, _ := strings.Cut(kv, "=")
		v = strings.Trim(v, `"`)
		switch k {
		case "direction":
			for i, d := range relayDirections {
				if v == d {
					dir = i
				}
			}
		case "le":
			le = v
		}
	}
	if dir < 0 {
		return nil
	}
	bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
	if err != nil {
		return fmt.Errorf("metrics line %q: le: %w", line, err)
	}
	count, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
	if err != nil {
		return fmt.Errorf("metrics line %q: count: %w", line, err)
	}
	h[dir].Bounds = append(h[dir].Bounds, bound)
	h[dir].Counts = append(h[dir].Counts, count)
	return nil
}

// relayDuring is what the histograms gained between before and after.
func relayDuring(before, after [2]relayHist) serverRelay {
	var r serverRelay
	for dir := range after {
		a, b := after[dir], before[dir]
		delta := relayHist{Bounds: a.Bounds, Counts: make([]float64, len(a.Counts))}
		for i := range a.Counts {
			delta.Counts[i] = a.Counts[i]
			if i < len(b.Counts) {
				delta.Counts[i] -= b.Counts[i]
			}
		}
		if n := len(delta.Counts); n > 0 {
			r.Packets[dir] = delta.Counts[n-1]
		}
		r.P50[dir] = 1000 * delta.quantile(0.50)
		r.P99[dir] = 1000 * delta.quantile(0.99)
	}
	return r
}

// quantile interpolates linearly within the bucket q falls in, as
// Prometheus's histogram_quantile does; beyond the last finite bound it
// answers that bound (the figure is then "at least"). NaN without data.
func (h relayHist) quantile(q float64) float64 {
	type b struct{ le, n float64 }
	bs := make([]b, len(h.Bounds))
	for i := range h.Bounds {
		bs[i] = b{h.Bounds[i], h.Counts[i]}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].n
	lo, below := 0.0, 0.0
	for _, x := range bs {
		if x.n >= rank {
			if math.IsInf(x.le, 1) {
				return lo
			}
			if x.n == below {
				return x.le
			}
			return lo + (x.le-lo)*(rank-below)/(x.n-below)
		}
		lo, below = x.le, x.n
	}
	return lo
}

// cell is the step table's entry: both p99s, or "-" without relayed packets.
func (r serverRelay) cell() string {
	if r.Packets[0] == 0 && r.Packets[1] == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f/%.2f", r.P99[0], r.P99[1])
}
