package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ivrd/media"
	"ivrd/sip/testcaller"
)

// The browser test runs headless Chromium against the real ivrd: the
// softphone page at /agent, its WebSocket and its WebRTC audio, with the Go
// test caller on the SIP side.
//
// Chromium must see only the loopback interface, or ICE may pick the
// machine's external address for one side of the call: the test re-runs
// itself in a private network namespace (`unshare -n`, or `unshare -rn`
// when not root) where only lo exists.

// loopbackNetnsEnv marks the re-run inside the private network namespace.
const loopbackNetnsEnv = "IVRD_E2E_LOOPBACK_NETNS"

// chromiumPath finds Chromium, or fails the test saying how to get it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("IVRD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the browser test needs Chromium: apt-get install chromium chromium-driver " +
		"(.ci/run does), or set IVRD_CHROMIUM to a Chrome or Chromium binary")
	return ""
}

// onlyLoopback reports whether every interface with an address is loopback.
func onlyLoopback() bool {
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		if len(addrs) > 0 && ifc.Flags&net.FlagLoopback == 0 {
			return false
		}
	}
	return true
}

// inLoopbackNamespace runs the test named name again inside a private
// network namespace and reports false; inside it, it reports true and the
// caller runs the test's body.
func inLoopbackNamespace(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv(loopbackNetnsEnv) == "1" {
		if !onlyLoopback() {
			t.Fatal("the browser test's namespace has interfaces other than loopback")
		}
		return true
	}
	chromiumPath(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("the browser test needs unshare (util-linux) to run Chromium on loopback only")
	}
	flags := []string{"-n"}
	if os.Geteuid() != 0 {
		flags = []string{"-r", "-n"} // an unprivileged user namespace maps us to root
	}
	args := append(flags, "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		os.Args[0], "-test.run", "^"+name+"$", "-test.count=1", "-test.timeout=3m", "-test.v")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, args...)
	// Inside, nothing but loopback: the module proxy and toolchain
	// downloads are unreachable (TestMain's build uses the caches).
	cmd.Env = append(os.Environ(), loopbackNetnsEnv+"=1", "GOPROXY=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a loopback-only network namespace: %v\n%s", name, err, out)
	}
	if testing.Verbose() {
		t.Logf("%s in a loopback-only network namespace:\n%s", name, out)
	}
	return false
}

// toneWAV writes a 16-bit PCM WAV of a sine wave (Chromium's fake
// microphone plays it in a loop; µ-law or 24-bit files give silence).
func toneWAV(t *testing.T, freq float64, d time.Duration) string {
	t.Helper()
	n := int(d.Seconds() * media.SampleRate)
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(0.3 * 32767 * math.Sin(2*math.Pi*freq*float64(i)/media.SampleRate))
	}
	p := filepath.Join(t.TempDir(), fmt.Sprintf("tone-%g.wav", freq))
	if err := os.WriteFile(p, media.EncodeWAV(pcm), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// browser is one headless Chromium tab and what its console said.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	logs []string
}

// startBrowser starts Chromium with a fake microphone that plays micWAV
// (empty: the user refuses the microphone) and opens one tab.
func startBrowser(t *testing.T, micWAV string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1280, 900),
	)
	if micWAV != "" {
		opts = append(opts,
			chromedp.Flag("use-fake-ui-for-media-stream", true), // "allow" without asking
			chromedp.Flag("use-file-for-fake-audio-capture", micWAV))
	} else {
		opts = append(opts, chromedp.Flag("deny-permission-prompts", true))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		acancel()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("browser console:\n%s", strings.Join(b.logs, "\n"))
			b.mu.Unlock()
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.logs = append(b.logs, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs actions, failing the test with what was being done.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.snapshot())
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// snapshot is the page's own view (window.ivrdAgent) for failure messages.
func (b *browser) snapshot() string {
	s, err := eval[string](b, `JSON.stringify(window.ivrdAgent ? {
		state: ivrdAgent.state, callId: ivrdAgent.callId, callPhase: ivrdAgent.callPhase,
		connected: ivrdAgent.connected, lastError: ivrdAgent.lastError, micError: ivrdAgent.micError,
		audio: ivrdAgent.audioConnection, level: ivrdAgent.audioLevel(), freq: ivrdAgent.dominantFrequency(),
		end: ivrdAgent.lastEndReason} : "no ivrdAgent") + " " + document.body.innerText.replace(/\s+/g, " ").slice(0, 600)`)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// waitFor polls a JavaScript condition until it is true.
func (b *browser) waitFor(what, cond string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := eval[bool](b, "!!("+cond+")")
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: not within %v (%s; last error %v)\npage: %s", what, timeout, cond, err, b.snapshot())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// text returns an element's visible text.
func (b *browser) text(id string) string {
	b.t.Helper()
	s, err := eval[string](b, fmt.Sprintf(`document.getElementById(%q).innerText`, id))
	if err != nil {
		b.t.Fatalf("read #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

// visible reports whether an element and its ancestors are shown.
func (b *browser) visible(id string) bool {
	b.t.Helper()
	ok, err := eval[bool](b, fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && e.checkVisibility(); })()`, id))
	if err != nil {
		b.t.Fatalf("read #%s: %v", id, err)
	}
	return ok
}

// key presses a key on the page (not in a field).
func (b *browser) key(k string) {
	b.t.Helper()
	b.do("blur the focused element", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	b.do("press "+k, chromedp.KeyEvent(k))
}

// hearsTone waits until the page's analysis of the remote audio shows freq
// (±25 Hz) at a clear level in five reads in a row.
func (b *browser) hearsTone(what string, freq float64, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	run := 0
	var last string
	for run < 5 {
		v, err := eval[[]float64](b, `[ivrdAgent.dominantFrequency(), ivrdAgent.audioLevel()]`)
		if err == nil && len(v) == 2 && math.Abs(v[0]-freq) <= 25 && v[1] > 0.02 {
			run++
		} else {
			run = 0
		}
		last = fmt.Sprint(v, err)
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: the page never heard %g Hz (last [Hz level]: %s)\npage: %s", what, freq, last, b.snapshot())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// goertzelShare is the share (0..1) of a block's energy at freq.
func goertzelShare(pcm []int16, freq float64) float64 {
	coef := 2 * math.Cos(2*math.Pi*freq/media.SampleRate)
	var s1, s2, energy float64
	for _, v := range pcm {
		x := float64(v)
		energy += x * x
		s0 := x + coef*s1 - s2
		s2, s1 = s1, s0
	}
	if energy == 0 {
		return 0
	}
	power := s1*s1 + s2*s2 - coef*s1*s2
	// A pure tone of amplitude A: power (A·N/2)², energy N·A²/2.
	return power / (energy * float64(len(pcm)) / 2)
}

// toneBlocks splits the PCM the caller heard after mark into 100 ms blocks
// and counts those loud and mostly at freq.
func toneBlocks(call *testcaller.Call, mark int, freq float64) (tone, blocks int) {
	var pcm []int16
	for _, f := range call.FramesSince(mark) {
		pcm = append(pcm, f.PCM...)
	}
	const block = 800
	for i := 0; i+block <= len(pcm); i += block {
		b := pcm[i : i+block]
		var sum float64
		for _, v := range b {
			sum += float64(v) * float64(v)
		}
		blocks++
		if math.Sqrt(sum/block) > testcaller.LoudRMS && goertzelShare(b, freq) > 0.5 {
			tone++
		}
	}
	return tone, blocks
}

// callerHearsTone waits until the caller has heard freq for a second
// (ten 100 ms blocks) after mark.
func callerHearsTone(t *testing.T, call *testcaller.Call, mark int, freq float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tone, blocks := toneBlocks(call, mark, freq)
		if tone >= 10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the caller did not hear the agent's %g Hz: %d of %d blocks since the mark", freq, tone, blocks)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// callerHearsNoTone checks that the caller heard no freq for d after mark.
func callerHearsNoTone(t *testing.T, call *testcaller.Call, freq float64, d time.Duration, what string) {
	t.Helper()
	mark := call.Mark()
	time.Sleep(d)
	if tone, blocks := toneBlocks(call, mark, freq); tone > 1 {
		t.Fatalf("%s: the caller still heard %g Hz in %d of %d blocks", what, freq, tone, blocks)
	}
}

// pressAtMenu presses key as soon as the caller hears the main menu.
func pressAtMenu(ctx context.Context, call *testcaller.Call, rec *testcaller.Recognizer, key byte) error {
	for {
		for _, p := range rec.Heard(call.Frames()) {
			if p == "main_menu" {
				return call.SendDigit(key, 100*time.Millisecond)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("never heard the main menu: %w", ctx.Err())
		case <-call.Bye():
			return errors.New("hung up before the main menu")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestBrowser runs the softphone page's tests in a loopback-only network
// namespace.
func TestBrowser(t *testing.T) {
	t.Parallel()
	if !inLoopbackNamespace(t, "TestBrowser") {
		return
	}
	t.Run("TakeCalls", func(t *testing.T) { t.Parallel(); testBrowserTakeCalls(t) })
	t.Run("RefusedLoginsAndMicrophone", func(t *testing.T) { t.Parallel(); testBrowserRefusals(t) })
	t.Run("SharedPort", func(t *testing.T) { t.Parallel(); testBrowserSharedPort(t) })
}

// testBrowserSharedPort: with one UDP port for every agent's audio
// (webrtc.udp_port: ivrd routes the browser's packets by its address and
// reads them in batches), Chromium connects and a call's audio flows both
// ways.
func testBrowserSharedPort(t *testing.T) {
	cfg := writeConfig(t, fmt.Sprintf("webrtc:\n  udp_port: %d\n  ports: 31000-31999\n  listen_ip: \"\"\n", freeSIPPort(t)))
	d := startIvrd(t, cfg)
	b := startBrowser(t, toneWAV(t, 1000, 2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b.logIn("http://"+d.httpAddr, "agent2")
	b.do("go available", chromedp.Click(chromedp.ID("btn-available")))
	b.waitFor("available with audio up", `ivrdAgent.state === 'available' && ivrdAgent.audioConnection === 'connected'`, 15*time.Second)
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+14155550102", Source: &testcaller.Tone{Freq: 440, Amplitude: 0.3}})
	rec := recognizer(t, call.Law())
	if err := pressAtMenu(ctx, call, rec, '2'); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the call rings in the page", `ivrdAgent.callPhase === 'ringing'`, 20*time.Second)
	b.key("a")
	b.waitFor("connected", `ivrdAgent.callPhase === 'connected'`, 10*time.Second)
	b.hearsTone("caller → agent on the shared port", 440, 10*time.Second)
	callerHearsTone(t, call, call.Mark(), 1000, 10*time.Second)
	hangup(call)
	b.waitFor("wrap-up after the caller hung up", `ivrdAgent.state === 'wrap_up'`, 10*time.Second)
}

// testBrowserTakeCalls: an agent logs in on the softphone page and goes
// available; a reload keeps the session, the state and gets new audio; a
// caller presses 1; the screen pop shows who calls and what they chose;
// the agent accepts with the A key and the audio flows both ways (the
// caller's 440 Hz analysed in the page with WebAudio, the agent's 1000 Hz
// fake microphone measured at the caller with Goertzel); mute and hold
// (hold music) work; a dropped WebSocket reconnects by itself and keeps
// the call and its audio; H hangs up; wrap-up ends with a disposition. A
// second caller is declined with D and stays queued (offered again), is
// accepted with the mouse and hangs up; the agent logs out.
func testBrowserTakeCalls(t *testing.T) {
	d := startIvrd(t, demoConfig)
	base := "http://" + d.httpAddr
	b := startBrowser(t, toneWAV(t, 1000, 2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Without a session the page asks for one.
	b.logIn(base, "agent1")
	if got := b.text("agent-name"); got != "Alice Agent" {
		t.Errorf("agent name shown: %q", got)
	}

	b.do("go available", chromedp.Click(chromedp.ID("btn-available")))
	b.waitFor("available with audio up", `ivrdAgent.state === 'available' && ivrdAgent.audioConnection === 'connected'`, 15*time.Second)
	if got := b.text("state-label"); got != "Available" {
		t.Errorf("state shown: %q", got)
	}

	// A reload keeps the session (the cookie) and the agent's state, and
	// the new page gets a new audio path.
	b.do("reload", chromedp.Reload())
	b.waitFor("available again after a reload, with audio", `window.ivrdAgent && ivrdAgent.connected && ivrdAgent.state === 'available' && ivrdAgent.audioConnection === 'connected'`, 15*time.Second)
	if b.visible("login-view") {
		t.Error("the login form is shown after a reload")
	}

	// The caller: a known VIP (the directory names her), saying 440 Hz.
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+14155550100", Source: &testcaller.Tone{Freq: 440, Amplitude: 0.3}})
	rec := recognizer(t, call.Law())
	if err := pressAtMenu(ctx, call, rec, '1'); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the call rings in the page", `ivrdAgent.callPhase === 'ringing'`, 20*time.Second)
	callID, err := eval[string](b, `ivrdAgent.callId`)
	if err != nil || callID != call.ID {
		t.Fatalf("ringing call id %q (%v), want the caller's %q", callID, err, call.ID)
	}
	for id, want := range map[string]string{
		"pop-name": "Ada Lovelace", "pop-number": "+14155550100", "pop-customer": "C-1001",
		"pop-skill": "billing", "pop-ivr": ": 1", "state-label": "Ringing",
	} {
		if got := b.text(id); !strings.Contains(got, want) {
			t.Errorf("screen pop #%s: %q, want %q in it", id, got, want)
		}
	}
	if got := b.text("pop-waited"); !strings.Contains(got, ":") {
		t.Errorf("waited: %q", got)
	}
	if lvl, _ := eval[float64](b, `ivrdAgent.audioLevel()`); lvl > 0.01 {
		t.Errorf("the page hears audio (level %.3f) before accepting", lvl)
	}

	// Accept with the keyboard.
	b.key("a")
	b.waitFor("connected", `ivrdAgent.callPhase === 'connected' && ivrdAgent.state === 'on_call'`, 10*time.Second)
	mark := call.Mark()
	b.hearsTone("caller → agent", 440, 10*time.Second)
	callerHearsTone(t, call, mark, 1000, 10*time.Second)

	// Mute: the caller hears nothing of the agent; unmute: the tone again.
	b.do("mute", chromedp.Click(chromedp.ID("btn-mute")))
	time.Sleep(300 * time.Millisecond)
	callerHearsNoTone(t, call, 1000, time.Second, "muted")
	b.do("unmute", chromedp.Click(chromedp.ID("btn-mute")))
	callerHearsTone(t, call, call.Mark(), 1000, 5*time.Second)

	// Hold: the caller hears hold music instead of the agent.
	b.do("hold", chromedp.Click(chromedp.ID("btn-hold")))
	waitPrompt(t, ctx, call, rec, call.Mark(), "hold_music")
	callerHearsNoTone(t, call, 1000, time.Second, "on hold")
	b.do("resume", chromedp.Click(chromedp.ID("btn-hold")))
	callerHearsTone(t, call, call.Mark(), 1000, 5*time.Second)

	// A second caller waits while this call goes on.
	call2 := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+14155550101", Source: &testcaller.Tone{Freq: 440, Amplitude: 0.3}})
	rec2 := recognizer(t, call2.Law())
	pressed := make(chan error, 1)
	go func() { pressed <- pressAtMenu(ctx, call2, rec2, '2') }()

	// The WebSocket drops: the page says so, reconnects by itself, and the
	// call and its audio are still there.
	b.do("drop the connection", chromedp.Evaluate[chromedp.Void](`ivrdAgent.dropConnection()`))
	b.waitFor("the lost connection shown", `!ivrdAgent.connected && document.getElementById('banner-conn').checkVisibility()`, 5*time.Second)
	b.waitFor("reconnected", `ivrdAgent.connected && ivrdAgent.callPhase === 'connected' && ivrdAgent.state === 'on_call'`, 10*time.Second)
	if id, _ := eval[string](b, `ivrdAgent.callId`); id != call.ID {
		t.Fatalf("after the reconnect the call is %q, want %q", id, call.ID)
	}
	if b.visible("banner-conn") {
		t.Error("the lost-connection banner is still shown after the reconnect")
	}
	b.hearsTone("caller → agent after the reconnect", 440, 5*time.Second)
	callerHearsTone(t, call, call.Mark(), 1000, 5*time.Second)

	// H hangs up; wrap-up with a disposition and notes.
	b.key("h")
	if err := call.WaitBye(ctx); err != nil {
		t.Fatalf("the caller got no BYE after the agent hung up: %v", err)
	}
	b.waitFor("wrap-up", `ivrdAgent.state === 'wrap_up' && document.getElementById('wrapup-form').checkVisibility()`, 10*time.Second)
	if got := b.text("wrapup-countdown"); !strings.Contains(got, ":") {
		t.Errorf("wrap-up countdown: %q", got)
	}
	b.do("fill in the wrap-up",
		chromedp.SetValue(chromedp.ID("wrapup-disposition"), "follow_up"),
		chromedp.SendKeys(chromedp.ID("wrapup-notes"), "call back about the invoice"),
		chromedp.Click(chromedp.ID("btn-wrapup-done")),
	)
	d.waitLog(10*time.Second, "wrap-up done", call.ID, "disposition=follow_up")

	// The second caller rings; D declines; the caller stays queued and is
	// offered again at once (the only agent is available again).
	if err := <-pressed; err != nil {
		t.Fatal(err)
	}
	b.waitFor("the second call rings", `ivrdAgent.callPhase === 'ringing' && ivrdAgent.callId === `+jsString(call2.ID), 30*time.Second)
	if got := b.text("pop-name"); !strings.Contains(got, "Charles Babbage") {
		t.Errorf("second screen pop: %q", got)
	}
	if got := b.text("pop-skill"); got != "support" {
		t.Errorf("second call's skill: %q", got)
	}
	b.key("d")
	b.waitFor("declined", `ivrdAgent.lastEndReason === 'declined'`, 10*time.Second)
	b.waitFor("offered again", `ivrdAgent.callPhase === 'ringing' && ivrdAgent.callId === `+jsString(call2.ID), 10*time.Second)
	select {
	case <-call2.Bye():
		t.Fatal("the declined caller was hung up")
	default:
	}

	// Accepted with the mouse this time; the caller hangs up.
	b.do("accept", chromedp.Click(chromedp.ID("btn-accept")))
	b.waitFor("second call connected", `ivrdAgent.callPhase === 'connected'`, 10*time.Second)
	b.hearsTone("second caller → agent", 440, 10*time.Second)
	callerHearsTone(t, call2, call2.Mark(), 1000, 10*time.Second)
	hangup(call2)
	b.waitFor("wrap-up after the caller hung up", `ivrdAgent.lastEndReason === 'caller_hangup' && ivrdAgent.state === 'wrap_up'`, 10*time.Second)
	if got := b.text("wrapup-ended"); !strings.Contains(got, "caller hung up") {
		t.Errorf("wrap-up says: %q", got)
	}
	b.do("wrap up", chromedp.Click(chromedp.ID("btn-wrapup-done")))
	b.waitFor("available again", `ivrdAgent.state === 'available'`, 10*time.Second)

	// Log out: the login form, also after a reload.
	b.do("log out", chromedp.Click(chromedp.ID("logout")))
	b.waitFor("the login form after logout", `document.getElementById('login-view').checkVisibility()`, 10*time.Second)
	b.do("reload", chromedp.Reload())
	b.waitFor("the login form after a reload", `document.getElementById('login-view').checkVisibility()`, 10*time.Second)
	d.waitLog(5*time.Second, "agent state", "agent=agent1", "state=offline")
}

// logIn opens the softphone page at base without a session, logs in as
// user (the demo's password is the name) and waits for the signalling.
func (b *browser) logIn(base, user string) {
	b.do("open /agent", chromedp.Navigate(base+"/agent"))
	b.waitFor("the login form", `document.getElementById('login-view').checkVisibility()`, 10*time.Second)
	b.do("log in as "+user,
		chromedp.SendKeys(chromedp.ID("login-user"), user),
		chromedp.SendKeys(chromedp.ID("login-pass"), user),
		chromedp.Click(chromedp.ID("login-submit")),
	)
	b.waitFor("signalling connected", `ivrdAgent.connected && ivrdAgent.state`, 10*time.Second)
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// testBrowserRefusals: a wrong password and a supervisor are told why they
// cannot sign in; with the microphone refused, the page says so and how to
// allow it, and the agent cannot go available.
func testBrowserRefusals(t *testing.T) {
	d := startIvrd(t, demoConfig)
	b := startBrowser(t, "")
	b.do("open /agent", chromedp.Navigate("http://"+d.httpAddr+"/agent"))
	b.waitFor("the login form", `document.getElementById('login-view').checkVisibility()`, 10*time.Second)
	for _, c := range []struct{ user, pass, want string }{
		{"agent2", "wrong", "Wrong user name or password"},
		{"supervisor1", "supervisor1", "only agents take calls"},
	} {
		b.do("log in as "+c.user,
			chromedp.Evaluate[chromedp.Void](`document.getElementById('login-user').value = document.getElementById('login-pass').value = ''`),
			chromedp.SendKeys(chromedp.ID("login-user"), c.user),
			chromedp.SendKeys(chromedp.ID("login-pass"), c.pass),
			chromedp.Click(chromedp.ID("login-submit")),
		)
		b.waitFor(c.user+" refused", `document.getElementById('login-error').innerText.includes(`+jsString(c.want)+`)`, 10*time.Second)
		if b.visible("desk-view") {
			t.Errorf("%s: the desk is shown", c.user)
		}
	}
	b.do("log in as agent2",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('login-user').value = document.getElementById('login-pass').value = ''`),
		chromedp.SendKeys(chromedp.ID("login-user"), "agent2"),
		chromedp.SendKeys(chromedp.ID("login-pass"), "agent2"),
		chromedp.Click(chromedp.ID("login-submit")),
	)
	b.waitFor("signalling connected", `ivrdAgent.connected && ivrdAgent.state === 'offline'`, 10*time.Second)
	b.do("try to go available", chromedp.Click(chromedp.ID("btn-available")))
	b.waitFor("the microphone banner", `ivrdAgent.micError && document.getElementById('banner-mic').checkVisibility()`, 10*time.Second)
	if got := b.text("banner-mic"); !strings.Contains(got, "blocked the microphone") || !strings.Contains(got, "allow") {
		t.Errorf("microphone banner: %q", got)
	}
	if ok, _ := eval[bool](b, `document.getElementById('btn-available').disabled`); !ok {
		t.Error("Available can still be clicked without a microphone")
	}
	if got := b.text("state-hint"); !strings.Contains(got, "cannot go Available") {
		t.Errorf("status hint: %q", got)
	}
	time.Sleep(300 * time.Millisecond)
	if st, _ := eval[string](b, `ivrdAgent.state`); st != "offline" {
		t.Errorf("state %q, want offline", st)
	}
	if strings.Contains(d.log.String(), "state=available") {
		t.Error("the agent went available without a microphone")
	}
}
