package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ivrd/cmd/callsim/sim"
)

func TestReadProcSelf(t *testing.T) {
	// Burn some CPU so the counter moves, and hold a socket open.
	before, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	end := time.Now().Add(150 * time.Millisecond)
	x := 0
	for time.Now().Before(end) {
		x++
	}
	after, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.CPU-before.CPU < 50*time.Millisecond {
		t.Errorf("CPU moved %v after 150 ms of spinning", after.CPU-before.CPU)
	}
	if after.RSS <= 0 || after.PeakRSS < after.RSS || after.Threads < 1 {
		t.Errorf("sample %+v", after)
	}
	if after.FDs != before.FDs+1 {
		t.Errorf("fds %d → %d after opening one file", before.FDs, after.FDs)
	}
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	withUDP, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if withUDP.UDP != after.UDP+1 || withUDP.Sockets != after.Sockets+1 {
		t.Errorf("UDP %d → %d, sockets %d → %d after opening a UDP socket", after.UDP, withUDP.UDP, after.Sockets, withUDP.Sockets)
	}
	_ = x
}

func TestResetPeak(t *testing.T) {
	// Touch 64 MiB outside Go's heap (so that neither the collector nor
	// the race detector's shadow keeps it), unmap it, reset the
	// high-water mark: it must drop.
	big, err := syscall.Mmap(-1, 0, 64<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	s1, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Munmap(big); err != nil {
		t.Fatal(err)
	}
	if err := resetPeak(os.Getpid()); err != nil {
		t.Skipf("clear_refs not writable here: %v", err)
	}
	s2, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s2.PeakRSS > s1.PeakRSS-32<<20 {
		t.Errorf("peak %d MiB before, %d MiB after the reset", s1.PeakRSS>>20, s2.PeakRSS>>20)
	}
}

func TestSummarizePlateau(t *testing.T) {
	t0 := time.Unix(1000, 0)
	mk := func(sec int, cpuMs int, active float64, peak int64) sample {
		return sample{procSample: procSample{At: t0.Add(time.Duration(sec) * time.Second), CPU: time.Duration(cpuMs) * time.Millisecond, PeakRSS: peak}, Active: active}
	}
	// Ramp up (0.1 core), a plateau of 3 s at 1.5 cores, ramp down.
	samples := []sample{mk(0, 0, 0, 10), mk(1, 100, 50, 20), mk(2, 200, 100, 30), mk(3, 1700, 100, 40), mk(4, 3200, 99, 50), mk(5, 4700, 100, 45), mk(6, 4800, 10, 45)}
	u := summarize(samples, 0.95)
	if u.MaxActive != 100 || u.PlateauS != 3 {
		t.Fatalf("max %v, plateau %v s; want 100, 3", u.MaxActive, u.PlateauS)
	}
	if u.Cores < 1.49 || u.Cores > 1.51 {
		t.Errorf("cores %.3f, want 1.5", u.Cores)
	}
	if u.CPU != 4800*time.Millisecond || u.Wall != 6*time.Second || u.PeakRSS != 50 {
		t.Errorf("usage %+v", u)
	}
	// Goroutines and memory come from the last sample at the most calls.
	for i := range samples {
		samples[i].Goroutines = float64(100 + i)
		samples[i].Memory.Stacks = int64(1000 * i)
	}
	if u := summarize(samples, 0.95); u.PeakGoroutines != 105 || u.PeakMemory.Stacks != 5000 {
		t.Errorf("at the most calls: %v goroutines, %d B of stacks; want 105, 5000", u.PeakGoroutines, u.PeakMemory.Stacks)
	}
}

func TestKeyPattern(t *testing.T) {
	for key, want := range map[string]string{
		"{q}:caller:3f9a2b7c1d0e4f5a6b7c8d9e": "{q}:caller:*",
		"{q}:agent:bench0042":                 "{q}:agent:*",
		"{q}:waiting:billing":                 "{q}:waiting:billing",
		"limit:number:+15551234567":           "limit:number:*",
		"session:Zx8_kq2mN0pLrT5vW7yB9cD1":    "session:*",
		"{q}:stats:billing:20261123":          "{q}:stats:billing:*",
	} {
		if got := keyPattern(key); got != want {
			t.Errorf("keyPattern(%q) = %q, want %q", key, got, want)
		}
	}
	growth := keyGrowth(map[string]int{"a": 2, "b": 1}, map[string]int{"a": 2, "b": 3, "c": 1})
	if len(growth) != 2 || growth[0] != "b +2" || growth[1] != "c +1" {
		t.Errorf("growth %v", growth)
	}
	per := perCallGrowth(map[string]int{"{q}:session:*": 1, "{q}:stats:billing": 0}, map[string]int{"{q}:session:*": 3, "{q}:stats:billing": 1})
	if len(per) != 1 || per[0] != "{q}:session:* +2" {
		t.Errorf("per-call growth %v", per)
	}
}

func TestVerdicts(t *testing.T) {
	rep := func(started, completed, failed int, p99 float64) *sim.Report {
		r := &sim.Report{Counts: sim.Counts{Started: started, Completed: completed, Failed: failed}}
		r.CallerToAgent.Latency.P99, r.AgentToCaller.Latency.P99 = p99, p99
		r.AcceptToAudio.P99 = 30
		return r
	}
	r := &results{
		Idle: idleState{Goroutines: 40, Sockets: 10, UDP: 3, RSS: 50 << 20, KeyKinds: map[string]int{"x": 1}},
		Steps: []stepResult{
			{Kind: "setup", N: 500, Report: rep(5000, 5000, 0, 0)},
			{Kind: "ivr", N: 1000, Report: rep(1000, 1000, 0, 0), RSSPerCall: 50 << 10},
			{Kind: "ivr", N: 2000, Report: rep(2000, 1990, 10, 0), RSSPerCall: 60 << 10, Use: usage{MaxActive: 2000, PeakRSS: 50<<20 + 2000*60<<10}},
			{Kind: "ivr", N: 1500, Report: rep(1500, 1500, 0, 0), Paced: 1000, PacedLate: 50}, // 5% of frames late at ivrd: not paced
			{Kind: "bridged", N: 500, Report: rep(500, 500, 0, 1.5), RSSPerCall: 70 << 10, Use: usage{MaxActive: 500, PeakRSS: 50<<20 + 500*70<<10},
				ServerRelay: serverRelay{Packets: [2]float64{9000, 9000}, P50: [2]float64{0.1, 0.1}, P99: [2]float64{0.8, 2.5}}},
		},
		After: &idleState{Goroutines: 41, Sockets: 12, UDP: 4, RSS: 60 << 20, KeyKinds: map[string]int{"x": 1, "{q}:stats:billing": 1}},
	}
	got := map[string]string{}
	for _, row := range r.verdicts() {
		got[row[0]] = row[3] + " " + row[1]
	}
	check := func(prefix, want string) {
		t.Helper()
		for k, v := range got {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				if v[:len(want)] != want {
					t.Errorf("%s: %q, want it to start with %q", k, v, want)
				}
				return
			}
		}
		t.Errorf("no row %q in %v", prefix, got)
	}
	check("call setups/s", "yes 500/s")
	check("callers at once", "NO 1000") // 2,000 failed calls, 1,500 was late: the best clean step is 1,000
	check("calls at once bridged", "NO 500")
	check("relay latency p99 end to end at 500", "yes")
	check("server-added relay latency p99 at 500", "NO 0.80 / 2.50 ms") // agent→caller over 2 ms
	check("RSS per call, ivr 2000", "yes 60.0 KiB")
	check("RSS per call, bridged 500", "NO 70.0 KiB")
	check("accept → first caller audio", "yes")
	check("goroutines", "yes")
	check("UDP sockets", "NO") // one more UDP socket than at idle
	check("Redis keys", "yes")
	check("RSS after", "yes")
}

// TestPassesVerdict: with more than one pass, RSS after the last pass's
// quiet wait is held to the first pass's, not to idle; steps of later
// passes are labelled with their pass.
func TestPassesVerdict(t *testing.T) {
	row := func(after ...int64) [4]string {
		r := &results{Idle: idleState{RSS: 30 << 20}}
		for _, mib := range after {
			r.Passes = append(r.Passes, idleState{RSS: mib << 20})
		}
		r.After = &r.Passes[len(r.Passes)-1]
		for _, v := range r.verdicts() {
			if strings.HasPrefix(v[0], "RSS after each pass") {
				return v
			}
		}
		return [4]string{}
	}
	if v := row(100); v[0] != "" {
		t.Errorf("one pass has a pass row: %q", v)
	}
	if v := row(100, 103, 102); v[3] != "yes" || v[1] != "100.0 → 103.0 → 102.0 MiB (idle 30.0)" {
		t.Errorf("no growth: %q", v)
	}
	if v := row(100, 110); v[3] != "NO" {
		t.Errorf("10 MiB more after the second pass: %q", v)
	}
	if got := (stepResult{Kind: "ivr", Pass: 2}).label(); got != "ivr#2" {
		t.Errorf("label %q", got)
	}
	if got := (stepResult{Kind: "ivr", Pass: 1}).label(); got != "ivr" {
		t.Errorf("label %q", got)
	}
}

func TestScanLog(t *testing.T) {
	path := t.TempDir() + "/ivrd.log"
	head := "time=1 level=WARN msg=\"before the step\"\n"
	body := "time=2 level=INFO msg=\"call answered\" call_id=a\n" +
		"time=3 level=WARN msg=\"RTP timeout\" call_id=a\n" +
		"time=4 level=WARN msg=\"RTP timeout\" call_id=b\n" +
		"time=5 level=ERROR msg=\"recording write failed: disk\" call_id=c\n"
	if err := os.WriteFile(path, []byte(head+body), 0o600); err != nil {
		t.Fatal(err)
	}
	warn, errs, sample := scanLog(path, int64(len(head)), 5)
	if warn != 2 || errs != 1 {
		t.Errorf("warn %d, errors %d; want 2, 1", warn, errs)
	}
	if len(sample) != 2 || sample[0] != `msg="RTP timeout"` || sample[1] != `msg="recording write failed: disk"` {
		t.Errorf("sample %q", sample)
	}
}

// TestQuickBench runs the bench end to end, small: it builds ivrd, starts
// it on the Redis at 127.0.0.1:6379 and runs every step with tens of
// calls, as `make bench-quick` does. Every step must complete cleanly and
// every figure must be reported.
func TestQuickBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ivrd")
	}
	bin := t.TempDir() + "/ivrd"
	if out, err := exec.Command("go", "build", "-o", bin, "../ivrd").CombinedOutput(); err != nil {
		t.Fatalf("build ivrd: %v\n%s", err, out)
	}
	o := quickOptions(options{ivrd: bin, repo: "../..", redisURL: "redis://127.0.0.1:6379/0", out: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := runBench(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res.print(&out)
	t.Log(out.String())
	kinds := map[string]bool{}
	for _, s := range res.Steps {
		kinds[s.Kind] = true
		if !s.clean() {
			t.Errorf("%s %d: not clean: error %q, report %+v", s.Kind, s.N, s.Err, s.Report)
			continue
		}
		if s.Use.CPU <= 0 || s.Use.PeakRSS <= 0 || s.Use.MaxActive < 1 {
			t.Errorf("%s %d: ivrd's usage not measured: %+v", s.Kind, s.N, s.Use)
		}
		if s.Kind != "setup" && (s.Use.PeakGoroutines <= res.Idle.Goroutines || s.Use.PeakMemory.Stacks <= res.Idle.Memory.Stacks) {
			t.Errorf("%s %d: goroutines or stacks at the most calls not above idle: %v, %+v; idle %v, %+v",
				s.Kind, s.N, s.Use.PeakGoroutines, s.Use.PeakMemory, res.Idle.Goroutines, res.Idle.Memory)
		}
	}
	if !kinds["setup"] || !kinds["ivr"] || !kinds["bridged"] {
		t.Errorf("steps %v", kinds)
	}
	if len(res.Passes) != 2 || res.After != &res.Passes[1] || len(res.Steps) != 6 || res.Steps[5].Pass != 2 {
		t.Errorf("two passes: %d leak checks, %d steps, the last of pass %d", len(res.Passes), len(res.Steps), res.Steps[len(res.Steps)-1].Pass)
	}
	if res.After == nil || res.After.Goroutines == 0 || res.Idle.Goroutines == 0 {
		t.Errorf("no leak check: idle %+v, after %+v", res.Idle, res.After)
	}
	for _, m := range []goMemory{res.Idle.Memory, res.After.Memory} {
		if m.HeapLive <= 0 || m.HeapInUse < m.HeapLive || m.Stacks <= 0 || m.Runtime <= 0 {
			t.Errorf("ivrd's memory not read: %+v", m)
		}
	}
	if fi, err := os.Stat(filepath.Join(o.out, "heap-after-quiet.pprof")); err != nil || fi.Size() == 0 {
		t.Errorf("no heap profile after the quiet wait: %v", err)
	}
	rows := map[string]bool{}
	for _, v := range res.verdicts() {
		rows[strings.Fields(v[0])[0]] = true
	}
	for _, want := range []string{"call", "callers", "calls", "relay", "RSS", "accept", "goroutines", "UDP", "Redis"} {
		if !rows[want] {
			t.Errorf("no verdict row starting %q", want)
		}
	}
}

func TestGroupGoroutines(t *testing.T) {
	profile := "goroutine profile: total 5\n3 @ 0x1 0x2\n#\t0x1\truntime.gopark+0x10\t/x.go:1\n#\t0x2\tivrd/agents.(*agent).run+0x3c\t/a.go:9\n\n" +
		"1 @ 0x3\n#\t0x3\tivrd/queue.(*Queue).supervise.func1+0x61\t/q.go:66\n\n" +
		"1 @ 0x4 0x5\n#\t0x4\truntime.gopark+0x10\t/x.go:1\n#\t0x5\tivrd/agents.(*agent).run+0x99\t/a.go:12\n"
	got := groupGoroutines(profile, 5)
	if len(got) != 2 || got[0] != "4 ivrd/agents.(*agent).run" || got[1] != "1 ivrd/queue.(*Queue).supervise.func1" {
		t.Errorf("groups %q", got)
	}
}

// TestServerRelay: the relay latency histograms are read from /metrics
// text, the step's share is what they gained, and the quantiles
// interpolate within the bucket they fall in.
func TestServerRelay(t *testing.T) {
	metrics := func(toAgent [4]int) string {
		var b strings.Builder
		les := []string{"0.001", "0.002", "0.005", "+Inf"}
		for i, le := range les {
			fmt.Fprintf(&b, "ivrd_relay_latency_seconds_bucket{direction=\"to_agent\",le=%q} %d\n", le, toAgent[i])
			fmt.Fprintf(&b, "ivrd_relay_latency_seconds_bucket{direction=\"to_caller\",le=%q} 0\n", le)
		}
		b.WriteString("ivrd_relay_latency_seconds_sum{direction=\"to_agent\"} 0.5\nivrd_other 3\n")
		return b.String()
	}
	parse := func(text string) [2]relayHist {
		var h [2]relayHist
		for _, line := range strings.Split(text, "\n") {
			if err := parseRelayLine(line, &h); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	before := parse(metrics([4]int{10, 10, 10, 10}))
	// The step: 90 packets ≤ 1 ms, 9 in (1, 2] ms, 1 beyond 5 ms.
	after := parse(metrics([4]int{100, 109, 109, 110}))
	r := relayDuring(before, after)
	if r.Packets != [2]float64{100, 0} {
		t.Errorf("packets %v, want [100 0]", r.Packets)
	}
	if math.Abs(r.P50[0]-0.5556) > 0.01 { // rank 50 of 90 in [0, 1] ms
		t.Errorf("p50 %.4f ms, want 0.556", r.P50[0])
	}
	if math.Abs(r.P99[0]-2.0) > 0.01 { // rank 99: the last of (1, 2] ms
		t.Errorf("p99 %.4f ms, want 2.0", r.P99[0])
	}
	if !math.IsNaN(r.P99[1]) {
		t.Errorf("p99 without packets = %v, want NaN", r.P99[1])
	}
	if err := parseRelayLine(`ivrd_relay_latency_seconds_bucket{direction="to_agent",le="x"} 1`, &after); err == nil {
		t.Error("a bad bound was accepted")
	}
}

// TestResultsJSON: -json writes every step, an IVR step's relay figures
// (no relayed packets: NaN) as null rather than failing the whole file.
func TestResultsJSON(t *testing.T) {
	nan := math.NaN()
	res := &results{Steps: []stepResult{
		{Kind: "ivr", N: 10, ServerRelay: serverRelay{P50: [2]float64{nan, nan}, P99: [2]float64{nan, nan}}},
		{Kind: "bridged", N: 10, ServerRelay: serverRelay{Packets: [2]float64{900, 880}, P50: [2]float64{0.2, 0.1}, P99: [2]float64{1.5, 1.2}}},
	}}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := writeJSON(path, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Steps []struct {
			Kind        string
			ServerRelay struct {
				Packets  [2]float64
				P50, P99 [2]*float64
			} `json:"server_relay"`
		}
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	if len(back.Steps) != 2 {
		t.Fatalf("%d steps in the JSON, want 2", len(back.Steps))
	}
	if r := back.Steps[0].ServerRelay; r.P99[0] != nil || r.P50[1] != nil {
		t.Errorf("the IVR step's relay percentiles are %v / %v, want null", r.P50, r.P99)
	}
	if r := back.Steps[1].ServerRelay; r.P99[0] == nil || *r.P99[0] != 1.5 || r.Packets[1] != 880 {
		t.Errorf("the bridged step's relay figures did not survive: %+v", r)
	}
}

// spin burns CPU in a frame of its own, for the profile to find.
//
//go:noinline
func spin(d time.Duration) (x uint64) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			x = x*31 + uint64(i)
		}
	}
	return x
}

func TestProfileSelf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu-loadgen.pprof")
	stop, err := profileSelf(path)
	if err != nil {
		t.Fatal(err)
	}
	if spin(300*time.Millisecond) == 42 {
		t.Log("(the burned value, kept so the loop is not optimised away)")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	frames := topFrames("", path, 5)
	if len(frames) == 0 || !strings.Contains(strings.Join(frames, "\n"), "spin") {
		t.Fatalf("the load generator's profile does not show the frame that burned its CPU: %q", frames)
	}
}
