package e2e

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ivrd/agents/agentbot"
	"ivrd/media"
	"ivrd/recordings"
	"ivrd/sip/testcaller"
)

// TestAgentBotTakesADemoCall runs the demo binary with the Go agent bot,
// which speaks only the documented protocol: agent1 logs in and goes
// available, a caller presses 1 and reaches agent1 with their number on the
// screen pop, both hear each other's tone, the agent hangs up (the caller
// gets BYE), and wrap-up ends with a disposition.
func TestAgentBotTakesADemoCall(t *testing.T) {
	d := startIvrd(t, demoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bot, err := agentbot.Start(ctx, agentbot.Config{BaseURL: "http://" + d.httpAddr, Username: "agent1", Password: "agent1", Tone: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer bot.Close()
	if err := bot.SetState(ctx, "available", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bot.WaitState(ctx, 0, "available"); err != nil {
		t.Fatal(err)
	}
	for !bot.Connected() {
		select {
		case <-ctx.Done():
			t.Fatal("the agent's audio never connected")
		case <-time.After(20 * time.Millisecond):
		}
	}

	rec := recognizer(t, media.ULaw)
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: "+15005550199", Laws: []media.Law{media.ULaw},
		Source: &testcaller.Tone{Freq: 440, Amplitude: 0.3}})
	defer hangup(call)
	if err := pressAtMenu(ctx, call, rec, '1'); err != nil {
		t.Fatal(err)
	}
	m, i, err := bot.WaitType(ctx, 0, "call_offered")
	if err != nil {
		t.Fatal(err)
	}
	callID := m.Str("call_id")
	caller, _ := m["caller"].(map[string]any)
	if caller["number"] != "+15005550199" || m.Str("skill") != "billing" {
		t.Fatalf("screen pop %v", m)
	}
	ivrInfo, _ := m["ivr"].(map[string]any)
	choices, _ := ivrInfo["choices"].([]any)
	if !hasChoice(choices, "1") {
		t.Errorf("the screen pop does not show the caller pressed 1: %v", ivrInfo)
	}
	mark := call.Mark()
	_, from := bot.Audio(0)
	if err := bot.Call(ctx, "accept", callID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bot.WaitType(ctx, i, "call_connected"); err != nil {
		t.Fatal(err)
	}
	connectedAt := time.Now()
	callerHearsTone(t, call, mark, 1000, 10*time.Second)
	time.Sleep(time.Second)
	got, _ := bot.Audio(from)
	var pcm []int16
	for _, f := range got {
		pcm = append(pcm, f.PCM...)
	}
	if len(pcm) < 8000 || goertzelShare(pcm[len(pcm)/2:], 440) < 0.5 {
		t.Fatalf("the agent did not hear the caller's 440 Hz (%d samples)", len(pcm))
	}
	line := d.waitLog(5*time.Second, "first caller audio sent to the agent", callID)
	t.Logf("accept → first caller audio at the agent: %s", logField(line, "after_accept"))

	hungUpAt := time.Now()
	if err := bot.Call(ctx, "hangup", callID); err != nil {
		t.Fatal(err)
	}
	if err := call.WaitBye(ctx); err != nil {
		t.Fatalf("the caller was not hung up on: %v", err)
	}
	w, j, err := bot.WaitType(ctx, i, "wrapup")
	if err != nil {
		t.Fatal(err)
	}
	if err := bot.WrapUpDone(ctx, w.Str("call_id"), "resolved", "e2e"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bot.WaitState(ctx, j, "available"); err != nil {
		t.Fatal(err)
	}
	d.waitLog(5*time.Second, "wrap-up done", "disposition=resolved")
	// The API saw it all.
	if r := d.queueOf("billing"); r.Answered != 1 {
		t.Errorf("billing %+v, want answered 1", r)
	}
	checkBridgedRecording(t, d, call, callID, connectedAt, hungUpAt)
}

// TestAgentSocketRefusals: the WebSocket needs a login, the agent role and,
// from a browser, ivrd's own origin.
func TestAgentSocketRefusals(t *testing.T) {
	d := startIvrd(t, demoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := "ws://" + d.httpAddr + "/api/v1/agent/ws"
	status := func(h http.Header) int {
		c, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
		if err == nil {
			c.CloseNow()
			return 101
		}
		if res == nil {
			t.Fatalf("dial: %v", err)
		}
		return res.StatusCode
	}
	if s := status(nil); s != http.StatusUnauthorized {
		t.Errorf("anonymous: %d, want 401", s)
	}
	sup, err := agentbot.Login(ctx, "http://"+d.httpAddr, "supervisor1", "supervisor1")
	if err != nil {
		t.Fatal(err)
	}
	if s := status(http.Header{"Authorization": {"Bearer " + sup}}); s != http.StatusForbidden {
		t.Errorf("supervisor: %d, want 403", s)
	}
	tok, err := agentbot.Login(ctx, "http://"+d.httpAddr, "agent2", "agent2")
	if err != nil {
		t.Fatal(err)
	}
	if s := status(http.Header{"Authorization": {"Bearer " + tok}, "Origin": {"https://evil.example"}}); s != http.StatusForbidden {
		t.Errorf("cross-origin: %d, want 403", s)
	}
	if s := status(http.Header{"Authorization": {"Bearer " + tok}, "Origin": {"http://" + d.httpAddr}}); s != 101 {
		t.Errorf("same origin: %d, want 101", s)
	}
	var se *agentbot.StatusError
	if _, err := agentbot.Login(ctx, "http://"+d.httpAddr, "agent2", "wrong password"); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Errorf("bad password: %v", err)
	}
}

func hasChoice(choices []any, input string) bool {
	for _, c := range choices {
		if m, ok := c.(map[string]any); ok && m["input"] == input {
			return true
		}
	}
	return false
}

// checkBridgedRecording finds the call's recording through the API and
// checks it against what the test saw: as long as the call (answer to
// hangup), the caller's 440 Hz on the left and the agent's 1000 Hz on the
// right while they talked, the agent's tone starting when the call was
// connected, and the wrap-up's disposition in the metadata.
func checkBridgedRecording(t *testing.T, d *ivrd, call *testcaller.Call, callID string, connectedAt, hungUpAt time.Time) {
	t.Helper()
	var page struct {
		Recordings []recordings.Meta `json:"recordings"`
	}
	var meta recordings.Meta
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.getJSON("/api/v1/recordings?caller=5005550199", &page)
		if len(page.Recordings) == 1 && page.Recordings[0].Complete && page.Recordings[0].Disposition != "" {
			meta = page.Recordings[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete recording with its disposition: %+v", page.Recordings)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if meta.CallID != callID || meta.Agent != "agent1" || meta.Skill != "billing" || meta.Disposition != "resolved" || meta.Caller.Number != "+15005550199" {
		t.Errorf("metadata %+v", meta)
	}
	status, body := d.get("/api/v1/recordings/" + meta.ID + "/audio")
	if status != 200 {
		t.Fatalf("audio: %d", status)
	}
	left, right, err := recordings.DecodeStereo([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	// The call lasted from the 200 OK to the BYE: the recording as long,
	// give or take the test's own view of those moments.
	callLen := call.ByeAt().Sub(call.AnsweredAt)
	recLen := time.Duration(len(left)) * time.Second / media.SampleRate
	if d := recLen - callLen; d < -150*time.Millisecond || d > 150*time.Millisecond {
		t.Errorf("recording %v long, the call %v", recLen, callLen)
	}
	at := func(tm time.Time) int { return int(tm.Sub(call.AnsweredAt).Seconds() * media.SampleRate) }
	talk0, talk1 := at(connectedAt)+media.SampleRate/2, at(hungUpAt)-media.SampleRate/5
	if talk1-talk0 < media.SampleRate {
		t.Fatalf("talk window too short: %d samples", talk1-talk0)
	}
	if p := goertzelShare(left[talk0:talk1], 440); p < 0.5 {
		t.Errorf("left channel (the caller) while talking: 440 Hz share %.2f", p)
	}
	if p := goertzelShare(right[talk0:talk1], 1000); p < 0.5 {
		t.Errorf("right channel (what the caller heard) while talking: 1000 Hz share %.2f", p)
	}
	// The agent's tone starts on the right channel when the call was
	// connected (within the test's view of that moment, ±150 ms).
	first := -1
	for i := 0; i+160 <= len(right); i += 80 {
		if goertzelShare(right[i:i+160], 1000) > 0.8 {
			first = i
			break
		}
	}
	if off := time.Duration(first-at(connectedAt)) * time.Second / media.SampleRate; first < 0 || off < -150*time.Millisecond || off > 150*time.Millisecond {
		t.Errorf("the agent's voice starts %v from the connection in the recording", off)
	}
	kinds := map[string]bool{}
	for _, sg := range meta.Segments {
		kinds[sg.Kind] = true
	}
	if !kinds["ivr"] || !kinds["queue"] || !kinds["agent"] {
		t.Errorf("segments %+v, want ivr, queue and agent", meta.Segments)
	}
}
