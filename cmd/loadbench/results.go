package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// results is everything a loadbench run measured.
type results struct {
	Started  time.Time    `json:"started"`
	Machine  string       `json:"machine"`
	Options  string       `json:"options"`
	Idle     idleState    `json:"idle"`
	Steps    []stepResult `json:"steps"`
	After    *idleState   `json:"after_quiet,omitempty"` // after the last pass
	Passes   []idleState  `json:"after_each_pass,omitempty"`
	SIPp     []sippResult `json:"sipp,omitempty"`
	SIPpBest *sippResult  `json:"sipp_best,omitempty"`
	SIPpErr  string       `json:"sipp_error,omitempty"`
}

// maxLateShare is the share of paced frames ivrd may send more than half
// a frame late in a step that counts as paced audio.
const maxLateShare = 0.01

// The targets (issue 6), on a 2-core machine.
const (
	targetSetupRate   = 500      // call setups per second through the first prompt…
	targetSetupFail   = 0.1      // …with fewer than this % failed
	targetIVR         = 2000     // callers at once in the IVR or queue
	targetBridged     = 2000     // calls at once bridged and recorded
	targetRelayP99Ms  = 2.0      // server-added relay latency, p99
	targetRSSPerCall  = 64 << 10 // bytes of RSS per call
	targetAcceptAudio = 100.0    // ms from accept to the caller's first audio at the agent
)

func (o options) describe() string {
	rtp := "a socket per caller"
	if o.sharedRTP {
		rtp = "the generator's shared sockets"
	}
	return fmt.Sprintf("setup %d/s for %v; ivr %v; bridged %v; arrival %.0f/s; plateau %v; quiet %v; passes %d; sipp %v; load generator at nice %d, callers' RTP on %s",
		o.setupRate, o.setupFor, o.ivrSteps, o.bridgedSteps, o.arrival, o.plateau, o.quiet, o.passes, o.sippRates, o.nice, rtp)
}

// machine names the CPU and core count.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s, %s", runtime.NumCPU(), model, runtime.Version())
}

// clean is a step with every call completed and nothing lost.
func (s stepResult) clean() bool {
	r := s.Report
	if s.Err != "" || r == nil || r.Counts.Started == 0 {
		return false
	}
	return r.Counts.Failed == 0 && r.Counts.CutOff == 0 && r.CallerToAgent.Lost == 0 && r.AgentToCaller.Lost == 0 && r.FromServer.Lost == 0 &&
		s.PacedSkipped == 0 && s.PacedLate <= maxLateShare*s.Paced
}

// printPerCall writes, for each concurrency step, where a call's memory
// was at its most calls in progress, by the Go runtime's account against
// the idle server: what RSS per call is made of.
func (r *results) printPerCall(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := false
	for _, s := range r.Steps {
		n := s.Use.MaxActive
		if s.Kind == "setup" || n < 1 || s.Use.PeakMemory.HeapInUse == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nA call at each step's most calls in progress, by the Go runtime's account (against idle)")
			fmt.Fprintln(tw, "step\tn\tgoroutines/call\tstack KiB/call\theap objects KiB/call\theap in use KiB/call\t")
			header = true
		}
		m, i := s.Use.PeakMemory, r.Idle.Memory
		per := func(b, idle int64) float64 { return float64(b-idle) / n / 1024 }
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", s.label(), s.N, (s.Use.PeakGoroutines-r.Idle.Goroutines)/n,
			per(m.Stacks, i.Stacks), per(m.HeapLive, i.HeapLive), per(m.HeapInUse, i.HeapInUse))
	}
	tw.Flush()
}

// print writes the steps and the figures next to their targets.
func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nloadbench %s on %s\n%s\n\n", r.Started.Format(time.RFC3339), r.Machine, r.Options)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tn\tstarted\tdone\tfailed\tmax at once\tivrd cores\tplateau s\tpeak RSS MiB\tKiB/call\tloadgen cores\tsetup p50/p99 ms\tprompt p99 ms\taccept→audio p50/p99 ms\tc→a loss\ta→c loss\tc→a p50/p99 ms\ta→c p50/p99 ms\tstream loss\tstream jitter p99 ms\tlongest gap p99 ms\tivrd late/skipped frames\tivrd relay p99 ms c→a/a→c\t")
	for _, s := range r.Steps {
		rep := s.Report
		if rep == nil {
			fmt.Fprintf(tw, "%s\t%d\t%s\t\n", s.label(), s.N, s.Err)
			continue
		}
		gen, cores, plateau := 0.0, s.Use.Cores, s.Use.PlateauS
		if s.Use.Wall > 0 {
			gen = s.GenCPU.Seconds() / s.Use.Wall.Seconds()
			if s.Kind == "setup" { // no plateau: calls come and go at the rate
				cores, plateau = s.Use.CPU.Seconds()/s.Use.Wall.Seconds(), s.Use.Wall.Seconds()
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.0f\t%.2f\t%.0f\t%.0f\t%.1f\t%.2f\t%.1f/%.1f\t%.1f\t%.1f/%.1f\t%d\t%d\t%.2f/%.2f\t%.2f/%.2f\t%d\t%.1f\t%.0f\t%.2f%%/%.0f\t%s\t\n",
			s.label(), s.N, rep.Counts.Started, rep.Counts.Completed, rep.Counts.Failed+rep.Counts.CutOff, s.Use.MaxActive,
			cores, plateau, float64(s.Use.PeakRSS)/(1<<20), s.RSSPerCall/1024, gen,
			rep.Setup.P50, rep.Setup.P99, rep.FirstPrompt.P99, rep.AcceptToAudio.P50, rep.AcceptToAudio.P99,
			rep.CallerToAgent.Lost, rep.AgentToCaller.Lost,
			rep.CallerToAgent.Latency.P50, rep.CallerToAgent.Latency.P99, rep.AgentToCaller.Latency.P50, rep.AgentToCaller.Latency.P99,
			rep.FromServer.Lost, rep.FromServer.Jitter.P99, rep.FromServer.MaxGap.P99, 100*s.PacedLate/max(s.Paced, 1), s.PacedSkipped, s.ServerRelay.cell())
		if s.Err != "" {
			fmt.Fprintf(tw, "\terror: %s\t\n", s.Err)
		}
	}
	tw.Flush()
	r.printPerCall(w)
	for _, s := range r.Steps {
		if s.LogWarn+s.LogError > 0 {
			fmt.Fprintf(w, "ivrd logged %d warnings and %d errors in the %s %d step, e.g.:\n", s.LogWarn, s.LogError, s.label(), s.N)
			for _, m := range s.LogSample {
				fmt.Fprintf(w, "  %s\n", m)
			}
		}
		if rep := s.Report; rep != nil && len(rep.Failures) > 0 {
			fmt.Fprintf(w, "failures in the %s %d step: %v\n", s.label(), s.N, rep.Failures)
		}
		if rep := s.Report; rep != nil && rep.GeneratorDrops > 0 {
			fmt.Fprintf(w, "the load generator's RTP sockets dropped %d packets in the %s %d step (their buffers were full: the generator's loss, counted in the loss columns, not ivrd's)\n", rep.GeneratorDrops, s.label(), s.N)
		}
	}

	fmt.Fprintln(w, "\nFigures against the targets")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmeasured\ttarget\tmet")
	for _, row := range r.verdicts() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row[0], row[1], row[2], row[3])
	}
	tw.Flush()

	if r.After != nil {
		fmt.Fprintln(w, "\nAfter the load and a quiet wait (idle → after)")
		fmt.Fprintf(w, "  goroutines %.0f → %.0f, fds %d → %d (sockets %d → %d, UDP %d → %d), RSS %.1f → %.1f MiB, Redis keys %d → %d\n",
			r.Idle.Goroutines, r.After.Goroutines, r.Idle.FDs, r.After.FDs, r.Idle.Sockets, r.After.Sockets, r.Idle.UDP, r.After.UDP,
			float64(r.Idle.RSS)/(1<<20), float64(r.After.RSS)/(1<<20), r.Idle.Keys, r.After.Keys)
		for _, g := range keyGrowth(r.Idle.KeyKinds, r.After.KeyKinds) {
			fmt.Fprintf(w, "  more keys: %s\n", g)
		}
		fmt.Fprintln(w, "  (kinds with a * hold one key per call, caller or login and must not grow; the others are one per skill)")
		fmt.Fprintln(w, "  RSS by the Go runtime's account, MiB (idle → after):")
		for _, row := range memoryRows(r.Idle.Memory, r.After.Memory, r.Idle.RSS, r.After.RSS) {
			fmt.Fprintf(w, "    %-52s %7s → %7s\n", row[0], row[1], row[2])
		}
		if r.After.Goroutines > r.Idle.Goroutines {
			fmt.Fprintf(w, "  goroutines by the function that started them, idle: %v\n  after: %v\n", r.Idle.GoroutineKinds, r.After.GoroutineKinds)
		}
	}
	for _, s := range r.Steps {
		if len(s.TopFrames) > 0 {
			fmt.Fprintf(w, "\nivrd's top frames at the %s %d plateau (pprof -top, flat):\n", s.label(), s.N)
			for _, f := range s.TopFrames {
				fmt.Fprintf(w, "  %s\n", f)
			}
		}
		if len(s.GenTopFrames) > 0 {
			fmt.Fprintf(w, "\nthe load generator's top frames over the same seconds (pprof -top, flat):\n")
			for _, f := range s.GenTopFrames {
				fmt.Fprintf(w, "  %s\n", f)
			}
		}
	}
	if len(r.SIPp) > 0 || r.SIPpErr != "" {
		fmt.Fprintln(w, "\nSIPp, SIP only (INVITE → 200 → ACK → BYE)")
		for _, s := range r.SIPp {
			fmt.Fprintf(w, "  %6.0f/s offered: %d calls, %d failed (%.2f%%), achieved %.0f/s, setup p50 %v p99 %v\n",
				s.Rate, s.Calls, s.Failed, s.FailedPct, s.Achieved, s.SetupP50, s.SetupP99)
		}
		if r.SIPpErr != "" {
			fmt.Fprintf(w, "  error: %s\n", r.SIPpErr)
		}
	}
}

// verdicts are the rows of the targets table: figure, measured, target,
// and yes/no/"-" (not measured).
func (r *results) verdicts() [][4]string {
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	var rows [][4]string
	for _, s := range r.Steps {
		if s.Kind != "setup" || s.Report == nil {
			continue
		}
		c := s.Report.Counts
		failed := 100 * float64(c.Failed+c.CutOff) / float64(max(c.Started, 1))
		rows = append(rows, [4]string{"call setups/s through the first prompt",
			fmt.Sprintf("%d/s offered, %d of %d heard the prompt, %.2f%% failed; setup p99 %.1f ms, prompt p99 %.1f ms",
				s.N, c.Completed, c.Started, failed, s.Report.Setup.P99, s.Report.FirstPrompt.P99),
			fmt.Sprintf("≥ %d/s, < %.1f%% failed", targetSetupRate, targetSetupFail),
			yes(s.N >= targetSetupRate && c.Started > 0 && failed < targetSetupFail)})
	}
	best := func(kind string) (stepResult, bool) {
		var b stepResult
		found := false
		for _, s := range r.Steps {
			if s.Kind == kind && s.clean() && s.N >= b.N {
				b, found = s, true
			}
		}
		return b, found
	}
	if s, ok := best("ivr"); ok {
		fs := s.Report.FromServer
		rows = append(rows, [4]string{"callers at once in the IVR or queue: all completed, nothing lost, ≤ 1% of frames late at ivrd",
			fmt.Sprintf("%d (ivrd %.2f cores, %.2f%% frames late; heard: jitter p99 %.1f ms, longest gap p99 %.0f ms)", s.N, s.Use.Cores, 100*s.PacedLate/max(s.Paced, 1), fs.Jitter.P99, fs.MaxGap.P99),
			fmt.Sprintf("≥ %d", targetIVR), yes(s.N >= targetIVR)})
	} else if r.has("ivr") {
		rows = append(rows, [4]string{"callers at once in the IVR or queue: all completed, nothing lost, ≤ 1% of frames late at ivrd", "no step completed cleanly", fmt.Sprintf("≥ %d", targetIVR), "NO"})
	}
	if s, ok := best("bridged"); ok {
		rep := s.Report
		rows = append(rows,
			[4]string{"calls at once bridged and recorded, no loss",
				fmt.Sprintf("%d (ivrd %.2f cores)", s.N, s.Use.Cores), fmt.Sprintf("≥ %d", targetBridged), yes(s.N >= targetBridged)},
			[4]string{fmt.Sprintf("relay latency p99 end to end at %d calls (callsim: load generator included; caller→agent / agent→caller)", s.N),
				fmt.Sprintf("%.2f / %.2f ms", rep.CallerToAgent.Latency.P99, rep.AgentToCaller.Latency.P99),
				fmt.Sprintf("< %.0f ms", targetRelayP99Ms),
				yes(rep.CallerToAgent.Latency.P99 < targetRelayP99Ms && rep.AgentToCaller.Latency.P99 < targetRelayP99Ms)})
	} else if r.has("bridged") {
		rows = append(rows, [4]string{"calls at once bridged and recorded, no loss", "no step completed cleanly", fmt.Sprintf("≥ %d", targetBridged), "NO"})
	}
	// The server's own share of the relay latency, from its kernel
	// stamps: at the largest clean bridged step, else at the largest that
	// relayed anything (it then says what an overloaded server adds).
	var sr *stepResult
	for i, s := range r.Steps {
		if s.Kind != "bridged" || s.ServerRelay.Packets[0] == 0 {
			continue
		}
		if sr == nil || s.clean() && (!sr.clean() || s.N > sr.N) || !sr.clean() && s.N > sr.N {
			sr = &r.Steps[i]
		}
	}
	if sr != nil {
		x := sr.ServerRelay
		rows = append(rows, [4]string{fmt.Sprintf("server-added relay latency p99 at %d calls (ivrd's kernel stamps; caller→agent / agent→caller)", sr.N),
			fmt.Sprintf("%.2f / %.2f ms (p50 %.2f / %.2f; %.0f / %.0f packets)", x.P99[0], x.P99[1], x.P50[0], x.P50[1], x.Packets[0], x.Packets[1]),
			fmt.Sprintf("< %.0f ms", targetRelayP99Ms),
			yes(x.P99[0] < targetRelayP99Ms && x.P99[1] < targetRelayP99Ms)})
	}
	// RSS per call at the largest step of each kind: small steps divide
	// the heap's first growth by few calls and say little.
	largest := map[string]stepResult{}
	worstAccept, acceptAt := 0.0, ""
	for _, s := range r.Steps {
		if s.Kind != "setup" && s.N >= largest[s.Kind].N {
			largest[s.Kind] = s
		}
		if s.Kind == "bridged" && s.Report != nil && s.Report.AcceptToAudio.P99 > worstAccept {
			worstAccept, acceptAt = s.Report.AcceptToAudio.P99, fmt.Sprintf("bridged %d", s.N)
		}
	}
	// Against the idle RSS of the fresh server, not the RSS before the
	// step: Go reuses the heap earlier steps freed without RSS moving, so
	// the step's own delta is too low. This errs high (earlier steps'
	// leftovers count), which a limit should.
	for _, kind := range []string{"ivr", "bridged"} {
		if s, ok := largest[kind]; ok && s.Use.MaxActive > 0 {
			per := float64(s.Use.PeakRSS-r.Idle.RSS) / s.Use.MaxActive
			rows = append(rows, [4]string{fmt.Sprintf("RSS per call, %s %d (peak − idle RSS)", kind, s.N), fmt.Sprintf("%.1f KiB", per/1024),
				fmt.Sprintf("< %d KiB", targetRSSPerCall>>10), yes(per < targetRSSPerCall)})
		}
	}
	if acceptAt != "" {
		rows = append(rows, [4]string{"accept → first caller audio, p99 (worst step)", fmt.Sprintf("%.1f ms (%s)", worstAccept, acceptAt),
			fmt.Sprintf("< %.0f ms", targetAcceptAudio), yes(worstAccept < targetAcceptAudio)})
	}
	if a := r.After; a != nil {
		i := r.Idle
		growth := perCallGrowth(i.KeyKinds, a.KeyKinds)
		rows = append(rows,
			[4]string{"goroutines after a quiet wait", fmt.Sprintf("%.0f (idle %.0f)", a.Goroutines, i.Goroutines), "idle level", yes(a.Goroutines <= i.Goroutines+leakGoroutineSlack)},
			[4]string{"UDP sockets (SIP, RTP, WebRTC) after a quiet wait", fmt.Sprintf("%d (idle %d; all sockets %d, idle %d: TCP to Redis and HTTP clients vary)", a.UDP, i.UDP, a.Sockets, i.Sockets),
				"idle level", yes(a.UDP <= i.UDP)},
			[4]string{"Redis keys per call or login after a quiet wait", fmt.Sprintf("%d kinds grew (all keys: %d, idle %d)", len(growth), a.Keys, i.Keys), "none left", yes(len(growth) == 0)},
			[4]string{"RSS after a quiet wait", fmt.Sprintf("%.1f MiB (idle %.1f)", float64(a.RSS)/(1<<20), float64(i.RSS)/(1<<20)),
				fmt.Sprintf("idle level (+%d MiB)", leakRSSSlack>>20), yes(a.RSS <= i.RSS+leakRSSSlack)})
	}
	if len(r.Passes) >= 2 {
		first, last := r.Passes[0], r.Passes[len(r.Passes)-1]
		mib := make([]string, len(r.Passes))
		for k, p := range r.Passes {
			mib[k] = fmt.Sprintf("%.1f", float64(p.RSS)/(1<<20))
		}
		rows = append(rows, [4]string{"RSS after each pass's quiet wait (a leak grows pass after pass)",
			fmt.Sprintf("%s MiB (idle %.1f)", strings.Join(mib, " → "), float64(r.Idle.RSS)/(1<<20)),
			fmt.Sprintf("the first pass's level (+%d MiB)", passRSSSlack>>20), yes(last.RSS <= first.RSS+passRSSSlack)})
	}
	return rows
}

// passRSSSlack is how much more RSS than after the first pass the last
// pass may leave: the same load on the same process finds the room the
// first one made, so what grows beyond this is kept per call served.
const passRSSSlack = 4 << 20

// label names a step in the tables: its kind, and its pass after the
// first (-passes).
func (s stepResult) label() string {
	if s.Pass > 1 {
		return fmt.Sprintf("%s#%d", s.Kind, s.Pass)
	}
	return s.Kind
}

// What "back to the idle level" allows: a few goroutines that come and go
// by themselves (timers of the queue's loops, an HTTP keep-alive), and
// some RSS the Go runtime keeps for its next allocations.
const (
	leakGoroutineSlack = 5
	leakRSSSlack       = 16 << 20
)

func (r *results) has(kind string) bool {
	for _, s := range r.Steps {
		if s.Kind == kind {
			return true
		}
	}
	return false
}
