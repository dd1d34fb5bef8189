package main

// The SIP-only ceiling: SIPp (Debian's sip-tester) places calls that do
// nothing but set up and tear down (INVITE, 100, 180, 200, ACK, a hold,
// BYE, 200), faster step by step, until ivrd fails more than 0.1% of them
// or SIPp cannot place them at the rate asked.

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed scenarios/uac.xml
var sippScenario []byte

// sippConfig is one SIPp run.
type sippConfig struct {
	Target  string        // ivrd's SIP address, host:port
	Service string        // the number dialled (default "support")
	LocalIP string        // SIPp's address for SIP and RTP (default 127.0.0.1)
	Rate    float64       // calls started per second
	Calls   int           // calls to place; sippCeiling: 0 means sippStep's worth at each rate
	Hold    time.Duration // from ACK to BYE
	Timeout time.Duration // the whole run's limit (default: the calls' duration plus 30s)
	Dir     string        // SIPp's working directory: scenario, statistics, traces
}

// sippResult is what SIPp counted and timed in one run.
type sippResult struct {
	Rate       float64 // the rate asked for
	Calls      int     // calls SIPp started
	Successful int
	Failed     int     // started and not successful, including calls cut off by the timeout
	FailedPct  float64 // Failed/Calls in percent
	// INVITE → 200, per call, from SIPp's message trace (microseconds;
	// SIPp's own response-time statistics count whole milliseconds).
	SetupP50, SetupP99, SetupMax time.Duration
	Elapsed                      time.Duration // the SIPp process's run
	Achieved                     float64       // calls per second actually started (first to last INVITE)
	Errors                       string        // short summary of failures: SIPp's counters and unexpected responses
}

const (
	// sippRecvTimeout fails a call that waits this long for any answer, so
	// a lost call counts as failed instead of holding the run up.
	sippRecvTimeout = 5 * time.Second
	// sippStep is how long each rate runs in sippCeiling when Calls is 0.
	sippStep = 8 * time.Second
	// sippMaxFailedPct and sippMinAchieved: a rate passes with no more than
	// 0.1% failed calls, started at 95% of the rate or better.
	sippMaxFailedPct = 0.1
	sippMinAchieved  = 0.95
	// sippMaxSetupP99: beyond T1 (500 ms) SIPp resends INVITEs; a rate
	// whose p99 is there is not being carried, only survived.
	sippMaxSetupP99 = 500 * time.Millisecond
)

// The files SIPp writes in its working directory.
const (
	sippScenarioFile = "uac.xml"
	sippStatFile     = "stat.csv"
	sippShortFile    = "messages.log"
	sippErrorFile    = "errors.log"
	sippOutFile      = "sipp.out"
)

// runSIPp places cfg.Calls calls at cfg.Rate with SIPp and reads its
// statistics. SIPp runs in the foreground in its own process group, which
// is killed when ctx ends. An error means SIPp could not run or its output
// could not be read; failed calls are counted in the result.
//
// Calls ivrd turns away count as failed, the 503s of its
// limits.invites_per_source too: a bench must give ivrd a per-source limit
// above the rates it tries. Each call has its own caller number, so
// limits.calls_per_number does not come into it.
func runSIPp(ctx context.Context, cfg sippConfig) (sippResult, error) {
	bin, err := exec.LookPath("sipp")
	if err != nil {
		return sippResult{}, errors.New("sipp not installed (Debian package sip-tester)")
	}
	if cfg.Target == "" || cfg.Rate <= 0 || cfg.Calls <= 0 || cfg.Dir == "" {
		return sippResult{}, fmt.Errorf("sipp: need a target, a rate, calls and a directory: %+v", cfg)
	}
	if cfg.Service == "" {
		cfg.Service = "support"
	}
	if cfg.LocalIP == "" {
		cfg.LocalIP = "127.0.0.1"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Duration(float64(cfg.Calls)/cfg.Rate*float64(time.Second)) + cfg.Hold + 30*time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return sippResult{}, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, sippScenarioFile), sippScenario, 0o644); err != nil {
		return sippResult{}, err
	}

	// The ports are free when chosen and SIPp binds them a moment later:
	// should another process take one in between, SIPp exits with 254
	// (it could not bind) and is run again on other ports.
	var pid int
	var elapsed time.Duration
	for attempt := 1; ; attempt++ {
		pid, elapsed, err = sippExec(ctx, bin, cfg)
		var exit *exec.ExitError
		if attempt < 3 && errors.As(err, &exit) && exit.ExitCode() == 254 {
			continue
		}
		if err != nil {
			return sippResult{}, err
		}
		break
	}

	res, err := readSIPpResult(cfg.Dir, pid)
	if err != nil {
		return sippResult{}, fmt.Errorf("sipp output: %w%s", err, sippTail(filepath.Join(cfg.Dir, sippOutFile), 15))
	}
	res.Rate = cfg.Rate
	res.Elapsed = elapsed
	return res, nil
}

// sippExec runs SIPp once and returns its process id (which names one of
// its files) and how long it ran.
func sippExec(ctx context.Context, bin string, cfg sippConfig) (int, time.Duration, error) {
	for _, f := range []string{sippStatFile, sippShortFile, sippErrorFile, sippOutFile} {
		_ = os.Remove(filepath.Join(cfg.Dir, f))
	}
	sipPort, err := sippFreePort(cfg.LocalIP, 1)
	if err != nil {
		return 0, 0, err
	}
	// SIPp binds the media port and the one two above it (video).
	mediaPort, err := sippFreePort(cfg.LocalIP, 2)
	if err != nil {
		return 0, 0, err
	}
	limit := int(math.Ceil(cfg.Rate*(cfg.Hold.Seconds()+2))) + 10
	args := []string{
		"-sf", sippScenarioFile,
		"-s", cfg.Service,
		// [caller][call_number] is the From user: fixed width, so no two
		// calls of any run share a number.
		"-key", "caller", fmt.Sprintf("+1555%06d", rand.IntN(1_000_000)),
		"-m", strconv.Itoa(cfg.Calls),
		"-r", strconv.FormatFloat(cfg.Rate, 'f', -1, 64),
		// No more calls in progress than those that take two seconds more
		// than the hold: beyond it SIPp slows down, and the rate fails.
		"-l", strconv.Itoa(limit),
		"-d", strconv.FormatInt(cfg.Hold.Milliseconds(), 10),
		"-i", cfg.LocalIP,
		"-p", strconv.Itoa(sipPort),
		"-mi", cfg.LocalIP,
		"-mp", strconv.Itoa(mediaPort),
		"-recv_timeout", strconv.FormatInt(sippRecvTimeout.Milliseconds(), 10),
		"-timeout", fmt.Sprintf("%ds", int(math.Ceil(cfg.Timeout.Seconds()))),
		"-nostdin",
		"-trace_stat", "-stf", sippStatFile, "-fd", "1",
		// One line per message with microsecond times: setup times and
		// the rate achieved come from it.
		"-trace_shortmsg", "-shortmessage_file", sippShortFile,
		"-trace_err", "-error_file", sippErrorFile,
		"-trace_error_codes",
		cfg.Target,
	}
	// SIPp stops itself at cfg.Timeout; the context is the backstop.
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = cfg.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := os.Create(filepath.Join(cfg.Dir, sippOutFile))
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	err = cmd.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return 0, 0, fmt.Errorf("sipp killed: %w", context.Cause(ctx))
	}
	// 0: every call succeeded; 1: some failed. Anything else is SIPp's
	// own failure (254: it could not bind a socket).
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		err = nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("sipp: %w%s", err, sippTail(out.Name(), 15))
	}
	return cmd.Process.Pid, elapsed, nil
}

// readSIPpResult reads the files of the SIPp run with process id pid in
// dir: the last line of the statistics for the counts, the message trace
// for setup times and the rate, the error codes for the summary.
func readSIPpResult(dir string, pid int) (sippResult, error) {
	var res sippResult
	stat, err := os.ReadFile(filepath.Join(dir, sippStatFile))
	if err != nil {
		return res, err
	}
	st, err := parseSIPpStat(string(stat))
	if err != nil {
		return res, err
	}
	if res.Calls, err = st.int("TotalCallCreated"); err != nil {
		return res, err
	}
	if res.Successful, err = st.int("SuccessfulCall(C)"); err != nil {
		return res, err
	}
	// Calls still in progress when SIPp stopped count as failed.
	res.Failed = res.Calls - res.Successful
	if res.Calls > 0 {
		res.FailedPct = 100 * float64(res.Failed) / float64(res.Calls)
	}

	f, err := os.Open(filepath.Join(dir, sippShortFile))
	if err != nil {
		return res, err
	}
	defer f.Close()
	setups, achieved, err := sippSetupTimes(f)
	if err != nil {
		return res, err
	}
	res.Achieved = achieved
	if len(setups) > 0 {
		slices.Sort(setups)
		res.SetupP50 = sippPercentile(setups, 50)
		res.SetupP99 = sippPercentile(setups, 99)
		res.SetupMax = setups[len(setups)-1]
	}

	// SIPp names this file itself, after the scenario and its pid.
	codes, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("uac_%d_error_codes.csv", pid)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	res.Errors = st.failures(sippErrorCodes(string(codes)))
	return res, nil
}

// sippStat is the last line of SIPp's -trace_stat file by column name.
type sippStat map[string]string

// parseSIPpStat reads the -trace_stat CSV: a header line, then a line per
// -fd period; the last one holds the final, cumulative ((C)) counts.
func parseSIPpStat(csv string) (sippStat, error) {
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) < 2 {
		return nil, errors.New("sipp statistics: no data line")
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	if len(last) != len(head) {
		return nil, fmt.Errorf("sipp statistics: %d columns in the header, %d in the last line", len(head), len(last))
	}
	st := sippStat{}
	for i, h := range head {
		st[h] = strings.TrimSpace(last[i])
	}
	return st, nil
}

func (st sippStat) int(name string) (int, error) {
	v, ok := st[name]
	if !ok {
		return 0, fmt.Errorf("sipp statistics: no column %s", name)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("sipp statistics: %s: %w", name, err)
	}
	return n, nil
}

// failures summarizes the run's troubles: the non-zero cumulative
// Failed… counters, retransmissions, and the unexpected responses by code,
// e.g. "FailedUnexpectedMessage=41 503×41".
func (st sippStat) failures(codes map[string]int) string {
	var parts []string
	var names []string
	for name := range st {
		if strings.HasPrefix(name, "Failed") && strings.HasSuffix(name, "(C)") && name != "FailedCall(C)" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range append(names, "Retransmissions(C)", "OutOfCallMsgs(C)", "DeadCallMsgs(C)", "FatalErrors(C)") {
		if n, err := st.int(name); err == nil && n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimSuffix(name, "(C)"), n))
		}
	}
	var keys []string
	for code := range codes {
		keys = append(keys, code)
	}
	slices.Sort(keys)
	for _, code := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", code, codes[code]))
	}
	return strings.Join(parts, " ")
}

// sippErrorCodes counts the codes in SIPp's -trace_error_codes file: per
// period, the time, the elapsed time, then the codes of the unexpected
// responses, each followed by a comma.
func sippErrorCodes(text string) map[string]int {
	codes := map[string]int{}
	for line := range strings.Lines(text) {
		fields := strings.Split(strings.TrimSpace(line), ";")
		for code := range strings.SplitSeq(fields[len(fields)-1], ",") {
			if code = strings.TrimSpace(code); code != "" && len(fields) >= 3 {
				codes[code]++
			}
		}
	}
	return codes
}

// sippSetupTimes reads SIPp's -trace_shortmsg file, a tab-separated line
// per message sent (S) or received (R): date, time, Unix time with
// microseconds, S or R, Call-ID, CSeq, first line. A call's setup runs
// from its first INVITE to the first 200 to it; calls without a 200 have
// none. The achieved rate is the calls between the first and the last
// first INVITE over that time.
func sippSetupTimes(r io.Reader) (setups []time.Duration, achieved float64, err error) {
	invites := map[string]time.Time{}
	answered := map[string]bool{}
	var first, last time.Time
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 7 || !strings.HasSuffix(fields[5], " INVITE") {
			continue
		}
		at, err := sippTime(fields[2])
		if err != nil {
			return nil, 0, fmt.Errorf("sipp messages: %w", err)
		}
		callID := fields[4]
		switch {
		case fields[3] == "S" && strings.HasPrefix(fields[6], "INVITE "):
			if _, ok := invites[callID]; ok {
				continue // a retransmission
			}
			invites[callID] = at
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		case fields[3] == "R" && strings.HasPrefix(fields[6], "SIP/2.0 200"):
			sent, ok := invites[callID]
			if !ok || answered[callID] {
				continue
			}
			answered[callID] = true
			setups = append(setups, at.Sub(sent))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if n := len(invites); n > 1 && last.After(first) {
		achieved = float64(n-1) / last.Sub(first).Seconds()
	}
	return setups, achieved, nil
}

// sippTime reads SIPp's "1795421357.015987" (seconds.microseconds).
func sippTime(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var micros int64
	if frac != "" {
		frac = (frac + "000000")[:6]
		if micros, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(secs, micros*1000), nil
}

// sippPercentile is the nearest-rank percentile p of sorted durations.
func sippPercentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// sippFreePort finds a port on ip free for UDP, and with span 2 the port
// two above it too (SIPp's media port and its video port).
func sippFreePort(ip string, span int) (int, error) {
	for range 50 {
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		if span == 1 {
			c.Close()
			return port, nil
		}
		port &^= 1
		c.Close()
		free := true
		for p := port; p < port+2*span; p += 2 {
			u, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			u.Close()
		}
		if free {
			return port, nil
		}
	}
	return 0, errors.New("sipp: no free UDP port")
}

// sippTail is the last n lines of a file, for error messages.
func sippTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n" + strings.Join(lines, "\n")
}

// sippPass says why a run fails the ceiling's bar, or nil when it passes:
// every call started, no more than 0.1% failed, started at 95% of the rate.
func sippPass(cfg sippConfig, res sippResult) error {
	switch {
	case res.Calls < cfg.Calls:
		return fmt.Errorf("%d of %d calls started", res.Calls, cfg.Calls)
	case res.FailedPct > sippMaxFailedPct:
		return fmt.Errorf("%.2f%% failed (%d of %d): %s", res.FailedPct, res.Failed, res.Calls, res.Errors)
	case res.Achieved < sippMinAchieved*cfg.Rate:
		return fmt.Errorf("%.0f calls/s started of %.0f asked", res.Achieved, cfg.Rate)
	case res.SetupP99 >= sippMaxSetupP99:
		return fmt.Errorf("setup p99 %v: INVITEs are being resent", res.SetupP99)
	}
	return nil
}

// sippCeiling runs SIPp at each rate in turn (base.Calls calls each, or
// sippStep's worth when 0; each rate in its own directory under base.Dir)
// and stops after the first rate that fails sippPass. It returns every
// run and the highest passing one (a zero result when none passed). An
// error means SIPp itself could not run.
func sippCeiling(ctx context.Context, base sippConfig, rates []float64, logf func(format string, a ...any)) ([]sippResult, sippResult, error) {
	var runs []sippResult
	var best sippResult
	for i, rate := range rates {
		if i > 0 {
			// Let the previous step's calls and timers end in ivrd.
			select {
			case <-ctx.Done():
				return runs, best, ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
		cfg := base
		cfg.Rate = rate
		if cfg.Calls <= 0 {
			cfg.Calls = max(1, int(rate*sippStep.Seconds()))
		}
		cfg.Dir = filepath.Join(base.Dir, fmt.Sprintf("sipp-%g", rate))
		res, err := runSIPp(ctx, cfg)
		if err != nil {
			return runs, best, fmt.Errorf("sipp at %g calls/s: %w", rate, err)
		}
		runs = append(runs, res)
		fail := sippPass(cfg, res)
		verdict := "pass"
		if fail != nil {
			verdict = "FAIL: " + fail.Error()
		}
		logf("sipp %5g calls/s: %d calls, %d failed (%.2f%%), %.0f/s started, setup p50 %v p99 %v max %v: %s",
			rate, res.Calls, res.Failed, res.FailedPct, res.Achieved,
			res.SetupP50.Round(10*time.Microsecond), res.SetupP99.Round(10*time.Microsecond), res.SetupMax.Round(10*time.Microsecond), verdict)
		if fail != nil {
			break
		}
		best = res
	}
	return runs, best, nil
}
