package queue

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The simulation: a discrete-event model of one skill's queue, with the
// snapshot built exactly as the Redis scripts would give it, to measure
// how close Estimate comes to the waits that follow. No Redis, no clock:
// time is a float64 of seconds.

const (
	simMeanHandle = 180.0 // s, talk + wrap-up
	simHandleCV   = 0.66  // lognormal σ = 0.6
	simMeanWrap   = 30.0  // s; wrap-up is min(lognormal, handle/2)
	simRingMin    = 2.0   // s, offered until accepted: uniform
	simRingMax    = 6.0
	simAnnounce   = 45.0 // s between announcements
	simWindow     = 30 * time.Minute
	simTarget     = 0.25 // MAE / mean actual wait, asserted at steady load
)

var simSeeds = []uint64{1, 2, 3}

type simScenario struct {
	name      string
	agents    int
	occupancy float64 // offered load / agents, ring time included
	service   string  // lognormal or exponential
	warmup    float64 // s
	measure   float64 // s
	// staffing change: offCount agents log off at offAt (s after warm-up)
	// and back on at onAt.
	offCount    int
	offAt, onAt float64
	assert      bool
}

var simScenarios = []simScenario{
	{name: "N=10 ρ=0.70 lognormal", agents: 10, occupancy: 0.70, service: "lognormal", warmup: 3600, measure: 4 * 3600},
	{name: "N=10 ρ=0.85 lognormal", agents: 10, occupancy: 0.85, service: "lognormal", warmup: 3600, measure: 4 * 3600, assert: true},
	{name: "N=10 ρ=0.95 lognormal", agents: 10, occupancy: 0.95, service: "lognormal", warmup: 3600, measure: 4 * 3600, assert: true},
	{name: "N=3 ρ=0.85 lognormal", agents: 3, occupancy: 0.85, service: "lognormal", warmup: 3600, measure: 4 * 3600},
	{name: "N=10 ρ=0.85 exponential", agents: 10, occupancy: 0.85, service: "exponential", warmup: 3600, measure: 4 * 3600},
	{name: "N=12→9→12 ρ=0.80 lognormal", agents: 12, occupancy: 0.80, service: "lognormal", warmup: 3600, measure: 4 * 3600,
		offCount: 3, offAt: 3600, onAt: 3600 + 2700},
}

// simRecord is one estimate a caller heard and the wait that followed.
type simRecord struct {
	pos, avail         int
	est, naive, actual float64
	total              float64 // the caller's whole wait
}

type simAnn struct {
	at, est, naive float64
	pos, avail   int
}

type simCaller struct {
	seq      int
	arrive   float64
	measured bool
	waiting  bool
	anns     []simAnn
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
	rng     *rand.Rand
	base    time.Time
	now     float64
	events  simEvents
	seq     int
	agents  []*simAgent
	queue   []*simCaller // FIFO
	served  []float64    // accept times, ascending
	handles []float64    // handle times, oldest first
	nextSeq int
	lastOut int // seq of the last caller to leave the queue
	records []simRecord
	callers int
	snap    Snapshot
	cfg     EstimateConfig
}

func newSim(sc simScenario, seed uint64) *sim {
	s := &sim{
		sc:   sc,
		rng:  rand.New(rand.NewPCG(seed, 0x1e57)),
		base: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		cfg:  EstimateConfig{DefaultHandleTime: 3 * time.Minute},
	}
	for i := range sc.agents {
		s.agents = append(s.agents, &simAgent{id: "a" + strconv.Itoa(i), state: Available})
	}
	return s
}

func (s *sim) at(t float64) time.Time { return s.base.Add(time.Duration(t * float64(time.Second))) }

// ms is a time as Redis stores it.
func (s *sim) ms(t float64) time.Time { return fromMS(ms(s.at(t))) }

func (s *sim) schedule(ev simEvent) {
	s.seq++
	ev.seq = s.seq
	heap.Push(&s.events, ev)
}

func (s *sim) lognormal(mean, cv float64) float64 {
	sigma2 := math.Log(1 + cv*cv)
	return math.Exp(math.Log(mean) - sigma2/2 + math.Sqrt(sigma2)*s.rng.NormFloat64())
}

// handle draws a call's talk and wrap-up.
func (s *sim) handle() (talk, wrap float64) {
	var h float64
	if s.sc.service == "exponential" {
		h = s.rng.ExpFloat64() * simMeanHandle
	} else {
		h = s.lognormal(simMeanHandle, simHandleCV)
	}
	wrap = min(s.lognormal(simMeanWrap, 0.5), h/2)
	return h - wrap, wrap
}

func (s *sim) arrivalRate() float64 {
	ring := (simRingMin + simRingMax) / 2
	return s.sc.occupancy * float64(s.sc.agents) / (simMeanHandle + ring)
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
	sn.HandleTimes = sn.HandleTimes[:0]
	for i := len(s.handles) - 1; i >= 0 && len(sn.HandleTimes) < 100; i-- {
		sn.HandleTimes = append(sn.HandleTimes, time.Duration(s.handles[i]*1000)*time.Millisecond)
	}
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

// announce records the estimate a waiting caller hears now.
func (s *sim) announce(c *simCaller) {
	pos := c.seq - s.lastOut
	sn := s.snapshot()
	est, ok := Estimate(sn, pos, s.cfg)
	if !ok {
		panic("no estimate with agents staffed")
	}
	aht := s.cfg.DefaultHandleTime.Seconds()
	if len(sn.HandleTimes) > 0 {
		var sum time.Duration
		for _, h := range sn.HandleTimes {
			sum += h
		}
		aht = (sum / time.Duration(len(sn.HandleTimes))).Seconds()
	}
	naive := float64(pos) * aht / float64(max(1, sn.Staffed()))
	if os.Getenv("SIMORACLE") != "" {
		naive = s.oracle(pos)
	}
	c.anns = append(c.anns, simAnn{at: s.now, est: est.Seconds(), naive: naive, pos: pos, avail: sn.AgentsIn(Available)})
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
		ring := simRingMin + (simRingMax-simRingMin)*s.rng.Float64()
		s.schedule(simEvent{at: s.now + ring, kind: evAccept, agent: best})
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

func (s *sim) run() {
	end := s.sc.warmup + s.sc.measure
	rate := s.arrivalRate()
	s.schedule(simEvent{at: s.rng.ExpFloat64() / rate, kind: evArrival})
	if s.sc.offCount > 0 {
		s.schedule(simEvent{at: s.sc.warmup + s.sc.offAt, kind: evLogOff})
		s.schedule(simEvent{at: s.sc.warmup + s.sc.onAt, kind: evLogOn})
	}
	for s.events.Len() > 0 {
		ev := heap.Pop(&s.events).(simEvent)
		s.now = ev.at
		switch ev.kind {
		case evArrival:
			if s.now >= end {
				continue // no more callers; the measured ones are served
			}
			s.nextSeq++
			c := &simCaller{seq: s.nextSeq, arrive: s.now, waiting: true, measured: s.now >= s.sc.warmup}
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
			total := s.now - c.arrive
			for _, an := range c.anns {
				s.records = append(s.records, simRecord{pos: an.pos, avail: an.avail, est: an.est, naive: an.naive, actual: s.now - an.at, total: total})
			}
			s.served = append(s.served, s.now)
			a.talk, a.wrap = s.handle()
			a.state, a.since, a.hstart, a.caller = OnCall, s.now, s.now, nil
			s.schedule(simEvent{at: s.now + a.talk, kind: evTalkEnd, agent: a})
		case evTalkEnd:
			a := ev.agent
			a.state, a.since = WrapUp, s.now
			s.schedule(simEvent{at: s.now + a.wrap, kind: evWrapEnd, agent: a})
		case evWrapEnd:
			a := ev.agent
			s.handles = append(s.handles, s.now-a.hstart)
			if len(s.handles) > 200 {
				s.handles = append(s.handles[:0], s.handles[100:]...)
			}
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

// simStats summarises records.
type simStats struct {
	n                               int
	meanActual, mae, bias, naiveMAE float64
	pct, naivePct                   float64
}

func summarize(recs []simRecord, keep func(simRecord) bool) simStats {
	var st simStats
	for _, r := range recs {
		if !keep(r) {
			continue
		}
		st.n++
		st.meanActual += r.actual
		st.mae += math.Abs(r.est - r.actual)
		st.bias += r.est - r.actual
		st.naiveMAE += math.Abs(r.naive - r.actual)
	}
	if st.n == 0 {
		return st
	}
	n := float64(st.n)
	st.meanActual /= n
	st.mae /= n
	st.bias /= n
	st.naiveMAE /= n
	if st.meanActual > 0 {
		st.pct = 100 * st.mae / st.meanActual
		st.naivePct = 100 * st.naiveMAE / st.meanActual
	}
	return st
}

type simResult struct {
	callers int
	records []simRecord
}

// TestSimulationEstimate runs every scenario with every seed, prints the
// table docs/estimate.md shows, and fails when at steady load (N=10,
// ρ 0.85 and 0.95, lognormal handle times) any seed's mean absolute error
// exceeds a quarter of the mean actual wait.
func TestSimulationEstimate(t *testing.T) {
	results := make([][]simResult, len(simScenarios))
	var wg sync.WaitGroup
	for i, sc := range simScenarios {
		results[i] = make([]simResult, len(simSeeds))
		for j, seed := range simSeeds {
			wg.Go(func() {
				s := newSim(sc, seed)
				s.run()
				results[i][j] = simResult{callers: s.callers, records: s.records}
			})
		}
	}
	wg.Wait()

	all := func(simRecord) bool { return true }
	long := func(r simRecord) bool { return r.total >= 60 }
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %7s %6s %6s %6s %5s %6s | %5s %6s %6s %5s %6s | %6s | %s\n",
		"scenario (3 seeds pooled)", "callers", "ests", "wait", "MAE", "MAE%", "bias",
		"≥60s", "wait", "MAE", "MAE%", "bias", "naive%", "MAE% per seed")
	for i, sc := range simScenarios {
		var pooled []simRecord
		callers := 0
		var perSeed []string
		for j, r := range results[i] {
			pooled = append(pooled, r.records...)
			callers += r.callers
			st := summarize(r.records, all)
			perSeed = append(perSeed, fmt.Sprintf("%.0f", st.pct))
			t.Logf("%s seed %d: %d callers, %d estimates, mean wait %.0f s, MAE %.1f s (%.1f%%), bias %+.1f s, naive MAE %.1f%%",
				sc.name, simSeeds[j], r.callers, st.n, st.meanActual, st.mae, st.pct, st.bias, st.naivePct)
			if sc.assert && st.pct > 100*simTarget {
				t.Errorf("%s seed %d: MAE %.1f s is %.1f%% of the mean wait %.0f s (target ≤ %.0f%%)",
					sc.name, simSeeds[j], st.mae, st.pct, st.meanActual, 100*simTarget)
			}
		}
		a, l := summarize(pooled, all), summarize(pooled, long)
		mark := ""
		if sc.assert {
			mark = " *"
		}
		fmt.Fprintf(&b, "%-28s %7d %6d %6.0f %6.1f %5.1f %+6.1f | %5d %6.0f %6.1f %5.1f %+6.1f | %6.1f | %s%s\n",
			sc.name, callers, a.n, a.meanActual, a.mae, a.pct, a.bias,
			l.n, l.meanActual, l.mae, l.pct, l.bias, a.naivePct, strings.Join(perSeed, " "), mark)
	}
	b.WriteString("waits, MAE and bias in seconds over every announcement (on arrival, then every 45 s);\n" +
		"≥60s: announcements to callers who waited a minute or more; naive%: MAE% of position × AHT / staffed;\n" +
		"* asserted: MAE% ≤ 25 for every seed\n")
	if os.Getenv("SIMDIAG") != "" {
		for i, sc := range simScenarios {
			var pooled []simRecord
			for _, r := range results[i] {
				pooled = append(pooled, r.records...)
			}
			for _, bk := range []struct {
				name string
				f    func(simRecord) bool
			}{
				{"avail>0", func(r simRecord) bool { return r.avail > 0 }},
				{"pos1", func(r simRecord) bool { return r.avail == 0 && r.pos == 1 }},
				{"pos2-3", func(r simRecord) bool { return r.avail == 0 && r.pos >= 2 && r.pos <= 3 }},
				{"pos4-10", func(r simRecord) bool { return r.avail == 0 && r.pos >= 4 && r.pos <= 10 }},
				{"pos11-25", func(r simRecord) bool { return r.avail == 0 && r.pos >= 11 && r.pos <= 25 }},
				{"pos26+", func(r simRecord) bool { return r.avail == 0 && r.pos >= 26 }},
			} {
				st := summarize(pooled, bk.f)
				fmt.Printf("%-28s %-9s n=%5d wait=%6.1f MAE=%6.1f bias=%+6.1f naiveMAE=%6.1f\n", sc.name, bk.name, st.n, st.meanActual, st.mae, st.bias, st.naiveMAE)
			}
		}
	}
	t.Log("\n" + b.String())
	fmt.Print(b.String())
}

// oracle is E[T_k] by Monte Carlo with the true distributions (diagnostic).
func (s *sim) oracle(pos int) float64 {
	const draws = 300
	r := rand.New(rand.NewPCG(uint64(s.now*1000), 7))
	lg := func(mean, cv float64) float64 {
		sigma2 := math.Log(1 + cv*cv)
		return math.Exp(math.Log(mean) - sigma2/2 + math.Sqrt(sigma2)*r.NormFloat64())
	}
	draw := func() (talk, wrap float64) {
		var h float64
		if s.sc.service == "exponential" {
			h = r.ExpFloat64() * simMeanHandle
		} else {
			h = lg(simMeanHandle, simHandleCV)
		}
		wrap = min(lg(simMeanWrap, 0.5), h/2)
		return h - wrap, wrap
	}
	ring := func() float64 { return simRingMin + (simRingMax-simRingMin)*r.Float64() }
	free := make([]float64, 0, len(s.agents))
	var sum float64
	for range draws {
		free = free[:0]
		for _, a := range s.agents {
			switch a.state {
			case Available:
				free = append(free, 0)
			case Reserved:
				t, w := draw()
				free = append(free, max(0, a.since+5-s.now)+t+w)
			case OnCall:
				el := s.now - a.since
				for i := 0; ; i++ {
					t, w := draw()
					if t > el || i > 1000 {
						free = append(free, max(0, t-el)+w)
						break
					}
				}
			case WrapUp:
				el := s.now - a.since
				var rem float64
				for i := 0; ; i++ {
					W := lg(simMeanWrap, 0.5)
					wr := min(W, a.talk)
					if wr > el || i > 1000 {
						rem = max(0, wr-el)
						break
					}
				}
				free = append(free, rem)
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
			tk = free[j]
			rg := ring()
			t, w := draw()
			free[j] = tk + rg + t + w
			tk += rg
		}
		sum += tk
	}
	return sum / draws
}
