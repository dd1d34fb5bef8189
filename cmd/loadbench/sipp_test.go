package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSIPpAgainstIvrd places 40 calls at 20/s with SIPp against a real
// ivrd: all must succeed, each with its own caller number, with setup
// times read from SIPp's trace.
func TestSIPpAgainstIvrd(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Skip("sipp not installed (Debian package sip-tester)")
	}
	d := startTestIvrd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := sippConfig{Target: d.sipAddr, Service: "support", LocalIP: "127.0.0.1",
		Rate: 20, Calls: 40, Hold: 100 * time.Millisecond, Dir: t.TempDir()}
	res, err := runSIPp(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Calls != 40 || res.Successful != 40 || res.Failed != 0 || res.FailedPct != 0 {
		t.Fatalf("calls %d, successful %d, failed %d (%.2f%%), want 40, 40, 0: %s", res.Calls, res.Successful, res.Failed, res.FailedPct, res.Errors)
	}
	if res.SetupP50 <= 0 || res.SetupP50 >= time.Second || res.SetupP99 < res.SetupP50 || res.SetupMax < res.SetupP99 {
		t.Fatalf("setup p50 %v, p99 %v, max %v: want 0 < p50 <= p99 <= max, p50 under 1s", res.SetupP50, res.SetupP99, res.SetupMax)
	}
	if res.Achieved < 15 || res.Achieved > 25 {
		t.Fatalf("achieved %.1f calls/s, want about 20", res.Achieved)
	}
	if err := sippPass(cfg, res); err != nil {
		t.Fatalf("the run does not pass the ceiling's bar: %v", err)
	}
	// ivrd answered each call, each from a different caller number (its
	// calls_per_number limit of 10/m would turn away the 11th call from
	// the same number with 486).
	callers := map[string]bool{}
	for _, m := range regexp.MustCompile(`msg="call answered" .*? caller=(\S+)`).FindAllStringSubmatch(d.log.String(), -1) {
		callers[m[1]] = true
	}
	if len(callers) != 40 {
		t.Fatalf("ivrd answered calls from %d different callers, want 40", len(callers))
	}
}

// TestSIPpCeilingStopsAtFirstFailure: ivrd's per-source limit of 50/s
// lets 30 calls/s through and answers many of 300/s with 503, so the
// ceiling passes the first rate, fails the second, and never tries the
// third.
func TestSIPpCeilingStopsAtFirstFailure(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Skip("sipp not installed (Debian package sip-tester)")
	}
	d := startTestIvrd(t, "invites_per_source: 50/s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs []string
	logf := func(format string, a ...any) { logs = append(logs, fmt.Sprintf(format, a...)); t.Logf(format, a...) }
	runs, best, err := sippCeiling(ctx, sippConfig{Target: d.sipAddr, Calls: 120, Dir: t.TempDir()}, []float64{30, 300, 600}, logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || len(logs) != 2 {
		t.Fatalf("%d runs, %d log lines, want 2: %+v", len(runs), len(logs), runs)
	}
	if best.Rate != 30 || best.Successful != 120 {
		t.Fatalf("best %+v, want 30 calls/s with 120 successful calls", best)
	}
	if r := runs[1]; r.Rate != 300 || r.Failed == 0 || !strings.Contains(r.Errors, "503×") {
		t.Fatalf("the 300/s run %+v: want failed calls, 503s among them", r)
	}
	if !strings.Contains(logs[1], "FAIL") {
		t.Fatalf("log %q does not say the rate failed", logs[1])
	}
}

// TestReadSIPpResult reads the files of a real runSIPp run (testdata/sipp_*:
// 60 calls at 60/s against an ivrd allowing 20 INVITEs a second from an
// address, which answered 21 of them with 503). The wanted setup times and
// rate were worked out from sipp_messages.log with awk.
func TestReadSIPpResult(t *testing.T) {
	dir := t.TempDir()
	for from, to := range map[string]string{
		"testdata/sipp_stat.csv":        sippStatFile,
		"testdata/sipp_messages.log":    sippShortFile,
		"testdata/sipp_error_codes.csv": "uac_4242_error_codes.csv",
	} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := readSIPpResult(dir, 4242)
	if err != nil {
		t.Fatal(err)
	}
	want := sippResult{Calls: 60, Successful: 39, Failed: 21, FailedPct: 35,
		SetupP50: 870 * time.Microsecond, SetupP99: 2733 * time.Microsecond, SetupMax: 2733 * time.Microsecond,
		Achieved: 59 / 0.984991, Errors: "FailedUnexpectedMessage=21 503×21"}
	if res.Calls != want.Calls || res.Successful != want.Successful || res.Failed != want.Failed {
		t.Fatalf("calls %d, successful %d, failed %d; want %d, %d, %d", res.Calls, res.Successful, res.Failed, want.Calls, want.Successful, want.Failed)
	}
	if d := res.FailedPct - want.FailedPct; d > 0.01 || d < -0.01 {
		t.Fatalf("failed %.3f%%, want %.3f%%", res.FailedPct, want.FailedPct)
	}
	if res.SetupP50 != want.SetupP50 || res.SetupP99 != want.SetupP99 || res.SetupMax != want.SetupMax {
		t.Fatalf("setup p50 %v p99 %v max %v; want %v %v %v", res.SetupP50, res.SetupP99, res.SetupMax, want.SetupP50, want.SetupP99, want.SetupMax)
	}
	if d := res.Achieved - want.Achieved; d > 0.01 || d < -0.01 {
		t.Fatalf("achieved %.3f calls/s, want %.3f", res.Achieved, want.Achieved)
	}
	if res.Errors != want.Errors {
		t.Fatalf("errors %q, want %q", res.Errors, want.Errors)
	}
}

func TestSIPpPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 100 * time.Millisecond, 99: 198 * time.Millisecond, 100: 200 * time.Millisecond} {
		if got := sippPercentile(ds, p); got != want {
			t.Errorf("p%g = %v, want %v", p, got, want)
		}
	}
	if got := sippPercentile(ds[:1], 99); got != time.Millisecond {
		t.Errorf("p99 of one = %v", got)
	}
}

// testIvrd is an ivrd process started by startTestIvrd.
type testIvrd struct {
	sipAddr string
	log     *testIvrdLog
}

type testIvrdLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *testIvrdLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *testIvrdLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startTestIvrd builds ivrd (the build cache makes all but the first
// build a link) and runs it with the demo's flow and prompts, the
// embedded store, free ports and the given limits (lines of the limits
// section; by default 1000 INVITEs/s from an address and 10 calls a
// minute per caller number, refused with 486). It waits until ivrd
// answers OPTIONS and stops it when the test ends.
func startTestIvrd(t *testing.T, limits ...string) *testIvrd {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ivrd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ivrd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build ivrd: %v\n%s", err, out)
	}

	port := testIvrdPort(t)
	d := &testIvrd{sipAddr: fmt.Sprintf("127.0.0.1:%d", port), log: &testIvrdLog{}}
	lim := map[string]string{"invites_per_source": "1000/s", "calls_per_number": "10/m", "number_action": "busy"}
	for _, l := range limits {
		k, v, _ := strings.Cut(l, ":")
		lim[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	configs := filepath.Join(root, "configs")
	config := fmt.Sprintf(`sip:
  listen: %s
media:
  rtp_ports: 48000-48499
ivr:
  flow: %s
  prompts: %s
  directory: %s
http:
  listen: 127.0.0.1:0
redis:
  url: ""
queue:
  skills:
    billing: {}
    support: {}
    general: {routing: idle}
limits:
  invites_per_source: %s
  calls_per_number: %s
  number_action: %s
recordings:
  dir: %s
shutdown:
  grace: 1s
`, d.sipAddr, filepath.Join(configs, "flows", "main.yaml"), filepath.Join(configs, "prompts"),
		filepath.Join(configs, "directory.csv"), lim["invites_per_source"], lim["calls_per_number"], lim["number_action"],
		filepath.Join(dir, "recordings"))
	path := filepath.Join(dir, "ivrd.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-config", path)
	// The environment's IVRD_* overrides would beat the file.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IVRD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("ivrd log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if testIvrdOptions(d.sipAddr) {
			return d
		}
		select {
		case err := <-done:
			t.Fatalf("ivrd exited at start: %v\n%s", err, d.log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("ivrd did not answer OPTIONS on %s\n%s", d.sipAddr, d.log.String())
	return nil
}

// testIvrdPort finds a port free for both UDP and TCP on 127.0.0.1.
func testIvrdPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// testIvrdOptions sends one OPTIONS over UDP and reports whether 200 came back.
func testIvrdOptions(addr string) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	now := time.Now().UnixNano()
	msg := fmt.Sprintf("OPTIONS sip:ivrd@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:ivrd@%s>\r\nCall-ID: probe-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		addr, c.LocalAddr(), now, addr, now)
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	return err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200"))
}

func TestSIPpPassRule(t *testing.T) {
	cfg := sippConfig{Rate: 1000, Calls: 8000}
	ok := sippResult{Calls: 8000, Successful: 8000, Achieved: 990, SetupP99: 90 * time.Millisecond}
	if err := sippPass(cfg, ok); err != nil {
		t.Errorf("a clean run failed: %v", err)
	}
	slow := ok
	slow.SetupP99 = 700 * time.Millisecond // INVITEs resent after T1
	if err := sippPass(cfg, slow); err == nil {
		t.Error("a run with setup p99 past T1 passed")
	}
	lossy := ok
	lossy.Failed, lossy.FailedPct = 9, 0.1125
	if err := sippPass(cfg, lossy); err == nil {
		t.Error("a run with 0.11% failed passed")
	}
}
