package queue

import (
	"container/heap"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The simulation: a discrete-event model of one skill's queue, with each
// snapshot built exactly as the Redis snapshot script would return it, to
// measure how close Estimate comes to the waits that follow. No Redis, no
// clock: time is a float64 of seconds, randomness a seeded PCG.
//
// Model: Poisson arrivals; FIFO, no priorities, no abandonment; N agents of
// the one skill, longest idle first; an offer rings 2–6 s (uniform) before
// the agent accepts, and the caller's wait ends there (as Store.Accept
// counts it); a handle time H (lognormal, mean 180 s, σ 0.6 → CV 0.66; or
// exponential, mean 180 s) is split into talk and a wrap-up
// min(lognormal(mean 30 s, CV 0.5), H/2).

var simOracle = flag.Bool("sim.oracle", false,
	"TestSimulationEstimate also reports a Monte Carlo oracle: the true conditional mean wait (slow)")

const (
	simMeanHandle = 180.0 // s, talk + wrap-up
	simHandleCV   = 0.66  // lognormal σ = 0.6
	simMeanWrap   = 30.0  // s; wrap-up is min(lognormal, handle/2)
	simWrapCV     = 0.5
	simRingMin    = 2.0 // s, offered until accepted: uniform
	simRingMax    = 6.0
	simAnnounce   = 45.0 // s between announcements
	simWindow     = 30 * time.Minute
	simTarget     = 25.0 // MAE as a percentage of the mean actual wait, asserted at steady load
	simHour       = 3600.0
)

var simSeeds = []uint64{1, 2, 3}

type simScenario struct {
	name      string
	agents    int
	occupancy float64 // offered load / agents, ring time included
	service   string  // lognormal or exponential
	// staffing change: offCount agents log off offAt seconds after the
	// warm-up (finishing their call first) and back on at onAt.
	offCount    int
	offAt, onAt float64
	// assert the target (over the seeds pooled) for the estimate as the
	// snapshot is today.
	assert bool
}

const (
	simWarmup  = 1 * simHour
	simMeasure = 6 * simHour
)

var simScenarios = []simScenario{
	{name: "N=10 ρ=0.70 lognormal", agents: 10, occupancy: 0.70, service: "lognormal"},
	{name: "N=10 ρ=0.85 lognormal", agents: 10, occupancy: 0.85, service: "lognormal", assert: true},
	{name: "N=10 ρ=0.95 lognormal", agents: 10, occupancy: 0.95, service: "lognormal", assert: true},
	{name: "N=3 ρ=0.85 lognormal", agents: 3, occupancy: 0.85, service: "lognormal"},
	{name: "N=10 ρ=0.85 exponential", agents: 10, occupancy: 0.85, service: "exponential"},
	{name: "N=12→9→12 ρ=0.80 lognormal", agents: 12, occupancy: 0.80, service: "lognormal",
		offCount: 3, offAt: 2 * simHour, onAt: 2*simHour + 45*60},
}

// simRecord is one announcement: the estimates and the wait that followed.
type simRecord struct {
	est, estWrap, naive, oracle float64
	actual                      float64
	total                       float64 // the caller's whole wait
}

type simCaller struct {
	seq      int
	arrive   float64
	measured bool
	waiting  bool
	anns     []simRecord // actual and total filled in at acceptance
	annAt    []float64
}

type simAgent struct {
	id          string
	state       AgentState
	since       float64
	idle        float64
	hstart      float64
	caller      *simCaller
	talk, wrap  float64
	leaving     bool // log off when free
	outOfOffice bool // logged off by the scenario
}

type simEventKind int

const (
	evArrival simEventKind = iota
	evAccept
	evTalkEnd
	evWrapEnd
	evAnnounce
	evLogOff
	evLogOn
)

type simEvent struct {
	at     float64
	seq    int
	kind   simEventKind
	agent  *simAgent
	caller *simCaller
}

type simEvents []simEvent

func (q simEvents) Len() int { return len(q) }
func (q simEvents) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simEvents) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simEvents) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simEvents) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type sim struct {
	sc      simScenario
	seed    uint64
	rng     *rand.Rand
	base    time.Time
	now     float64
	events  simEvents
	seq     int
	agents  []*simAgent
	queue   []*simCaller // FIFO
	served  []float64    // accept times in the window, ascending
	handles []float64    // handle times, oldest first
	wraps   []float64    // wrap-up times, oldest first
	nextSeq int
	lastOut int // seq of the last caller to leave the queue
	records []simRecord
	callers int
	snap    Snapshot
	cfg     EstimateConfig
	oracle  bool
}

func newSim(sc simScenario, seed uint64) *sim {
	s := &sim{
		sc:   sc,
		seed: seed,
		rng:  rand.New(rand.NewPCG(seed, 0x1e57)),
		base: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		cfg:  EstimateConfig{DefaultHandleTime: 3 * time.Minute}, // OfferTime: the default 5 s
	}
	for i := range sc.agents {
		s.agents = append(s.agents, &simAgent{id: "a" + strconv.Itoa(i), state: Available})
	}
	return s
}

func (s *sim) at(t float64) time.Time { return s.base.Add(time.Duration(t * float64(time.Second))) }

// ms is a time as Redis stores it.
func (s *sim) ms(t float64) time.Time { return fromMS(ms(s.at(t))) }

func msDuration(sec float64) time.Duration { return time.Duration(sec*1000) * time.Millisecond }

func (s *sim) schedule(ev simEvent) {
	s.seq++
	ev.seq = s.seq
	heap.Push(&s.events, ev)
}

func lognormal(r *rand.Rand, mean, cv float64) float64 {
	sigma2 := math.Log(1 + cv*cv)
	return math.Exp(math.Log(mean) - sigma2/2 + math.Sqrt(sigma2)*r.NormFloat64())
}

// drawCall draws a call's talk and wrap-up.
func (s *sim) drawCall(r *rand.Rand) (talk, wrap float64) {
	var h float64
	if s.sc.service == "exponential" {
		h = r.ExpFloat64() * simMeanHandle
	} else {
		h = lognormal(r, simMeanHandle, simHandleCV)
	}
	wrap = min(lognormal(r, simMeanWrap, simWrapCV), h/2)
	return h - wrap, wrap
}

func drawRing(r *rand.Rand) float64 { return simRingMin + (simRingMax-simRingMin)*r.Float64() }

func (s *sim) arrivalRate() float64 {
	ring := (simRingMin + simRingMax) / 2
	return s.sc.occupancy * float64(s.sc.agents) / (simMeanHandle + ring)
}

// lastN copies the newest n of xs (oldest first) into buf, newest first,
// at millisecond precision: a Redis list of durations.
func lastN(buf []time.Duration, xs []float64, n int) []time.Duration {
	buf = buf[:0]
	for i := len(xs) - 1; i >= 0 && len(buf) < n; i-- {
		buf = append(buf, msDuration(xs[i]))
	}
	return buf
}

// snapshot builds what the snapshot script returns at the current time.
func (s *sim) snapshot() *Snapshot {
	sn := &s.snap
	sn.At = s.at(s.now)
	sn.Waiting = len(s.queue)
	sn.Oldest = time.Time{}
	if len(s.queue) > 0 {
		sn.Oldest = s.ms(s.queue[0].arrive)
	}
	sn.Window = simWindow
	sn.Agents = sn.Agents[:0]
	for _, a := range s.agents {
		sn.Agents = append(sn.Agents, AgentLoad{ID: a.id, State: a.state, Since: s.ms(a.since)})
	}
	sn.HandleTimes = lastN(sn.HandleTimes, s.handles, 100)
	sn.WrapTimes = lastN(sn.WrapTimes, s.wraps, 100)
	from := s.now - simWindow.Seconds()
	i := 0
	for i < len(s.served) && s.served[i] < from {
		i++
	}
	s.served = s.served[i:]
	sn.Served = len(s.served)
	sn.FirstServed = time.Time{}
	if len(s.served) > 0 {
		sn.FirstServed = s.ms(s.served[0])
	}
	return sn
}

// announce records the estimates a waiting caller hears now.
func (s *sim) announce(c *simCaller) {
	pos := c.seq - s.lastOut
	sn := s.snapshot()
	est, ok := Estimate(sn, pos, s.cfg)
	if !ok {
		panic("no estimate with agents staffed")
	}
	// The same without the wrap-up times (before any were measured).
	estWrap, _ := estimate(sn, pos, s.cfg, nil)
	aht := s.cfg.DefaultHandleTime.Seconds()
	if len(sn.HandleTimes) > 0 {
		var sum time.Duration
		for _, h := range sn.HandleTimes {
			sum += h
		}
		aht = (sum / time.Duration(len(sn.HandleTimes))).Seconds()
	}
	rec := simRecord{
		est: est.Seconds(), estWrap: estWrap.Seconds(),
		naive: float64(pos) * aht / float64(max(1, sn.Staffed())),
	}
	if s.oracle {
		rec.oracle = s.oracleWait(pos)
	}
	c.anns = append(c.anns, rec)
	c.annAt = append(c.annAt, s.now)
}

// dispatch pairs waiting callers with the longest-idle available agents.
func (s *sim) dispatch() {
	for len(s.queue) > 0 {
		var best *simAgent
		for _, a := range s.agents {
			if a.state == Available && (best == nil || a.idle < best.idle) {
				best = a
			}
		}
		if best == nil {
			return
		}
		c := s.queue[0]
		s.queue = s.queue[1:]
		c.waiting = false
		s.lastOut = c.seq
		best.state, best.since, best.caller = Reserved, s.now, c
		s.schedule(simEvent{at: s.now + drawRing(s.rng), kind: evAccept, agent: best})
	}
}

func (s *sim) free(a *simAgent) {
	if a.leaving {
		a.state, a.since, a.leaving, a.outOfOffice = Offline, s.now, false, true
		return
	}
	a.state, a.since, a.idle = Available, s.now, s.now
	s.dispatch()
}

func keepLast(xs []float64, n int) []float64 {
	if len(xs) > 2*n {
		xs = append(xs[:0], xs[len(xs)-n:]...)
	}
	return xs
}

func (s *sim) run() {
	end := simWarmup + simMeasure
	rate := s.arrivalRate()
	s.schedule(simEvent{at: s.rng.ExpFloat64() / rate, kind: evArrival})
	if s.sc.offCount > 0 {
		s.schedule(simEvent{at: simWarmup + s.sc.offAt, kind: evLogOff})
		s.schedule(simEvent{at: simWarmup + s.sc.onAt, kind: evLogOn})
	}
	for s.events.Len() > 0 {
		ev := heap.Pop(&s.events).(simEvent)
		s.now = ev.at
		switch ev.kind {
		case evArrival:
			if s.now >= end {
				continue // no more callers; those measured are still served
			}
			s.nextSeq++
			c := &simCaller{seq: s.nextSeq, arrive: s.now, waiting: true, measured: s.now >= simWarmup}
			s.queue = append(s.queue, c)
			if c.measured {
				s.callers++
				s.announce(c)
			}
			s.dispatch()
			if c.waiting {
				s.schedule(simEvent{at: s.now + simAnnounce, kind: evAnnounce, caller: c})
			}
			s.schedule(simEvent{at: s.now + s.rng.ExpFloat64()/rate, kind: evArrival})
		case evAnnounce:
			c := ev.caller
			if !c.waiting {
				continue
			}
			if c.measured {
				s.announce(c)
			}
			s.schedule(simEvent{at: s.now + simAnnounce, kind: evAnnounce, caller: c})
		case evAccept:
			a, c := ev.agent, ev.agent.caller
			for i, r := range c.anns {
				r.actual, r.total = s.now-c.annAt[i], s.now-c.arrive
				s.records = append(s.records, r)
			}
			s.served = append(s.served, s.now)
			a.talk, a.wrap = s.drawCall(s.rng)
			a.state, a.since, a.hstart, a.caller = OnCall, s.now, s.now, nil
			s.schedule(simEvent{at: s.now + a.talk, kind: evTalkEnd, agent: a})
		case evTalkEnd:
			a := ev.agent
			a.state, a.since = WrapUp, s.now
			s.schedule(simEvent{at: s.now + a.wrap, kind: evWrapEnd, agent: a})
		case evWrapEnd:
			a := ev.agent
			s.handles = keepLast(append(s.handles, s.now-a.hstart), 100)
			s.wraps = keepLast(append(s.wraps, s.now-a.since), 100)
			s.free(a)
		case evLogOff:
			for _, a := range s.agents[len(s.agents)-s.sc.offCount:] {
				if a.state == Available {
					a.state, a.since, a.outOfOffice = Offline, s.now, true
				} else {
					a.leaving = true
				}
			}
		case evLogOn:
			for _, a := range s.agents[len(s.agents)-s.sc.offCount:] {
				a.leaving = false
				if a.outOfOffice {
					a.outOfOffice = false
					a.state, a.since, a.idle = Available, s.now, s.now
				}
			}
			s.dispatch()
		}
	}
}

// oracleWait is the true conditional mean wait by Monte Carlo: it knows
// the distributions the simulation draws from, each agent's talk so far and,
// for agents in wrap-up, the length of the talk.
func (s *sim) oracleWait(pos int) float64 {
	const draws = 300
	r := rand.New(rand.NewPCG(s.seed, uint64(s.now*1000)))
	free := make([]float64, 0, len(s.agents))
	var sum float64
	for range draws {
		free = free[:0]
		for _, a := range s.agents {
			el := s.now - a.since
			switch a.state {
			case Available:
				free = append(free, 0)
			case Reserved:
				t, w := s.drawCall(r)
				free = append(free, max(0, a.since+(simRingMin+simRingMax)/2-s.now)+t+w)
			case OnCall:
				for i := 0; ; i++ {
					t, w := s.drawCall(r)
					if t > el || i > 1000 {
						free = append(free, max(0, t-el)+w)
						break
					}
				}
			case WrapUp:
				// wrap = min(W, H/2) = min(W, talk)
				for i := 0; ; i++ {
					w := min(lognormal(r, simMeanWrap, simWrapCV), a.talk)
					if w > el || i > 1000 {
						free = append(free, max(0, w-el))
						break
					}
				}
			}
		}
		var tk float64
		for range pos {
			j := 0
			for i := range free {
				if free[i] < free[j] {
					j = i
				}
			}
			ring := drawRing(r)
			t, w := s.drawCall(r)
			tk = free[j] + ring
			free[j] = tk + t + w
		}
		sum += tk
	}
	return sum / draws
}

// simStats summarises one estimate over records.
type simStats struct {
	n                     int
	meanActual, mae, bias float64
	pct                   float64 // MAE as a percentage of the mean actual wait
}

func summarize(recs []simRecord, est func(simRecord) float64, keep func(simRecord) bool) simStats {
	var st simStats
	for _, r := range recs {
		if !keep(r) {
			continue
		}
		e := est(r)
		st.n++
		st.meanActual += r.actual
		st.mae += math.Abs(e - r.actual)
		st.bias += e - r.actual
	}
	if st.n == 0 {
		return st
	}
	n := float64(st.n)
	st.meanActual /= n
	st.mae /= n
	st.bias /= n
	if st.meanActual > 0 {
		st.pct = 100 * st.mae / st.meanActual
	}
	return st
}

// TestSimulationEstimate runs every scenario with every seed and prints the
// tables docs/estimate.md shows. It fails when, at N=10 and ρ=0.95, the
// mean absolute error of the seeds pooled exceeds a quarter of the mean
// actual wait, or when in any scenario the estimate does worse than the
// naive position × AHT / staffed. At ρ=0.85 the 25% target is not met
// with what the snapshot holds today (docs/estimate.md says why), so it is
// reported, not asserted.
func TestSimulationEstimate(t *testing.T) {
	type result struct {
		callers int
		records []simRecord
	}
	results := make([][]result, len(simScenarios))
	var wg sync.WaitGroup
	for i, sc := range simScenarios {
		results[i] = make([]result, len(simSeeds))
		for j, seed := range simSeeds {
			wg.Go(func() {
				s := newSim(sc, seed)
				s.oracle = *simOracle
				s.run()
				results[i][j] = result{callers: s.callers, records: s.records}
			})
		}
	}
	wg.Wait()

	all := func(simRecord) bool { return true }
	long := func(r simRecord) bool { return r.total >= 60 }
	today := func(r simRecord) float64 { return r.est }
	withWrap := func(r simRecord) float64 { return r.estWrap }
	naive := func(r simRecord) float64 { return r.naive }
	oracle := func(r simRecord) float64 { return r.oracle }

	var b strings.Builder
	fmt.Fprintf(&b, "Estimate (%.0f h measured after %.0f h warm-up, seeds %v pooled):\n",
		simMeasure/simHour, simWarmup/simHour, simSeeds)
	fmt.Fprintf(&b, "%-27s %7s %5s %5s %5s %5s %5s | %5s %5s %5s %5s %5s | %6s | %s\n",
		"scenario", "callers", "ann", "wait", "MAE", "MAE%", "bias",
		"≥60s", "wait", "MAE", "MAE%", "bias", "naive%", "MAE% per seed")
	var b2 strings.Builder
	fmt.Fprintf(&b2, "Without wrap-up times (before any are measured: mean wrap-up by Little's law); naive and oracle for comparison:\n")
	fmt.Fprintf(&b2, "%-27s %5s %5s %5s | %6s %7s | %s\n",
		"scenario", "MAE", "MAE%", "bias", "naive%", "oracle%", "MAE% per seed")
	for i, sc := range simScenarios {
		var pooled []simRecord
		callers := 0
		var perSeed, perSeedWrap []string
		for j, r := range results[i] {
			pooled = append(pooled, r.records...)
			callers += r.callers
			st, sw := summarize(r.records, today, all), summarize(r.records, withWrap, all)
			perSeed = append(perSeed, fmt.Sprintf("%.0f", st.pct))
			perSeedWrap = append(perSeedWrap, fmt.Sprintf("%.0f", sw.pct))
			t.Logf("%s seed %d: %d callers, %d announcements, mean wait %.0f s; MAE %.1f s (%.1f%%), bias %+.1f s; without wrap-up times %.1f%%; oracle %.1f%%",
				sc.name, simSeeds[j], r.callers, st.n, st.meanActual, st.mae, st.pct, st.bias, sw.pct, summarize(r.records, oracle, all).pct)
		}
		a, l, n := summarize(pooled, today, all), summarize(pooled, today, long), summarize(pooled, naive, all)
		if sc.assert && a.pct > simTarget {
			t.Errorf("%s: MAE %.1f s is %.1f%% of the mean wait %.0f s (target ≤ %.0f%%)",
				sc.name, a.mae, a.pct, a.meanActual, simTarget)
		}
		if a.mae > n.mae {
			t.Errorf("%s: MAE %.1f s is worse than the naive estimate's %.1f s", sc.name, a.mae, n.mae)
		}
		mark := ""
		if sc.assert {
			mark = " *"
		}
		fmt.Fprintf(&b, "%-27s %7d %5d %5.0f %5.1f %5.1f %+5.1f | %5d %5.0f %5.1f %5.1f %+5.1f | %6.1f | %s%s\n",
			sc.name, callers, a.n, a.meanActual, a.mae, a.pct, a.bias,
			l.n, l.meanActual, l.mae, l.pct, l.bias, n.pct, strings.Join(perSeed, " "), mark)
		w := summarize(pooled, withWrap, all)
		o := "-"
		if *simOracle {
			o = fmt.Sprintf("%.1f", summarize(pooled, oracle, all).pct)
		}
		fmt.Fprintf(&b2, "%-27s %5.1f %5.1f %+5.1f | %6.1f %7s | %s\n",
			sc.name, w.mae, w.pct, w.bias, n.pct, o, strings.Join(perSeedWrap, " "))
	}
	b.WriteString("ann: announcements (on arrival, then every 45 s); wait, MAE, bias: seconds, over announcements;\n" +
		"≥60s: announcements to callers who waited a minute or more; naive%: MAE% of position × AHT / staffed;\n" +
		"* asserted: MAE% ≤ 25 (seeds pooled); every row: MAE ≤ the naive estimate's\n\n")
	if !*simOracle {
		b2.WriteString("oracle%: run with -sim.oracle (slow)\n")
	}
	out := b.String() + b2.String()
	t.Log("\n" + out)
	fmt.Print(out)
}
