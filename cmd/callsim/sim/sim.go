// Package sim is callsim's load generator: SIP callers (the test caller,
// sipgo and real RTP) dial an ivrd, press keys along a menu path and wait
// for an agent; agent bots (the documented agent protocol and a pion
// PeerConnection) accept, talk and wrap up. Every audio packet either side
// sends carries a Stamp, so the receiving side measures loss, jitter and
// relay latency exactly. Run returns a Report of what was measured.
package sim

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"ivrd/sip/testcaller"
)

// sim is one run in progress.
type sim struct {
	cfg   Config
	log   *slog.Logger
	phone *testcaller.Phone

	started    atomic.Int64
	inProgress atomic.Int64
	waiting    atomic.Int64 // after the keys, before the agent
	withAgent  atomic.Int64
	completed  atomic.Int64
	abandoned  atomic.Int64
	failed     atomic.Int64

	// The audio of every call, added as each ends.
	callerToAgent, agentToCaller dirSum
	fromServer                   streamSum
}

// Run places the calls cfg describes against the target, with cfg's agents
// taking them, and reports what it measured. It writes a progress line to
// progress (nil: none) every cfg.Progress. Cancelling ctx hangs up the
// calls in progress (they count as cut off) and reports what was measured.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &sim{cfg: cfg, log: cfg.Logger}
	phone, err := testcaller.NewPhone(testcaller.PhoneConfig{Transport: cfg.Transport, LocalIP: cfg.LocalIP, Logger: cfg.Logger, SharedRTP: cfg.SharedRTP})
	if err != nil {
		return nil, fmt.Errorf("callsim: phone: %w", err)
	}
	defer phone.Close()
	s.phone = phone

	agents, err := s.startAgents(ctx)
	if err != nil {
		return nil, err
	}
	agentCtx, endAgents := context.WithCancel(context.Background())
	var agentWG sync.WaitGroup
	for _, a := range agents {
		agentWG.Add(1)
		go func() {
			defer agentWG.Done()
			a.run(agentCtx)
		}()
	}

	start := time.Now()
	stopProgress := s.progress(progress, start)
	legs := s.placeCalls(ctx)
	s.waitAgentsIdle(ctx, agents)
	endAgents()
	agentWG.Wait()
	stopAgents(agents)
	stopProgress()

	var agentLegs []agentLeg
	for _, a := range agents {
		agentLegs = append(agentLegs, a.legs...)
	}
	rep := buildReport(&s.cfg, start, time.Since(start), legs, agentLegs, &s.callerToAgent, &s.agentToCaller, &s.fromServer)
	rep.StrayRTP = phone.StrayRTP()
	rep.GeneratorDrops, _ = phone.DroppedRTP()
	return rep, nil
}

// agentStarts is how many agents log in at once: logins cost the server
// a password check each, and a thousand at once would time out.
const agentStarts = 16

// startAgents logs every agent in, agentStarts at a time; if one fails,
// those already in are stopped.
func (s *sim) startAgents(ctx context.Context) ([]*agent, error) {
	agents := make([]*agent, len(s.cfg.Agents))
	errs := make([]error, len(s.cfg.Agents))
	sem := make(chan struct{}, agentStarts)
	var wg sync.WaitGroup
	for i, acct := range s.cfg.Agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			agents[i], errs[i] = startAgent(sctx, &s.cfg, i, acct, &s.callerToAgent)
		}()
	}
	wg.Wait()
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if first != nil {
		stopAgents(agents)
		return nil, fmt.Errorf("callsim: %d of %d agents did not start, the first: %w", failed, len(agents), first)
	}
	return agents, nil
}

// stopAgents logs the agents out, agentStarts at a time (nil ones are
// skipped).
func stopAgents(agents []*agent) {
	sem := make(chan struct{}, agentStarts)
	var wg sync.WaitGroup
	for _, a := range agents {
		if a == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a.stop()
		}()
	}
	wg.Wait()
}

// placeCalls starts the calls at the configured rate or concurrency and
// returns every started call's leg once all have ended.
func (s *sim) placeCalls(ctx context.Context) []*callerLeg {
	cfg := &s.cfg
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	numberBase := rand.IntN(9_000_000) // numbers differ from run to run: ivrd limits calls per number
	legs := make([]*callerLeg, cfg.Calls)
	for i := range legs {
		legs[i] = &callerLeg{index: i, from: fmt.Sprintf("%s%07d", cfg.FromPrefix, (numberBase+i)%10_000_000)}
		if rng.Float64() < cfg.Abandon {
			legs[i].abandon = time.Duration(1 + rng.Int64N(int64(cfg.AbandonAfter)))
		}
	}

	launchCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		launchCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var wg sync.WaitGroup
	n := 0
	if cfg.Rate > 0 {
		var sem chan struct{}
		if cfg.Concurrency > 0 {
			sem = make(chan struct{}, cfg.Concurrency)
		}
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		next := time.Now()
	rate:
		for ; n < cfg.Calls; n++ {
			if !sleep(launchCtx, time.Until(next)) {
				break
			}
			next = next.Add(interval)
			if sem != nil {
				select {
				case sem <- struct{}{}:
				case <-launchCtx.Done():
					break rate
				}
			}
			wg.Add(1)
			s.started.Add(1)
			go func(leg *callerLeg) {
				defer wg.Done()
				s.runCaller(ctx, leg)
				if sem != nil {
					<-sem
				}
			}(legs[n])
		}
	} else {
		var nextCall atomic.Int64
		for range cfg.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for launchCtx.Err() == nil {
					i := int(nextCall.Add(1)) - 1
					if i >= cfg.Calls {
						return
					}
					s.started.Add(1)
					s.runCaller(ctx, legs[i])
				}
			}()
		}
	}
	wg.Wait()
	var out []*callerLeg
	for _, l := range legs {
		if l.outcome != "" {
			out = append(out, l)
		}
	}
	return out
}

// count adds an ended call to the progress counts.
func (s *sim) count(leg *callerLeg) {
	switch leg.outcome {
	case Completed:
		s.completed.Add(1)
	case Abandoned:
		s.abandoned.Add(1)
	case Failed:
		s.failed.Add(1)
	}
}

// waitAgentsIdle gives the agents time to finish their last calls (the
// report needs the agents' side of every call), at most the wrap-up time
// and a few seconds.
func (s *sim) waitAgentsIdle(ctx context.Context, agents []*agent) {
	deadline := time.Now().Add(s.cfg.AcceptDelay + s.cfg.WrapUp + 5*time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		busy := false
		for _, a := range agents {
			busy = busy || a.busy.Load()
		}
		if !busy {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// progress writes a progress line every cfg.Progress until the returned
// function is called (which writes a last one).
func (s *sim) progress(w io.Writer, start time.Time) (stop func()) {
	if w == nil {
		return func() {}
	}
	line := func() {
		fmt.Fprintf(w, "callsim %6.1fs  started %d/%d  in progress %d (waiting %d, with agent %d)  completed %d  abandoned %d  failed %d\n",
			time.Since(start).Seconds(), s.started.Load(), s.cfg.Calls, s.inProgress.Load(), s.waiting.Load(), s.withAgent.Load(),
			s.completed.Load(), s.abandoned.Load(), s.failed.Load())
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.Progress)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				line()
			case <-done:
				line()
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
