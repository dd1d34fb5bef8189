package queue

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

var estAt = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// handleTimes returns n handle times spread evenly over [lo, hi].
func handleTimes(n int, lo, hi time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = lo + (hi-lo)*time.Duration(i)/time.Duration(max(1, n-1))
	}
	return out
}

// busy returns n agents in state, each in it for elapsed.
func busy(n int, state AgentState, elapsed time.Duration) []AgentLoad {
	out := make([]AgentLoad, n)
	for i := range out {
		out[i] = AgentLoad{ID: fmt.Sprint(state, i), State: state, Since: estAt.Add(-elapsed)}
	}
	return out
}

func mustEstimate(t *testing.T, s *Snapshot, pos int, cfg EstimateConfig) time.Duration {
	t.Helper()
	d, ok := Estimate(s, pos, cfg)
	if !ok {
		t.Fatalf("Estimate(pos %d): no estimate", pos)
	}
	if d < 0 {
		t.Fatalf("Estimate(pos %d) = %v, negative", pos, d)
	}
	return d
}

func TestEstimateNoBasis(t *testing.T) {
	cfg := EstimateConfig{DefaultHandleTime: 3 * time.Minute}
	for name, s := range map[string]*Snapshot{
		"empty": {At: estAt, Waiting: 3},
		"nobody staffed": {At: estAt, Waiting: 3,
			Agents:      append(busy(2, NotReady, time.Minute), busy(3, Offline, time.Hour)...),
			HandleTimes: handleTimes(50, 2*time.Minute, 4*time.Minute)},
		"too few departures": {At: estAt, Waiting: 3, Served: minServed - 1, FirstServed: estAt.Add(-10 * time.Minute),
			Window: 30 * time.Minute},
	} {
		if d, ok := Estimate(s, 1, cfg); ok {
			t.Errorf("%s: Estimate = %v, ok; want no estimate", name, d)
		}
	}
}

func TestEstimateNobodyStaffedUsesMeasuredRate(t *testing.T) {
	// Everyone went not_ready, but 30 callers left the queue to an agent in
	// the last 30 minutes: one a minute.
	s := &Snapshot{At: estAt, Waiting: 5, Agents: busy(4, NotReady, time.Minute),
		Served: 30, FirstServed: estAt.Add(-29 * time.Minute), Window: 30 * time.Minute}
	d := mustEstimate(t, s, 5, EstimateConfig{})
	if d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("Estimate(pos 5) = %v; want about 5 min (5 callers at one a minute)", d)
	}
}

func TestEstimateAvailableAgentAnswersAtOnce(t *testing.T) {
	s := &Snapshot{At: estAt, Waiting: 2,
		Agents:      append(busy(2, Available, 10*time.Second), busy(8, OnCall, time.Minute)...),
		HandleTimes: handleTimes(100, 2*time.Minute, 4*time.Minute)}
	for pos := 1; pos <= 2; pos++ {
		if d := mustEstimate(t, s, pos, EstimateConfig{OfferTime: 5 * time.Second}); d > 6*time.Second {
			t.Errorf("pos %d with 2 agents available: %v; want the offer time, 5 s", pos, d)
		}
	}
	if d := mustEstimate(t, s, 1, EstimateConfig{OfferTime: -1}); d > time.Second {
		t.Errorf("no offer time: %v; want 0", d)
	}
	if d := mustEstimate(t, s, 3, EstimateConfig{}); d < 10*time.Second {
		t.Errorf("pos 3 with 2 agents available: %v; want the wait for a busy agent", d)
	}
}

func TestEstimateMoreAgentsShorter(t *testing.T) {
	cfg := EstimateConfig{DefaultHandleTime: 3 * time.Minute}
	hts := handleTimes(100, time.Minute, 5*time.Minute)
	var prev time.Duration
	for _, n := range []int{1, 2, 3, 5, 10, 20} {
		s := &Snapshot{At: estAt, Waiting: 8, Agents: busy(n, OnCall, 90*time.Second), HandleTimes: hts}
		d := mustEstimate(t, s, 8, cfg)
		if prev != 0 && d >= prev {
			t.Errorf("%d agents: %v; want shorter than with fewer agents (%v)", n, d, prev)
		}
		prev = d
	}
}

func TestEstimateHigherPositionLonger(t *testing.T) {
	agents := append(busy(3, OnCall, 30*time.Second), busy(2, OnCall, 150*time.Second)...)
	agents = append(agents, busy(2, WrapUp, 10*time.Second)...)
	agents = append(agents, busy(1, Reserved, 2*time.Second)...)
	s := &Snapshot{At: estAt, Waiting: 60, Agents: agents, HandleTimes: handleTimes(80, time.Minute, 6*time.Minute)}
	var prev time.Duration
	for pos := 1; pos <= 60; pos++ {
		d := mustEstimate(t, s, pos, EstimateConfig{})
		if d <= prev {
			t.Fatalf("pos %d: %v; want longer than pos %d (%v)", pos, d, pos-1, prev)
		}
		prev = d
	}
	// Far down the queue the agents' rate decides: 8 agents, a handle time
	// of 3.5 min on average plus the offer time.
	perCaller := (210*time.Second + defaultOfferTime) / 8
	if want := 60 * perCaller; math.Abs(float64(prev-want)) > 0.1*float64(want) {
		t.Errorf("pos 60: %v; want about %v", prev, want)
	}
	if d0, d1 := mustEstimate(t, s, 0, EstimateConfig{}), mustEstimate(t, s, 1, EstimateConfig{}); d0 != d1 {
		t.Errorf("pos 0: %v; want as pos 1 (%v)", d0, d1)
	}
}

// An estimate that never changes while the caller waits is a bug users
// report: agents nearer the end of their calls must bring it down.
func TestEstimateChangesAsTimePasses(t *testing.T) {
	hts := handleTimes(100, 150*time.Second, 210*time.Second) // 2.5 to 3.5 min
	agents := busy(4, OnCall, 60*time.Second)
	cfg := EstimateConfig{DefaultHandleTime: 3 * time.Minute}
	var prev time.Duration
	for i, later := range []time.Duration{0, 30 * time.Second, 60 * time.Second, 90 * time.Second} {
		s := &Snapshot{At: estAt.Add(later), Waiting: 3, Agents: agents, HandleTimes: hts}
		d := mustEstimate(t, s, 3, cfg)
		if i > 0 && d >= prev-20*time.Second {
			t.Errorf("%v later: %v; want clearly less than %v (the calls are %v nearer their end)",
				later, d, prev, 30*time.Second)
		}
		prev = d
	}
	// Calls that have lasted 3 of at most 3.5 minutes end within 30 s.
	s := &Snapshot{At: estAt, Waiting: 1, Agents: busy(4, OnCall, 180*time.Second), HandleTimes: hts}
	if d := mustEstimate(t, s, 1, cfg); d > 25*time.Second {
		t.Errorf("calls near their end: %v; want under 25 s", d)
	}
}

func TestEstimateDefaultHandleTimeWithoutHistory(t *testing.T) {
	// One agent whose call just began; nothing measured.
	s := &Snapshot{At: estAt, Waiting: 1, Agents: busy(1, OnCall, 0)}
	for _, def := range []time.Duration{3 * time.Minute, 10 * time.Minute} {
		d := mustEstimate(t, s, 1, EstimateConfig{DefaultHandleTime: def, OfferTime: -1})
		if math.Abs(float64(d-def)) > 0.05*float64(def) {
			t.Errorf("default handle time %v: %v; want about %v", def, d, def)
		}
	}
	if d := mustEstimate(t, s, 1, EstimateConfig{OfferTime: -1}); math.Abs(float64(d-defaultHandleTime)) > 0.05*float64(defaultHandleTime) {
		t.Errorf("zero config: %v; want about %v", d, defaultHandleTime)
	}
	// With measurements the default weighs as little as 5 samples.
	s.HandleTimes = handleTimes(100, 50*time.Second, 70*time.Second)
	if d := mustEstimate(t, s, 1, EstimateConfig{DefaultHandleTime: 10 * time.Minute, OfferTime: -1}); d > 90*time.Second {
		t.Errorf("100 handle times of about 1 min: %v; want about 1 min, not the default", d)
	}
}

// Agents who also serve other skills serve this one slower than their
// number says; the measured departures show it once the queue has been
// busy long enough to measure the agents, not the arrivals.
func TestEstimateSharedAgentsMeasuredRate(t *testing.T) {
	cfg := EstimateConfig{DefaultHandleTime: 3 * time.Minute}
	base := Snapshot{At: estAt, Waiting: 10, Agents: busy(10, OnCall, 60*time.Second),
		HandleTimes: handleTimes(100, 150*time.Second, 210*time.Second), Window: 30 * time.Minute}
	model := mustEstimate(t, &base, 10, cfg) // 10 agents, 3 min each: about 3 min

	// The queue has not been empty for 30 minutes, and in that time only
	// 20 callers (not 100) left it to an agent: one every 90 s.
	shared := base
	shared.Served, shared.FirstServed = 20, estAt.Add(-28*time.Minute)
	shared.Oldest = estAt.Add(-30 * time.Minute)
	d := mustEstimate(t, &shared, 10, cfg)
	if d < 2*model || d > 15*time.Minute {
		t.Errorf("shared agents: %v; want well above the model's %v, toward 15 min", d, model)
	}

	// The same departures while the queue only just formed measure the
	// arrivals: they barely count.
	fresh := shared
	fresh.Oldest = estAt.Add(-30 * time.Second)
	if d := mustEstimate(t, &fresh, 10, cfg); d > model+model/4 {
		t.Errorf("queue just formed: %v; want about the model's %v", d, model)
	}

	// A measured rate faster than the model never shortens the estimate.
	fast := shared
	fast.Served = 400
	if d := mustEstimate(t, &fast, 10, cfg); d != model {
		t.Errorf("measured faster than the model: %v; want the model's %v", d, model)
	}
}

func TestEstimateWrapUpNearItsEnd(t *testing.T) {
	cfg := EstimateConfig{DefaultHandleTime: 3 * time.Minute}
	wraps := handleTimes(100, 20*time.Second, 40*time.Second)
	hts := handleTimes(100, 2*time.Minute, 4*time.Minute)
	estimateWith := func(elapsed time.Duration) time.Duration {
		agents := append(busy(4, OnCall, 30*time.Second), busy(1, WrapUp, elapsed)...)
		s := &Snapshot{At: estAt, Waiting: 1, Agents: agents, HandleTimes: hts}
		d, _ := estimate(s, 1, cfg, wraps)
		return d
	}
	if early, late := estimateWith(time.Second), estimateWith(35*time.Second); late >= early || late > 15*time.Second {
		t.Errorf("wrap-up 35 s in: %v, 1 s in: %v; want the later one shorter and under 15 s", late, early)
	}
}

func TestEstimateAllocatesNothing(t *testing.T) {
	agents := append(busy(6, OnCall, 70*time.Second), busy(2, WrapUp, 10*time.Second)...)
	agents = append(agents, busy(2, Available, time.Second)...)
	s := &Snapshot{At: estAt, Waiting: 12, Agents: agents, HandleTimes: handleTimes(100, time.Minute, 5*time.Minute),
		Served: 40, FirstServed: estAt.Add(-25 * time.Minute), Window: 30 * time.Minute, Oldest: estAt.Add(-3 * time.Minute)}
	if n := testing.AllocsPerRun(100, func() { Estimate(s, 12, EstimateConfig{}) }); n != 0 {
		t.Errorf("Estimate allocates %v times per call; want 0", n)
	}
}

// TestEstimateStack: estimating takes little stack, so the goroutine of a
// caller whose announcements estimate keeps a small one. With the
// estimator's 4.5 KB on the stack, each goroutine below grew to 8 KB.
func TestEstimateStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's frames are larger: stack sizes measured without it")
	}
	agents := append(busy(6, OnCall, 70*time.Second), busy(2, WrapUp, 10*time.Second)...)
	s := &Snapshot{At: estAt, Waiting: 12, Agents: agents, HandleTimes: handleTimes(100, time.Minute, 5*time.Minute),
		Served: 40, FirstServed: estAt.Add(-25 * time.Minute), Window: 30 * time.Minute, Oldest: estAt.Add(-3 * time.Minute)}
	Estimate(s, 12, EstimateConfig{})                // the pool's first estimator
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection shrinks a stack meanwhile
	const n = 200
	release := make(chan struct{})
	var ready sync.WaitGroup
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.StackInuse
	for range n {
		ready.Add(1)
		go func() {
			Estimate(s, 12, EstimateConfig{})
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	runtime.ReadMemStats(&ms)
	close(release)
	per := float64(ms.StackInuse-before) / n
	t.Logf("%.0f bytes of stack a goroutine that estimated", per)
	if per > 6<<10 {
		t.Errorf("%.0f bytes of stack a goroutine that estimated; want under 6 KB", per)
	}
}

func BenchmarkEstimate(b *testing.B) {
	agents := append(busy(14, OnCall, 70*time.Second), busy(3, WrapUp, 10*time.Second)...)
	agents = append(agents, busy(3, NotReady, time.Second)...)
	s := &Snapshot{At: estAt, Waiting: 25, Agents: agents, HandleTimes: handleTimes(100, time.Minute, 5*time.Minute),
		Served: 200, FirstServed: estAt.Add(-29 * time.Minute), Window: 30 * time.Minute, Oldest: estAt.Add(-5 * time.Minute)}
	b.ReportAllocs()
	for b.Loop() {
		Estimate(s, 25, EstimateConfig{})
	}
}

// An agent stuck on a call for days (or with no start time at all) must
// not break the estimate: the rest of its call is the memoryless tail.
func TestEstimateStuckAgent(t *testing.T) {
	for _, since := range []time.Time{{}, estAt.Add(-72 * time.Hour)} {
		s := &Snapshot{At: estAt, Waiting: 1, Agents: []AgentLoad{{ID: "stuck", State: OnCall, Since: since}}}
		d := mustEstimate(t, s, 1, EstimateConfig{DefaultHandleTime: 3 * time.Minute, OfferTime: -1})
		if d < 2*time.Minute || d > 4*time.Minute {
			t.Errorf("since %v: %v; want about the default handle time", since, d)
		}
		s.HandleTimes = handleTimes(100, time.Minute, 5*time.Minute)
		if d := mustEstimate(t, s, 1, EstimateConfig{OfferTime: -1}); d < time.Minute || d > 5*time.Minute {
			t.Errorf("since %v, with handle times: %v; want a few minutes", since, d)
		}
	}
}
