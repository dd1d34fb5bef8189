package queue

import (
	"math"
	"slices"
	"time"
)

// EstimateConfig tunes the estimate.
type EstimateConfig struct {
	// DefaultHandleTime is the handle time (talk + wrap-up) assumed until
	// handle times are measured; with few measurements the estimate still
	// leans on it. Zero means 3 minutes.
	DefaultHandleTime time.Duration
}

const (
	defaultHandleTime = 3 * time.Minute
	// priorSamples is the weight of the default handle time, in measured
	// handle times: 5 samples weigh as much as the default.
	priorSamples = 5.0
	// maxHandleSamples bounds the handle times used (Redis keeps 100).
	maxHandleSamples = 100
	// estimateSteps is the number of time steps the wait is integrated over.
	estimateSteps = 128
	// minServed is the fewest departures in the window from which the
	// measured rate is trusted at all; rateSamples is the count at which it
	// gets half its weight.
	minServed   = 5
	rateSamples = 10.0
)

// Estimate is how long a caller at position pos (1 = next to be served) of
// the skill in s will still wait. ok is false when there is no basis at all
// (no agent staffed and nothing measured).
//
// It is computed afresh from the snapshot on every call, so it changes as
// agents near the end of their calls, log on or off, and as the queue
// moves. docs/estimate.md explains the formula; in short: each staffed
// agent frees up first when its current call (judged by how long it has
// lasted, against the measured handle times) or wrap-up ends, and then once
// per handle time; the caller at position k is served at the k-th of these
// moments, and Estimate is the expected time of it. When the skill's
// measured departures say it is served slower than its agents suggest
// (agents shared with other skills), the estimate leans toward k divided by
// the measured departure rate.
func Estimate(s *Snapshot, pos int, cfg EstimateConfig) (wait time.Duration, ok bool) {
	if pos < 1 {
		pos = 1
	}
	def := cfg.DefaultHandleTime
	if def <= 0 {
		def = defaultHandleTime
	}
	k := float64(pos)
	rate, span := departureRate(s)
	if s.Staffed() == 0 {
		if rate <= 0 {
			return 0, false
		}
		return secondsDur(k / rate), true
	}
	var e estimator
	e.h.init(s.HandleTimes, def)
	w := e.agentWait(s, k)
	if rate > 0 {
		// The measured rate can only be trusted as the skill's capacity for
		// the part of the window its queue was never empty (otherwise it
		// measures the arrivals, not the agents): the oldest caller has
		// waited that long at least.
		if wr := k / rate; wr > w {
			cover := min(1, max(0, s.LongestWait().Seconds()/span))
			n := float64(s.Served)
			w += cover * n / (n + rateSamples) * (wr - w)
		}
	}
	return secondsDur(w), true
}

// departureRate is the skill's measured rate of callers leaving the queue
// to an agent (per second) and the span it was measured over (seconds); 0
// when the window holds too few departures.
func departureRate(s *Snapshot) (rate, span float64) {
	if s.Served < minServed || s.FirstServed.IsZero() {
		return 0, 0
	}
	n := float64(s.Served)
	// n departures spread over a span put the first one span/(n+1) after
	// its start; a window not yet full of history ends the span there.
	span = s.At.Sub(s.FirstServed).Seconds() * (n + 1) / n
	if s.Window > 0 {
		span = min(span, s.Window.Seconds())
	}
	if span <= 0 {
		return 0, 0
	}
	return n / span, span
}

func secondsDur(x float64) time.Duration {
	return time.Duration(math.Round(x * float64(time.Second)))
}

// handleModel is the distribution of a handle time H (seconds): the
// measured handle times (piecewise linear between them), mixed with an
// exponential distribution of mean the default handle time that weighs
// priorSamples samples. The mixture is the whole distribution with no
// measurement, and its tail past the longest measurement otherwise.
type handleModel struct {
	s     [maxHandleSamples]float64 // measured, ascending
	n     int
	w     float64 // weight of the measured part
	prior float64 // default handle time
	mean  float64 // E[H]
	cv2   float64 // Var[H]/E[H]²
}

func (m *handleModel) init(hts []time.Duration, def time.Duration) {
	m.prior = def.Seconds()
	var sum, sum2 float64
	for _, h := range hts {
		if m.n == maxHandleSamples {
			break
		}
		if h <= 0 {
			continue
		}
		x := h.Seconds()
		m.s[m.n] = x
		m.n++
		sum += x
		sum2 += x * x
	}
	slices.Sort(m.s[:m.n])
	n := float64(m.n)
	m.w = n / (n + priorSamples)
	m.mean = (sum + priorSamples*m.prior) / (n + priorSamples)
	second := (sum2 + priorSamples*2*m.prior*m.prior) / (n + priorSamples)
	m.cv2 = max(0, second-m.mean*m.mean) / (m.mean * m.mean)
}

// surv is P(H > x). j is a cursor into the samples that makes a sweep of
// rising x cost O(samples) in all; start it at 0.
func (m *handleModel) surv(x float64, j *int) float64 {
	p := (1 - m.w) * math.Exp(-x/m.prior)
	if m.n == 0 {
		return p
	}
	for *j < m.n && m.s[*j] < x {
		*j++
	}
	i := *j // s[i-1] < x <= s[i]
	if i == m.n {
		return p
	}
	n := float64(m.n)
	lo, slo := 0.0, 1.0
	if i > 0 {
		lo, slo = m.s[i-1], 1-float64(i)/n
	}
	hi, shi := m.s[i], 1-float64(i+1)/n
	emp := shi
	if hi > lo {
		emp = slo + (shi-slo)*(x-lo)/(hi-lo)
	}
	return p + m.w*emp
}

// estimator integrates the expected time of the k-th moment an agent
// frees up. The arrays live on the stack: nothing is allocated.
type estimator struct {
	h     handleModel
	step  float64
	lag   float64 // renewal offset, seconds (see accumulate)
	f     [estimateSteps + 1]float64
	ci    [estimateSteps + 1]float64
	cj    [estimateSteps + 1]float64
	mean  [estimateSteps + 1]float64
	vari  [estimateSteps + 1]float64
	count int
}

// agentWait is E[T_k]: T_k is the k-th moment, from now on, that one of the
// staffed agents frees up (an available agent counts as freeing now).
// Every agent that frees up takes the next caller, so the caller at
// position k is served at T_k.
//
// M(t), the number of such moments by t, is a sum over agents of
// M_i(t) = 1{F_i ≤ t}·(1 + U_i(t − F_i)), with F_i the agent's first free
// moment and U_i the renewal count of its later calls. E[T_k] is the
// integral of P(M(t) < k) over t, taken with M(t) normal with the summed
// means and variances of the agents' M_i(t) (continuity-corrected).
func (e *estimator) agentWait(s *Snapshot, k float64) float64 {
	mu := e.h.mean
	var staffed, avail, reserved, onCall, wrap float64
	for _, a := range s.Agents {
		switch a.State {
		case Available:
			avail++
		case Reserved:
			reserved++
		case OnCall:
			onCall++
		case WrapUp:
			wrap++
		default:
			continue
		}
		staffed++
	}
	// Horizon: the moments come at about staffed/mu a second; go well past
	// the k-th.
	horizon := mu * (2 + (k+4*math.Sqrt(k)+2)/staffed)
	e.step = horizon / estimateSteps
	// Asymptotically a renewal process of mean mu and squared variation
	// cv2 has counted u/mu + (cv2−1)/2 renewals after u: as if it started
	// lag = mu(1−cv2)/2 later and then came exactly every mu.
	e.lag = mu * (1 - e.h.cv2) / 2

	if avail > 0 { // free now
		for g := range e.f {
			e.f[g] = 1
		}
		e.accumulate(avail)
	}
	if reserved > 0 { // the offered call is about to start: a whole handle time
		j := 0
		for g := range e.f {
			e.f[g] = 1 - e.h.surv(float64(g)*e.step, &j)
		}
		e.accumulate(reserved)
	}
	if wrap > 0 {
		// The snapshot tells when wrap-up began, not when the call did, and
		// the handle times do not split talk from wrap-up. Little's law on
		// the snapshot gives the mean wrap-up: the share of handling agents
		// in wrap-up, times the handle time (add-one-half smoothed). The
		// remaining wrap-up is taken as memoryless.
		mw := mu * (wrap + 0.5) / (onCall + wrap + 1)
		for g := range e.f {
			e.f[g] = -math.Expm1(-float64(g) * e.step / mw)
		}
		e.accumulate(wrap)
	}
	for _, a := range s.Agents {
		if a.State != OnCall {
			continue
		}
		// The call ends at H given H > elapsed.
		el := max(0, s.At.Sub(a.Since).Seconds())
		j := 0
		s0 := e.h.surv(el, &j)
		for g := range e.f {
			e.f[g] = 1 - e.h.surv(el+float64(g)*e.step, &j)/s0
		}
		e.accumulate(1)
	}

	// E[T_k] = ∫ P(M(t) < k) dt, trapezoids.
	var total, prev float64
	for g := 0; g <= estimateSteps; g++ {
		p := below(k, e.mean[g], e.vari[g])
		if g > 0 {
			total += e.step * (prev + p) / 2
		}
		prev = p
	}
	if prev > 0 { // beyond the horizon: the rest at the agents' full rate
		total += prev * max(e.step, (k-0.5-e.mean[estimateSteps])*mu/staffed)
	}
	return total
}

// accumulate adds count agents whose first free moment has the
// distribution function in e.f to the mean and variance of M(t).
func (e *estimator) accumulate(count float64) {
	h, mu, lag, cv2 := e.step, e.h.mean, e.lag, e.h.cv2
	// I(t) = ∫₀ᵗ F, J(t) = ∫₀ᵗ I: E[(t−F)⁺] = I(t), E[((t−F)⁺)²] = 2J(t).
	e.ci[0], e.cj[0] = 0, 0
	for g := 1; g <= estimateSteps; g++ {
		e.ci[g] = e.ci[g-1] + h*(e.f[g-1]+e.f[g])/2
		e.cj[g] = e.cj[g-1] + h*(e.ci[g-1]+e.ci[g])/2
	}
	for g := 0; g <= estimateSteps; g++ {
		f := e.f[g]
		// a = U(t−F) for F ≤ t, 0 otherwise, with U(u) = max(0, (u−lag)/mu).
		var a, a2 float64
		if lag >= 0 {
			x := float64(g) - lag/h
			a = interp(&e.ci, x) / mu
			a2 = 2 * interp(&e.cj, x) / (mu * mu)
		} else { // cv2 > 1: U(u) = (u−lag)/mu for every u ≥ 0
			a = (e.ci[g] - lag*f) / mu
			a2 = (2*e.cj[g] - 2*lag*e.ci[g] + lag*lag*f) / (mu * mu)
		}
		// M_i = 1{F≤t}(1+a), and the renewal count varies by about cv2·a.
		m := f + a
		v := f + 2*a + a2 + cv2*a - m*m
		e.mean[g] += count * m
		e.vari[g] += count * max(0, v)
	}
}

// interp reads v at the fractional index x (0 before the start).
func interp(v *[estimateSteps + 1]float64, x float64) float64 {
	if x <= 0 {
		return 0
	}
	i := int(x)
	if i >= estimateSteps {
		return v[estimateSteps]
	}
	fr := x - float64(i)
	return v[i] + fr*(v[i+1]-v[i])
}

// below is P(M < k) for M normal with the mean and variance, with a
// continuity correction (M counts).
func below(k, mean, variance float64) float64 {
	d := k - 0.5 - mean
	if variance < 1e-12 {
		if d > 0 {
			return 1
		}
		return 0
	}
	return 0.5 * math.Erfc(-d/math.Sqrt(2*variance))
}
