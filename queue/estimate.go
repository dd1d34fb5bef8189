package queue

import (
	"math"
	"slices"
	"sync"
	"time"
)

// EstimateConfig tunes the estimate.
type EstimateConfig struct {
	// DefaultHandleTime is the handle time (talk + wrap-up) assumed until
	// handle times are measured; with few measurements the estimate still
	// leans on it. Zero means 3 minutes.
	DefaultHandleTime time.Duration
	// OfferTime is how long an agent takes to accept an offered call
	// (ringing, a click): part of every caller's wait, not of the handle
	// time. Zero means 5 s; negative means none.
	OfferTime time.Duration
}

const (
	defaultHandleTime = 3 * time.Minute
	defaultOfferTime  = 5 * time.Second
	// priorSamples is the weight of the default handle time (and of the
	// exponential tail it gives the measurements), in measured durations.
	priorSamples = 5.0
	// maxHandleSamples bounds the handle times used (Redis keeps 100).
	maxHandleSamples = 100
	// estimateSteps is the number of time steps the wait is integrated over.
	estimateSteps = 64
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
// per offer and handle time; the caller at position k is offered to an
// agent at the k-th of these moments, and Estimate is the expected time of
// it plus the offer time. When the skill's measured departures say it is
// served slower than its agents suggest (agents shared with other skills),
// the estimate leans toward k divided by the measured departure rate.
//
// It allocates nothing, so it can run for every announcement.
func Estimate(s *Snapshot, pos int, cfg EstimateConfig) (wait time.Duration, ok bool) {
	return estimate(s, pos, cfg, s.WrapTimes)
}

// estimate is Estimate with the skill's recent wrap-up times given apart.
// Without them (none measured yet) the mean wrap-up is inferred from the
// snapshot by Little's law, which is noisy; the simulation shows both
// (docs/estimate.md).
func estimate(s *Snapshot, pos int, cfg EstimateConfig, wraps []time.Duration) (time.Duration, bool) {
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
	e := estimators.Get().(*estimator)
	defer estimators.Put(e)
	*e = estimator{}
	e.offer = cfg.OfferTime.Seconds()
	if cfg.OfferTime == 0 {
		e.offer = defaultOfferTime.Seconds()
	}
	e.offer = max(0, e.offer)
	if k <= float64(s.AgentsIn(Available)) { // an agent is free for the caller now
		return secondsDur(e.offer), true
	}
	e.h.init(s.HandleTimes, def.Seconds())
	w := e.agentWait(s, k, wraps)
	if rate > 0 {
		// Agents shared with other skills serve this one slower than the
		// model says; the measured rate shows it. It measures the skill's
		// capacity only for the part of the window its queue was never
		// empty (otherwise it measures the arrivals): at least as long as
		// the oldest caller has waited.
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

// handleModel is the distribution of a duration H (seconds), a handle time
// or a wrap-up: the measured durations (piecewise linear between them),
// mixed with an exponential distribution that weighs priorSamples samples.
// The mixture is the whole distribution with no measurement (then of mean
// the prior, e.g. the default handle time), and its tail past the longest
// measurement otherwise.
type handleModel struct {
	s     [maxHandleSamples]float64 // measured, ascending
	n     int
	w     float64 // weight of the measured part
	prior float64 // mean of the exponential part
	mean  float64 // E[H]
	cv2   float64 // Var[H]/E[H]²
}

func (m *handleModel) init(hts []time.Duration, prior float64) {
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
	// The exponential part has the mean of the measurements and the prior
	// pooled: all of the prior without measurements, next to nothing of it
	// with 100.
	m.prior = (sum + priorSamples*prior) / (n + priorSamples)
	second := (1 - m.w) * 2 * m.prior * m.prior
	m.mean = (1 - m.w) * m.prior
	if m.n > 0 {
		m.mean += m.w * sum / n
		second += m.w * sum2 / n
	}
	m.cv2 = max(0, second-m.mean*m.mean) / (m.mean * m.mean)
}

// surv is P(H > x). ex must be e^(−x/prior) (callers sweeping x on a
// grid keep it by multiplying), and j a cursor into the samples that makes
// a sweep of rising x cost O(samples) in all; start it at 0.
func (m *handleModel) surv(x, ex float64, j *int) float64 {
	p := (1 - m.w) * ex
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
// estimators holds estimators between estimates. An estimator is 4.5 KB;
// on the stack it made every estimate's frame that large, and a waiting
// caller's goroutine, whose announcements estimate, then outgrew its
// 8 KB stack (16 KB a waiting caller until the collector shrank it again).
var estimators = sync.Pool{New: func() any { return new(estimator) }}

type estimator struct {
	h     handleModel // handle times
	w     handleModel // wrap-up times, when measured
	offer float64     // s from an offer to its acceptance
	wrap  float64     // mean wrap-up, s
	cycle float64     // mean time an agent is busy with one caller: offer + handle
	cv2   float64     // Var/mean² of the cycle
	lag   float64     // renewal offset, s (see agentWait)
	step  float64
	f     [estimateSteps + 1]float64
	ci    [estimateSteps + 1]float64
	cj    [estimateSteps + 1]float64
	mean  [estimateSteps + 1]float64
	vari  [estimateSteps + 1]float64
}

// agentWait is the offer time plus E[T_k], where T_k is the k-th moment,
// from now on, that one of the staffed agents frees up (an available agent
// counts as freeing now). Every agent that frees up takes the next caller,
// so the caller at position k is offered to an agent at T_k.
//
// M(t), the number of such moments by t, is a sum over agents of
// M_i(t) = 1{F_i ≤ t}·(1 + U_i(t − F_i)), with F_i the agent's first free
// moment and U_i the renewal count of the calls it takes after. E[T_k] is
// the integral of P(M(t) < k) over t, taken with M(t) normal with the
// summed means and variances of the agents' M_i(t), continuity-corrected.
func (e *estimator) agentWait(s *Snapshot, k float64, wraps []time.Duration) float64 {
	mu := e.h.mean
	var staffed, avail, onCall, wrap float64
	for _, a := range s.Agents {
		switch a.State {
		case Available:
			avail++
		case OnCall:
			onCall++
		case WrapUp:
			wrap++
		case Reserved:
		default:
			continue
		}
		staffed++
	}
	// Little's law on the snapshot: the share of handling agents in
	// wrap-up, times the handle time (add-one-half smoothed), is the mean
	// wrap-up. Measured wrap-ups, when there are any, outweigh it.
	e.wrap = mu * (wrap + 0.5) / (onCall + wrap + 1)
	measured := len(wraps) > 0
	if measured {
		e.w.init(wraps, e.wrap)
		e.wrap = e.w.mean
	}
	e.cycle = e.offer + mu
	e.cv2 = e.h.cv2 * mu * mu / (e.cycle * e.cycle)
	// Asymptotically a renewal process of mean c and squared variation v
	// has counted u/c + (v−1)/2 renewals after u: as if it started
	// c(1−v)/2 later and then came exactly every c.
	// (For v > 1 the offset is only reached late; none is taken.)
	e.lag = e.cycle * max(0, 1-e.cv2) / 2
	// Horizon: the moments come at about staffed/cycle a second; go well
	// past the k-th.
	horizon := e.cycle * (2 + (k+4*math.Sqrt(k)+2)/staffed)
	e.step = horizon / estimateSteps

	if avail > 0 { // free now
		for g := range e.f {
			e.f[g] = 1
		}
		e.accumulate(avail)
	}
	if wrap > 0 && !measured {
		// With only a mean, the rest of a wrap-up is taken as memoryless.
		for g := range e.f {
			e.f[g] = -math.Expm1(-float64(g) * e.step / e.wrap)
		}
		e.accumulate(wrap)
	}
	for _, a := range s.Agents {
		el := max(0, s.At.Sub(a.Since).Seconds())
		switch {
		case a.State == WrapUp && measured:
			e.rest(&e.w, el, 0)
		case a.State == OnCall && measured: // the talk has lasted el
			e.talkThenWrap(el, 0)
		case a.State == OnCall:
			// Without wrap-up times the talk cannot be told from the
			// wrap-up that follows: the handle time has lasted el.
			e.rest(&e.h, el, 0)
		case a.State == Reserved && measured: // the talk starts when the offer is accepted
			e.talkThenWrap(0, max(0, e.offer-el))
		case a.State == Reserved:
			e.rest(&e.h, 0, max(0, e.offer-el))
		default:
			continue
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
		total += prev * max(e.step, (k-0.5-e.mean[estimateSteps])*e.cycle/staffed)
	}
	return e.offer + total
}

// rest fills e.f with the distribution of the moment an agent frees up
// whose current duration (distributed as m) starts after delay and has
// lasted el: the rest of it, given it lasts longer than el.
func (e *estimator) rest(m *handleModel, el, delay float64) {
	j := 0
	s0 := m.surv(el, math.Exp(-el/m.prior), &j)
	ex, r := 0.0, math.Exp(-e.step/m.prior)
	for g := range e.f {
		t := float64(g)*e.step - delay
		switch {
		case t <= 0:
			e.f[g] = 0
			continue
		case s0 < 1e-200:
			// Far past anything measured (an agent stuck in a state): only
			// the exponential tail is left, and it is memoryless.
			e.f[g] = -math.Expm1(-t / m.prior)
			continue
		case ex == 0:
			ex = math.Exp(-(el + t) / m.prior)
		default:
			ex *= r
		}
		e.f[g] = 1 - m.surv(el+t, ex, &j)/s0
	}
}

// talkThenWrap is rest for a call split into a talk T = H − wrap, which
// starts after delay and has lasted el, and a wrap-up after it (taken as
// exponential with the mean wrap-up: F = talk ∗ wrap-up).
func (e *estimator) talkThenWrap(el, delay float64) {
	e.rest(&e.h, el+e.wrap, delay)
	decay, half := math.Exp(-e.step/e.wrap), math.Exp(-e.step/(2*e.wrap))
	var conv, prev float64 // ∫ talk density(s) e^{−(t−s)/wrap} ds
	for g := range e.f {
		f := e.f[g]
		conv = conv*decay + (f-prev)*half
		prev = f
		e.f[g] = max(0, f-conv)
	}
}

// accumulate adds count agents whose first free moment has the
// distribution function in e.f to the mean and variance of M(t).
func (e *estimator) accumulate(count float64) {
	h, mu, lag, cv2 := e.step, e.cycle, e.lag, e.cv2
	// I(t) = ∫₀ᵗ F, J(t) = ∫₀ᵗ I: E[(t−F)⁺] = I(t), E[((t−F)⁺)²] = 2J(t).
	e.ci[0], e.cj[0] = 0, 0
	for g := 1; g <= estimateSteps; g++ {
		e.ci[g] = e.ci[g-1] + h*(e.f[g-1]+e.f[g])/2
		e.cj[g] = e.cj[g-1] + h*(e.ci[g-1]+e.ci[g])/2
	}
	for g := 0; g <= estimateSteps; g++ {
		f := e.f[g]
		// a = U(t−F) for F ≤ t, 0 otherwise, with U(u) = max(0, (u−lag)/mu)
		// (mu is the cycle: every later caller is offered, then handled):
		// E[a] = I(t−lag)/mu, E[a²] = 2J(t−lag)/mu².
		x := float64(g) - lag/h
		a := interp(&e.ci, x) / mu
		a2 := 2 * interp(&e.cj, x) / (mu * mu)
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
