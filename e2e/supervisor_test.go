package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ivrd/sip/testcaller"
)

// TestSupervisorBrowser runs the supervisor console's tests in headless
// Chromium, in a loopback-only network namespace like TestBrowser.
func TestSupervisorBrowser(t *testing.T) {
	t.Parallel()
	if !inLoopbackNamespace(t, "TestSupervisorBrowser") {
		return
	}
	t.Run("Wallboard", func(t *testing.T) { t.Parallel(); testSupervisorWallboard(t) })
	t.Run("Recordings", func(t *testing.T) { t.Parallel(); testSupervisorRecordings(t) })
}

// testSupervisorWallboard: an agent cannot use the console; supervisor1
// signs in at /supervisor and sees the live wallboard: every skill's tile
// and the agents; a caller who presses 1 shows up within seconds as one
// waiting for billing, with the number in the calls in progress; when
// the caller hangs up the tile goes back to zero and counts one abandoned.
// A reload keeps the session; logging out shows the login form.
func testSupervisorWallboard(t *testing.T) {
	d := startIvrd(t, demoConfig)
	base := "http://" + d.httpAddr
	b := startBrowser(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	b.do("open /supervisor", chromedp.Navigate(base+"/supervisor"))
	b.waitFor("the login form", `document.getElementById('login-view').checkVisibility()`, 10*time.Second)
	login := func(user, pass string) {
		b.do("log in as "+user,
			chromedp.Evaluate[chromedp.Void](`document.getElementById('login-user').value = document.getElementById('login-pass').value = ''`),
			chromedp.SendKeys(chromedp.ID("login-user"), user),
			chromedp.SendKeys(chromedp.ID("login-pass"), pass),
			chromedp.Click(chromedp.ID("login-submit")),
		)
	}
	login("agent1", "agent1")
	b.waitFor("an agent refused", `document.getElementById('login-error').innerText.includes('supervisors and admins')`, 10*time.Second)
	if b.visible("console-view") {
		t.Error("the console is shown to an agent")
	}

	login("supervisor1", "supervisor1")
	b.waitFor("the live wallboard", `window.ivrdSupervisor && ivrdSupervisor.live && ivrdSupervisor.snapshots > 0`, 10*time.Second)
	if got := b.text("user-name"); got != "Sam Supervisor" {
		t.Errorf("name shown: %q", got)
	}
	b.waitFor("a tile per skill", `['billing', 'support', 'general'].every((s) => document.querySelector('.tile[data-skill="' + s + '"]'))`, 5*time.Second)
	if got := b.text("agents-body"); !strings.Contains(got, "Alice Agent") || !strings.Contains(got, "Bob Agent") || !strings.Contains(got, "Offline") {
		t.Errorf("agents table: %q", got)
	}
	tile := `document.querySelector('.tile[data-skill="billing"]')`
	if got, _ := eval[string](b, tile+`.dataset.waiting`); got != "0" {
		t.Errorf("billing waiting before the call: %q", got)
	}

	// The page reads again every second: times in state advance.
	n0, _ := eval[float64](b, `ivrdSupervisor.snapshots`)
	b.waitFor("more snapshots", `ivrdSupervisor.snapshots >= `+jsNum(n0+2), 5*time.Second)

	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+14155550123"})
	rec := recognizer(t, call.Law())
	if err := pressAtMenu(ctx, call, rec, '1'); err != nil {
		t.Fatal(err)
	}
	d.waitLog(10*time.Second, "caller queued", call.ID, "skill=billing")
	start := time.Now()
	b.waitFor("the caller on the billing tile", tile+`.dataset.waiting === '1'`, 5*time.Second)
	t.Logf("the wallboard showed the caller %v after the queue did", time.Since(start).Round(10*time.Millisecond))
	if got := b.text("tiles"); !strings.Contains(strings.ToLower(got), "billing\n1\nwaiting") {
		t.Errorf("tiles: %q", got)
	}
	b.screenshot("supervisor-wallboard.png")
	b.waitFor("the caller in the calls in progress", `document.getElementById('calls-body').innerText.includes('+14155550123') && document.getElementById('calls-body').innerText.includes('Waiting')`, 5*time.Second)

	b.screenshot("supervisor-wallboard-call.png")
	hangup(call)
	b.waitFor("the billing tile back to zero, one abandoned", tile+`.dataset.waiting === '0' && ivrdSupervisor.snapshot.queues.find((q) => q.skill === 'billing').abandoned === 1`, 10*time.Second)
	b.waitFor("no calls in progress", `document.getElementById('calls-empty').checkVisibility()`, 5*time.Second)

	// A reload keeps the session; the audit tab opens; log out.
	b.do("reload", chromedp.Reload())
	b.waitFor("live again after a reload", `window.ivrdSupervisor && ivrdSupervisor.live`, 10*time.Second)
	if b.visible("login-view") {
		t.Error("the login form is shown after a reload")
	}
	b.do("open the audit tab", chromedp.Click(chromedp.ID("tab-audit")))
	b.waitFor("the audit trail", `document.getElementById('audit-view').checkVisibility() && document.getElementById('audit-empty').checkVisibility()`, 5*time.Second)
	b.do("log out", chromedp.Click(chromedp.ID("logout")))
	b.waitFor("the login form after logout", `document.getElementById('login-view').checkVisibility() && !ivrdSupervisor.live`, 10*time.Second)
}

// jsNum writes a number for a JavaScript expression.
func jsNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// testSupervisorRecordings: a caller presses 1, waits in the billing
// queue and hangs up; supervisor1 finds the call's recording by the
// caller's number, opens it (metadata, segment markers on the timeline,
// a download link) and plays it: the audio element plays and its time
// advances; the audit trail shows the view and the listen by supervisor1.
func testSupervisorRecordings(t *testing.T) {
	d := startIvrd(t, demoConfig)
	base := "http://" + d.httpAddr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if code, body := d.get("/api/v1/recordings"); code != 200 {
		t.Fatalf("GET /api/v1/recordings: %d %s (does ivrd pass its recordings library to web.Config.Recordings?)", code, body)
	}

	const number = "+14155550177"
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: number, Source: &testcaller.Tone{Freq: 440, Amplitude: 0.3}})
	rec := recognizer(t, call.Law())
	if err := pressAtMenu(ctx, call, rec, '1'); err != nil {
		t.Fatal(err)
	}
	d.waitLog(10*time.Second, "caller queued", call.ID, "skill=billing")
	time.Sleep(2 * time.Second)
	hangup(call)
	d.waitLog(10*time.Second, "call ended", call.ID)

	b := startBrowser(t, "")
	b.do("open the recordings", chromedp.Navigate(base+"/supervisor#recordings"))
	b.waitFor("the login form", `document.getElementById('login-view').checkVisibility()`, 10*time.Second)
	b.do("log in as supervisor1",
		chromedp.SendKeys(chromedp.ID("login-user"), "supervisor1"),
		chromedp.SendKeys(chromedp.ID("login-pass"), "supervisor1"),
		chromedp.Click(chromedp.ID("login-submit")),
	)
	b.waitFor("the recordings tab", `window.ivrdSupervisor && ivrdSupervisor.tab === 'recordings' && document.getElementById('recordings-view').checkVisibility()`, 10*time.Second)

	// The recording is indexed when the call's recorder closes: search
	// until it is there.
	b.do("filter by the caller's number", chromedp.SendKeys(chromedp.ID("f-caller"), "5550177"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		b.do("search", chromedp.Click(chromedp.ID("rec-search")))
		time.Sleep(300 * time.Millisecond)
		n, _ := eval[float64](b, `ivrdSupervisor.recordings.filter((r) => r.caller.number === `+jsString(number)+` && r.complete).length`)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recording of %s is not listed\npage: %s", number, b.snapshot())
		}
	}
	if got := b.text("rec-body"); !strings.Contains(got, number) || !strings.Contains(got, "billing") {
		t.Errorf("recordings table: %q", got)
	}
	b.do("open the recording", chromedp.Click(chromedp.CSS(`#rec-body tr`)))
	b.waitFor("the player", `document.getElementById('player').checkVisibility() && ivrdSupervisor.selected`, 5*time.Second)
	if got := b.text("rec-meta"); !strings.Contains(got, number) || !strings.Contains(got, call.ID) {
		t.Errorf("metadata: %q", got)
	}
	b.waitFor("segment markers on the timeline", `document.querySelectorAll('#timeline-segments .segment.ivr').length >= 1 && document.querySelectorAll('#timeline-segments .segment.queue').length >= 1`, 5*time.Second)
	if href, _ := eval[string](b, `document.getElementById('rec-download').href`); !strings.HasSuffix(href, "/audio?download=1") {
		t.Errorf("download link %q", href)
	}
	b.screenshot("supervisor-recording.png")

	b.do("play", chromedp.Evaluate[chromedp.Void](`(() => { const a = document.getElementById('rec-audio'); window.played = false; a.addEventListener('playing', () => { window.played = true; }); a.play(); })()`))
	b.waitFor("playing", `window.played && !document.getElementById('rec-audio').paused`, 10*time.Second)
	t0, _ := eval[float64](b, `document.getElementById('rec-audio').currentTime`)
	b.waitFor("time advancing", `document.getElementById('rec-audio').currentTime > `+jsNum(t0+0.5), 5*time.Second)
	// Seek with the timeline: a click at three quarters.
	b.do("seek on the timeline", chromedp.Evaluate[chromedp.Void](`(() => { const tl = document.getElementById('timeline'), r = tl.getBoundingClientRect();
		tl.dispatchEvent(new MouseEvent('click', {clientX: r.left + r.width * 0.75, clientY: r.top + 5, bubbles: true})); })()`))
	b.waitFor("the seek", `(() => { const a = document.getElementById('rec-audio'); return a.currentTime >= a.duration * 0.7; })()`, 5*time.Second)

	b.do("open the audit trail", chromedp.Click(chromedp.ID("tab-audit")))
	b.waitFor("the listen and the view in the trail", `(() => { const t = document.getElementById('audit-body').innerText; return t.includes('Played') && t.includes('Opened') && t.includes('supervisor1'); })()`, 5*time.Second)
}

// screenshot saves the page as name in $IVRD_E2E_SCREENSHOTS, when set
// (to look at the pages after a change).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("IVRD_E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Error(err)
	}
}
