package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"ivrd/cmd/callsim/sim"
)

// stepResult is one load step: what callsim measured and what the server
// spent on it.
type stepResult struct {
	Kind   string      `json:"kind"` // setup, ivr, bridged
	N      int         `json:"n"`    // calls per second (setup) or calls at once
	Pass   int         `json:"pass"` // which run of the steps (-passes), from 1
	Report *sim.Report `json:"report,omitempty"`
	Err    string      `json:"error,omitempty"`

	Use        usage         `json:"usage"`
	BaseRSS    int64         `json:"base_rss"`     // before the step
	RSSPerCall float64       `json:"rss_per_call"` // (peak − base) / most calls at once
	GenCPU     time.Duration `json:"loadgen_cpu"`  // loadbench's own CPU time (callers and agents)
	// ivrd's own view of its pacing during the step (ivrd_rtp_paced_*):
	// frames due, sent more than half a frame late, skipped.
	Paced, PacedLate, PacedSkipped float64
	// The latency ivrd added to relayed packets (its kernel receive
	// stamps, ivrd_relay_latency_seconds) during the step.
	ServerRelay serverRelay `json:"server_relay"`
	LogWarn     int         `json:"log_warnings"`         // lines ivrd logged at WARN during the step
	LogError    int         `json:"log_errors"`           // and at ERROR
	LogSample   []string    `json:"log_sample,omitempty"` // the first few distinct messages of those
	Profile     string      `json:"profile,omitempty"`
	TopFrames   []string    `json:"top_frames,omitempty"`
	// The load generator's own CPU profile over the same seconds: what
	// the callers and agents cost the machine ivrd runs on.
	GenProfile   string   `json:"loadgen_profile,omitempty"`
	GenTopFrames []string `json:"loadgen_top_frames,omitempty"`
}

// bench is one loadbench run against one server.
type bench struct {
	srv      *server
	log      *slog.Logger
	progress io.Writer
	profile  time.Duration // CPU profile this long at the plateau of each step; 0: none
	binary   string
	pass     int  // which run of the steps, from 1
	shared   bool // the callers' RTP on one socket of the generator's (sim.Config.SharedRTP)
}

// run runs one step: cfg against the server, sampling it every second.
// At most calls are expected at once; the plateau (and the profile) is
// when nearly that many are.
func (b *bench) run(ctx context.Context, kind string, n int, expect int, cfg sim.Config) stepResult {
	res := stepResult{Kind: kind, N: n, Pass: b.pass}
	base, err := readProc(b.srv.pid)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.BaseRSS = base.RSS
	if err := resetPeak(b.srv.pid); err != nil {
		b.log.Warn("cannot reset the peak RSS; the peak is since start", "error", err)
	}
	logFrom := fileSize(b.srv.logPath())
	pacedBefore := b.srv.pacing()
	relayBefore, _ := b.srv.relayHists()
	genBefore := selfCPU()
	sp := startSampler(b.srv, time.Second)

	profCtx, stopProf := context.WithCancel(ctx)
	profDone := make(chan plateauProfiles, 1)
	go func() { profDone <- b.profileAtPlateau(profCtx, kind, n, expect) }()

	cfg.Target = "sip:support@" + b.srv.sipAddr
	cfg.HTTP = "http://" + b.srv.httpAddr
	cfg.Logger = b.log
	cfg.SharedRTP = b.shared
	cfg.Progress = 5 * time.Second
	rep, err := sim.Run(ctx, cfg, b.progress)
	stopProf()
	profs := <-profDone
	res.Profile, res.GenProfile = profs.server, profs.generator
	samples := sp.stop()
	res.GenCPU = selfCPU() - genBefore
	if err != nil {
		res.Err = err.Error()
	}
	if rep != nil {
		rep.Calls = nil // the per-call figures would make the JSON huge
		res.Report = rep
	}
	res.Use = summarize(samples, 0.95)
	if res.Use.MaxActive > 0 && res.Use.PeakRSS > base.RSS {
		res.RSSPerCall = float64(res.Use.PeakRSS-base.RSS) / res.Use.MaxActive
	}
	if res.Profile != "" {
		res.TopFrames = topFrames(b.binary, res.Profile, 12)
	}
	if res.GenProfile != "" {
		res.GenTopFrames = topFrames("", res.GenProfile, 12)
	}
	pacedAfter := b.srv.pacing()
	if relayAfter, err := b.srv.relayHists(); err == nil {
		res.ServerRelay = relayDuring(relayBefore, relayAfter)
	}
	res.Paced, res.PacedLate, res.PacedSkipped = pacedAfter[0]-pacedBefore[0], pacedAfter[1]-pacedBefore[1], pacedAfter[2]-pacedBefore[2]
	res.LogWarn, res.LogError, res.LogSample = scanLog(b.srv.logPath(), logFrom, 5)
	if err := b.srv.alive(); err != nil {
		res.Err = err.Error()
	}
	return res
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// scanLog counts the WARN and ERROR lines of ivrd's log after offset and
// returns the first n distinct messages among them.
func scanLog(path string, offset int64, n int) (warn, errs int, sample []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, 0, nil
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "level=WARN"):
			warn++
		case strings.Contains(line, "level=ERROR"):
			errs++
		default:
			continue
		}
		msg := line
		if i := strings.Index(line, "msg="); i >= 0 {
			msg = line[i:]
			if j := strings.Index(msg[4:], "\" "); j >= 0 && strings.HasPrefix(msg, "msg=\"") {
				msg = msg[:4+j+1]
			}
		}
		if !seen[msg] && len(sample) < n {
			seen[msg] = true
			sample = append(sample, msg)
		}
	}
	return warn, errs, sample
}

// plateauProfiles are the paths of the CPU profiles taken at a step's
// plateau ("" where none was taken).
type plateauProfiles struct{ server, generator string }

// profileAtPlateau waits until nearly expect calls are in progress, then
// takes a CPU profile of the server and, over the same seconds, of the
// load generator (this process).
func (b *bench) profileAtPlateau(ctx context.Context, kind string, n, expect int) plateauProfiles {
	var paths plateauProfiles
	if b.profile <= 0 || expect <= 0 {
		return paths
	}
	for {
		m, err := b.srv.metrics()
		if err == nil && m["ivrd_calls_active"] >= 0.95*float64(expect) {
			break
		}
		select {
		case <-ctx.Done():
			return paths
		case <-time.After(500 * time.Millisecond):
		}
	}
	name := fmt.Sprintf("%s-%d", kind, n)
	if b.pass > 1 {
		name = fmt.Sprintf("%s-%d-pass%d", kind, n, b.pass)
	}
	gen := filepath.Join(b.srv.dir, "cpu-loadgen-"+name+".pprof")
	stopGen, err := profileSelf(gen)
	if err != nil {
		b.log.Warn("load generator profile", "step", kind, "n", n, "error", err)
	}
	path := filepath.Join(b.srv.dir, "cpu-"+name+".pprof")
	if err := b.srv.profile(ctx, b.profile, path); err != nil {
		b.log.Warn("profile", "step", kind, "n", n, "error", err)
	} else {
		paths.server = path
	}
	if stopGen != nil && stopGen() == nil {
		paths.generator = gen
	}
	return paths
}

// profileSelf starts a CPU profile of this process into path; the
// function it returns stops it and closes the file.
func profileSelf(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// topFrames is `go tool pprof -top`'s heaviest functions by flat time.
func topFrames(binary, profile string, n int) []string {
	args := []string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", n)}
	if binary != "" {
		args = append(args, binary)
	}
	out, err := exec.Command("go", append(args, profile)...).Output()
	if err != nil {
		return []string{"pprof: " + err.Error()}
	}
	var frames []string
	started := false
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "flat") {
			started = true
			continue
		}
		if started && strings.TrimSpace(line) != "" {
			frames = append(frames, strings.TrimSpace(line))
		}
	}
	return frames
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// prefixWriter indents callsim's progress lines.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	_, err := fmt.Fprintf(p.w, "%s%s", p.prefix, b)
	return len(b), err
}
