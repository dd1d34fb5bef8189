// Package e2e runs the real ivrd binary with the demo configuration against
// real clients: the Go test caller and SIPp.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ivrd/media"
	"ivrd/sip/testcaller"
)

var ivrdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ivrd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ivrdBin = filepath.Join(dir, "ivrd")
	build := exec.Command("go", "build", "-race", "-o", ivrdBin, "../cmd/ivrd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build ivrd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ivrd is one running server process.
type ivrd struct {
	t       *testing.T
	cmd     *exec.Cmd
	sipAddr string
	// httpAddr is the address ivrd's "ivrd ready" line names (http=…).
	httpAddr string
	log      *syncBuffer
	done     chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeSIPPort finds a port free for both UDP and TCP on 127.0.0.1.
func freeSIPPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
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

var rtpRange struct {
	mu   sync.Mutex
	next int
}

// nextRTPRange gives each server its own 200 ports below the ephemeral range.
func nextRTPRange() string {
	rtpRange.mu.Lock()
	defer rtpRange.mu.Unlock()
	if rtpRange.next == 0 || rtpRange.next+200 > 30000 { // below webrtc.ports (31000-31999)
		rtpRange.next = 20000
	}
	lo := rtpRange.next
	rtpRange.next += 200
	return fmt.Sprintf("%d-%d", lo, lo+199)
}

// startIvrd runs bin/ivrd with a config file and environment overrides and
// waits until it answers OPTIONS.
func startIvrd(t *testing.T, config string, env ...string) *ivrd {
	t.Helper()
	port := freeSIPPort(t)
	d := &ivrd{t: t, sipAddr: fmt.Sprintf("127.0.0.1:%d", port), log: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(ivrdBin, "-config", config)
	d.cmd.Env = append(os.Environ(),
		"IVRD_SIP_LISTEN="+d.sipAddr,
		"IVRD_HTTP_LISTEN=127.0.0.1:0",
		"IVRD_RTP_PORTS="+nextRTPRange(),
		"IVRD_RECORDINGS_DIR="+t.TempDir(),
		"IVRD_REDIS_URL=",
	)
	d.cmd.Env = append(d.cmd.Env, env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(15 * time.Second):
				_ = d.cmd.Process.Kill()
				<-d.done
			}
		}
		if t.Failed() {
			t.Logf("ivrd log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if optionsOK(d.sipAddr) {
			d.httpAddr = logField(d.waitLog(10*time.Second, "ivrd ready"), "http")
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("ivrd exited at start: %v\n%s", err, d.log.String())
		default:
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ivrd did not answer OPTIONS on %s\n%s", d.sipAddr, d.log.String())
	return nil
}

func optionsOK(addr string) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	msg := fmt.Sprintf("OPTIONS sip:ivrd@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:ivrd@%s>\r\nCall-ID: probe-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		addr, c.LocalAddr(), time.Now().UnixNano(), addr, time.Now().UnixNano())
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	return err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200"))
}

// waitLog waits for a line of ivrd's log containing all of parts.
func (d *ivrd) waitLog(timeout time.Duration, parts ...string) string {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(d.log.String()))
		for sc.Scan() {
			line := sc.Text()
			ok := true
			for _, p := range parts {
				if !strings.Contains(line, p) {
					ok = false
					break
				}
			}
			if ok {
				return line
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("no log line with %q within %v", parts, timeout)
	return ""
}

// logField returns the value of key=value in a text log line.
func logField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

const demoConfig = "../configs/ivrd.yaml"

var (
	demoPromptsOnce sync.Once
	demoPrompts     *media.Library
	demoPromptsErr  error
)

func recognizer(t *testing.T, law media.Law) *testcaller.Recognizer {
	t.Helper()
	demoPromptsOnce.Do(func() { demoPrompts, demoPromptsErr = media.LoadLibrary("../configs/prompts") })
	if demoPromptsErr != nil {
		t.Fatal(demoPromptsErr)
	}
	var ps []*media.Prompt
	for _, n := range demoPrompts.Names() {
		p, _ := demoPrompts.Get(n)
		ps = append(ps, p)
	}
	return testcaller.NewRecognizer(law, ps...)
}

func dialDemo(t *testing.T, ctx context.Context, d *ivrd, o testcaller.DialOptions) *testcaller.Call {
	t.Helper()
	phone, err := testcaller.NewPhone(testcaller.PhoneConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = phone.Close() })
	o.Target = "sip:support@" + d.sipAddr
	o.KeepFrames = true
	call, err := phone.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	// Hang up properly: a call ivrd still holds when the test ends would
	// hold up its shutdown for the whole grace period.
	t.Cleanup(func() { hangup(call) })
	return call
}

// hangup sends BYE unless the call is over already, and releases it.
func hangup(call *testcaller.Call) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = call.Hangup(ctx)
}

// waitPrompt waits until the caller has heard prompt (anywhere after mark).
func waitPrompt(t *testing.T, ctx context.Context, call *testcaller.Call, rec *testcaller.Recognizer, mark int, prompt string) {
	t.Helper()
	for {
		for _, p := range rec.Heard(call.FramesSince(mark)) {
			if p == prompt {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never heard %q; heard %v", prompt, rec.Heard(call.Frames()))
		case <-call.Bye():
			for _, p := range rec.Heard(call.FramesSince(mark)) {
				if p == prompt {
					return
				}
			}
			t.Fatalf("hung up before %q; heard %v", prompt, rec.Heard(call.Frames()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func assertHeard(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("heard %v\nwant  %v", got, want)
	}
}

// TestDemoVIPPressesNine: an identified VIP hears the welcome, the recording
// notice, "welcome back" and the menu; 9 plays goodbye and the server hangs up.
func TestDemoVIPPressesNine(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+14155550100"})
	rec := recognizer(t, call.Law())
	waitPrompt(t, ctx, call, rec, 0, "main_menu")
	if err := call.SendDigit('9', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := call.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	assertHeard(t, rec.Heard(call.Frames()), "welcome", "recording_notice", "welcome_back", "main_menu", "goodbye")
	d.waitLog(5*time.Second, "call ended", call.ID, "outcome=completed")
}

// TestDemoThreeInvalidEntries: three invalid keys → goodbye and BYE. The
// keys arrive in-band (no telephone-event offered).
func TestDemoThreeInvalidEntries(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+15005550199", NoDTMFEvent: true})
	rec := recognizer(t, call.Law())
	mark := 0
	for i := 0; i < 3; i++ {
		waitPrompt(t, ctx, call, rec, mark, "main_menu")
		if err := call.SendTone('5', 120*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		mark = call.Mark()
		if i < 2 {
			waitPrompt(t, ctx, call, rec, mark, "invalid")
			mark = call.Mark()
		}
	}
	if err := call.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	assertHeard(t, rec.Heard(call.Frames()), "welcome", "recording_notice", "main_menu", "invalid", "main_menu", "invalid", "main_menu", "goodbye")
}

// TestDemoThreeTimeoutsGoToGeneralQueue: no key at all → the menu three
// times, then the general queue: a short burst of hold music, the caller's
// position and the queue's options. The demo's timings make this the
// longest test (about 50 s): three 9.7 s menus, each with a 5 s timeout.
func TestDemoThreeTimeoutsGoToGeneralQueue(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+15005550199"})
	rec := recognizer(t, call.Law())
	waitPrompt(t, ctx, call, rec, 0, "queue_options")
	d.waitLog(5*time.Second, "caller queued", call.ID, "skill=general", "position=1")
	hangup(call)
	assertHeard(t, rec.Heard(call.Frames()), "welcome", "recording_notice", "main_menu", "main_menu", "main_menu",
		"hold_music", "you_are_caller", "num_1", "queue_options")
	d.waitLog(5*time.Second, "caller abandoned the queue", call.ID)
}

// TestSIGTERMEndsCallsGracefully: on SIGTERM a call in progress is left to
// finish for the grace period, then ended with BYE; ivrd exits 0.
func TestSIGTERMEndsCallsGracefully(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "shutdown:\n  grace: 2s\n")
	d := startIvrd(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+15005550199"})
	if err := call.WaitSound(ctx, 0, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := call.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	if waited := call.ByeAt().Sub(sent); waited < 1500*time.Millisecond {
		t.Fatalf("call ended %v after SIGTERM, before the 2s grace", waited)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("ivrd exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ivrd did not exit after SIGTERM")
	}
}

// writeConfig writes a copy of the demo config with extra YAML appended
// (later keys win in our loader only if not duplicated, so extra replaces
// whole top-level sections that the demo file must then not contain twice).
func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	src, err := os.ReadFile(demoConfig)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../configs")
	out := replaceSection(string(src), extra)
	// Paths in the demo are relative to configs/: make them absolute.
	dir := t.TempDir()
	for _, name := range []string{"flows", "prompts", "directory.csv"} {
		if err := os.Symlink(filepath.Join(abs, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "ivrd.yaml")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceSection swaps the top-level sections named in extra.
func replaceSection(doc, extra string) string {
	names := map[string]bool{}
	for _, line := range strings.Split(extra, "\n") {
		if line != "" && line[0] != ' ' && strings.HasSuffix(strings.TrimSpace(line), ":") {
			names[strings.TrimSuffix(strings.TrimSpace(line), ":")] = true
		}
	}
	var out []string
	skip := false
	for _, line := range strings.Split(doc, "\n") {
		if line != "" && line[0] != ' ' && line[0] != '#' {
			key, _, _ := strings.Cut(line, ":")
			skip = names[key]
		}
		if !skip {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n" + extra
}

// TestCheckConfig: -check-config accepts the demo and rejects a flow with a
// dangling node, naming the key and the line.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(ivrdBin, "-check-config", demoConfig).CombinedOutput()
	if err != nil {
		t.Fatalf("demo config rejected: %v\n%s", err, out)
	}
	dir := t.TempDir()
	flow := "start: menu\nnodes:\n  menu:\n    type: menu\n    prompt: main_menu\n    options:\n      \"1\": nowhere\n    on_invalid: menu\n    on_timeout: menu\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(flow), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "")
	data, _ := os.ReadFile(cfg)
	bad := strings.Replace(string(data), "flows/main.yaml", filepath.Join(dir, "bad.yaml"), 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(ivrdBin, "-check-config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("dangling node accepted:\n%s", out)
	}
	if !strings.Contains(string(out), "bad.yaml:7") || !strings.Contains(string(out), "nowhere") {
		t.Fatalf("error does not name the file, line and node:\n%s", out)
	}
}
