package agents_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/agents"
	"ivrd/agents/agentbot"
	"ivrd/ivr"
	"ivrd/media"
	"ivrd/queue"
	"ivrd/rtc"
	"ivrd/sip"
	"ivrd/sip/testcaller"
)

// These tests put every real part together on 127.0.0.1: a real Redis,
// the queue, a SIP server with the test caller, the hub behind a real
// WebSocket, pion on both sides of the agent's audio, and the agent bot
// speaking only the documented protocol. Authentication is left out (a
// token names the agent): package web and e2e test it.

func redisAddr() string {
	if a := os.Getenv("IVRD_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

type harness struct {
	t      *testing.T
	rdb    redis.UniversalClient
	st     *queue.Store
	q      *queue.Queue
	hub    *agents.Hub
	lib    *media.Library
	rec    *testcaller.Recognizer
	phone  *testcaller.Phone
	target string
	base   string // http://… of the hub's WebSocket server
	mu     sync.Mutex
	wraps  []agents.WrapUp
}

type opts struct {
	ring, wrap, callGrace time.Duration
	declineNotReady       bool
}

// testLibrary has every prompt the queue and the hub play, short.
func testLibrary() *media.Library {
	lib := media.NewLibrary()
	names := append(append(queue.Prompts(), agents.Prompts()...), "queue_options")
	for i, n := range names {
		d := 300 * time.Millisecond
		if n == queue.PromptHoldMusic || n == agents.PromptAgentLost {
			d = 2 * time.Second
		}
		// Seeded noise: every frame unique, so the recognizer can name it.
		rng := mrand.New(mrand.NewPCG(uint64(i+1), 7))
		pcm := make([]int16, int(d.Seconds()*media.SampleRate))
		for j := range pcm {
			pcm[j] = int16(rng.IntN(6000) - 3000)
		}
		lib.Add(media.NewPrompt(n, pcm))
	}
	return lib
}

func newHarness(t *testing.T, o opts) *harness {
	t.Helper()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{redisAddr()}})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("these tests need a real Redis at %s (bash .ci/run starts one): %v", redisAddr(), err)
	}
	t.Cleanup(func() { rdb.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "ivrdagenttest-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+":*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	st, err := queue.NewStore(rdb, queue.StoreConfig{Prefix: prefix, Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, rdb: rdb, st: st, lib: testLibrary()}
	h.q, err = queue.New(queue.Config{Store: st, Skills: map[string]queue.SkillConfig{"billing": {}}, Logger: log,
		StatePoll: 200 * time.Millisecond, FirstAnnounceAfter: 200 * time.Millisecond, AnnounceEvery: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := rtc.NewEngine(rtc.Config{ListenIP: net.IPv4(127, 0, 0, 1), PortMin: 46000, PortMax: 46999, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h.hub, err = agents.NewHub(agents.Config{
		Store: st, Kick: h.q.Kick, NewPeer: agents.RTCPeers(engine),
		RingTimeout: o.ring, WrapUpTimeout: o.wrap, CallGrace: o.callGrace, IdleGrace: 2 * time.Second,
		DeclineNotReady: o.declineNotReady, Logger: log,
		OnWrapUp: func(w agents.WrapUp) { h.mu.Lock(); h.wraps = append(h.wraps, w); h.mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.q.SetConnector(h.hub)
	for _, id := range []string{"a1", "a2"} {
		if _, err := st.UpsertAgent(context.Background(), queue.Agent{ID: id, Name: "Agent " + id, Skills: map[string]int{"billing": 5}}); err != nil {
			t.Fatal(err)
		}
	}
	// The token is the agent's id; real authentication is package web's.
	ws := h.hub.WSHandler(func(r *http.Request) (agents.Identity, bool) {
		id := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		return agents.Identity{ID: id, Name: "Agent " + id}, id != ""
	}, func(*http.Request) bool { return true })
	srvHTTP := httptest.NewServer(ws)
	h.base = srvHTTP.URL

	var prompts []*media.Prompt
	for _, n := range h.lib.Names() {
		p, _ := h.lib.Get(n)
		prompts = append(prompts, p)
	}
	h.rec = testcaller.NewRecognizer(media.ULaw, prompts...)
	h.phone, err = testcaller.NewPhone(testcaller.PhoneConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ports, err := media.NewPortPool(47000, 47999)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sip.NewServer(sip.Config{
		Listen: "127.0.0.1:0", Ports: ports, Logger: log,
		Handler: sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
			call := &ivr.Call{ID: c.ID, Number: c.Caller.Number}
			_, _ = h.q.Queue(ctx, ivr.NewMediaChannel(c.Media, h.lib), call, ivr.QueueRequest{Skill: "billing"})
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	h.target = "sip:support@" + srv.Addr("udp")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.q.Run(ctx) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_ = srv.Shutdown(sctx)
		scancel()
		srvHTTP.CloseClientConnections()
		srvHTTP.Close()
		h.hub.Close()
		cancel()
		<-done
		engine.Close()
		_ = h.phone.Close()
	})
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// bot connects an agent bot (its tone in Hz) and makes it available with
// working audio.
func (h *harness) bot(ctx context.Context, id string, tone float64) *agentbot.Bot {
	h.t.Helper()
	b, err := agentbot.Connect(ctx, agentbot.Config{BaseURL: h.base, Username: id, Tone: tone}, id)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(b.Close)
	if _, _, err := b.WaitType(ctx, 0, "hello"); err != nil {
		h.t.Fatal(err)
	}
	if err := b.SetState(ctx, "available", ""); err != nil {
		h.t.Fatal(err)
	}
	if _, _, err := b.WaitState(ctx, 0, "available"); err != nil {
		h.t.Fatal(err)
	}
	for !b.Connected() {
		select {
		case <-ctx.Done():
			h.t.Fatalf("agent %s: audio never connected", id)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return b
}

func (h *harness) dial(ctx context.Context, number string, tone float64) *testcaller.Call {
	h.t.Helper()
	c, err := h.phone.Dial(ctx, testcaller.DialOptions{Target: h.target, From: number, Laws: []media.Law{media.ULaw},
		KeepFrames: true, Source: &testcaller.Tone{Freq: tone, Amplitude: 0.3}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(c.Close)
	return c
}

func (h *harness) agent(id string) queue.Agent {
	h.t.Helper()
	a, err := h.st.GetAgent(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// power is the relative power of freq in pcm (Goertzel), 0..1.
func power(pcm []int16, freq float64) float64 {
	if len(pcm) == 0 {
		return 0
	}
	coef := 2 * math.Cos(2*math.Pi*freq/media.SampleRate)
	var s1, s2, energy float64
	for _, v := range pcm {
		x := float64(v)
		s := x + coef*s1 - s2
		s2, s1 = s1, s
		energy += x * x
	}
	p := s1*s1 + s2*s2 - coef*s1*s2
	if energy == 0 {
		return 0
	}
	return p / (energy * float64(len(pcm)) / 2)
}

func joinPCM(frames []agentbot.Frame) []int16 {
	var out []int16
	for _, f := range frames {
		out = append(out, f.PCM...)
	}
	return out
}

func callerPCM(frames []testcaller.Frame) []int16 {
	var out []int16
	for _, f := range frames {
		out = append(out, f.PCM...)
	}
	return out
}

func TestCallReachesAgentAudioBothWays(t *testing.T) {
	h := newHarness(t, opts{wrap: 2 * time.Second})
	ctx := ctxT(t, 40*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	c := h.dial(ctx, "+14155550100", 440)

	m, i, err := bot.WaitType(ctx, 0, "call_offered")
	if err != nil {
		t.Fatal(err)
	}
	callID := m.Str("call_id")
	caller, _ := m["caller"].(map[string]any)
	if callID != c.Response().CallID().Value() || caller["number"] != "+14155550100" || m.Str("skill") != "billing" {
		t.Fatalf("screen pop %v", m)
	}
	if h.agent("a1").State != queue.Reserved {
		t.Fatalf("agent not reserved while ringing: %+v", h.agent("a1"))
	}
	mark := c.Mark()
	_, audioFrom := bot.Audio(0)
	if err := bot.Call(ctx, "accept", callID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bot.WaitType(ctx, i, "call_connected"); err != nil {
		t.Fatal(err)
	}
	if h.agent("a1").State != queue.OnCall {
		t.Fatalf("agent %+v, want on_call", h.agent("a1"))
	}
	// Two seconds of talk, then check each side heard the other's tone.
	time.Sleep(2 * time.Second)
	got, _ := bot.Audio(audioFrom)
	agentHeard := joinPCM(got)
	callerHeard := callerPCM(c.FramesSince(mark))
	if p := power(agentHeard, 440); p < 0.5 {
		t.Errorf("the agent did not hear the caller's 440 Hz (power %.2f over %d samples)", p, len(agentHeard))
	}
	if p := power(callerHeard[len(callerHeard)/2:], 1000); p < 0.5 {
		t.Errorf("the caller did not hear the agent's 1000 Hz (power %.2f over %d samples)", p, len(callerHeard))
	}
	// No hold music once connected: the last second is the agent alone.
	last := c.FramesSince(mark)
	if heard := h.rec.Heard(last[len(last)/2:]); len(heard) > 0 {
		t.Errorf("the caller still heard prompts while connected: %v", heard)
	}

	if err := bot.Call(ctx, "hangup", callID); err != nil {
		t.Fatal(err)
	}
	m, j, err := bot.WaitType(ctx, i, "call_ended")
	if err != nil || m.Str("reason") != agents.EndAgentHangup {
		t.Fatalf("call_ended %v %v", m, err)
	}
	if _, _, err := bot.WaitType(ctx, j, "wrapup"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBye(ctx); err != nil {
		t.Fatalf("the caller was not hung up on after the agent hung up: %v", err)
	}
	if h.agent("a1").State != queue.WrapUp {
		t.Fatalf("agent %+v, want wrap_up", h.agent("a1"))
	}
	if err := bot.WrapUpDone(ctx, callID, "resolved", "refund issued"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bot.WaitState(ctx, j, "available"); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	wraps := h.wraps
	h.mu.Unlock()
	if len(wraps) != 1 || wraps[0].Disposition != "resolved" || wraps[0].Notes != "refund issued" || wraps[0].AutoEnded {
		t.Fatalf("wrap-ups %+v", wraps)
	}
	r, err := h.q.Report(ctx, "billing")
	if err != nil || r.Answered != 1 || r.Abandoned != 0 {
		t.Fatalf("report %+v %v", r, err)
	}
}

func TestRingNoAnswerRequeuesAtHead(t *testing.T) {
	h := newHarness(t, opts{ring: time.Second})
	ctx := ctxT(t, 30*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	c := h.dial(ctx, "+15550000001", 440)
	_, i, err := bot.WaitType(ctx, 0, "call_offered")
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := bot.WaitType(ctx, i, "call_ended")
	if err != nil || m.Str("reason") != agents.EndMissed {
		t.Fatalf("call_ended %v %v", m, err)
	}
	waitFor(t, ctx, "agent not_ready after a missed call", func() bool {
		a := h.agent("a1")
		return a.State == queue.NotReady && a.Reason == "missed call"
	})
	id := c.Response().CallID().Value()
	waitFor(t, ctx, "caller back at the head", func() bool {
		pos, err := h.st.Position(ctx, "billing", id)
		return err == nil && pos == 1
	})
	// The caller hears the queue again: music or an announcement.
	mark := c.Mark()
	waitFor(t, ctx, "queue audio again", func() bool { return len(h.rec.Heard(c.FramesSince(mark))) > 0 })
}

func TestDeclineGivesCallToTheNextAgent(t *testing.T) {
	h := newHarness(t, opts{})
	ctx := ctxT(t, 30*time.Second)
	b1 := h.bot(ctx, "a1", 1000)
	c := h.dial(ctx, "+15550000002", 440)
	m, _, err := b1.WaitType(ctx, 0, "call_offered")
	if err != nil {
		t.Fatal(err)
	}
	// a2 comes online while a1's phone rings; a1 declines.
	b2 := h.bot(ctx, "a2", 1200)
	if err := b1.Call(ctx, "decline", m.Str("call_id")); err != nil {
		t.Fatal(err)
	}
	m2, _, err := b2.WaitType(ctx, 0, "call_offered")
	if err != nil || m2.Str("call_id") != c.Response().CallID().Value() {
		t.Fatalf("second offer %v %v", m2, err)
	}
	if e, _, err := b1.WaitType(ctx, 0, "call_ended"); err != nil || e.Str("reason") != agents.EndDeclined {
		t.Fatalf("a1's call_ended %v %v", e, err)
	}
	waitFor(t, ctx, "a1 available again after declining", func() bool {
		a := h.agent("a1")
		return a.State == queue.Available || a.State == queue.Reserved
	})
}

func TestCallerHangsUpWhileRinging(t *testing.T) {
	h := newHarness(t, opts{})
	ctx := ctxT(t, 30*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	c := h.dial(ctx, "+15550000003", 440)
	if _, _, err := bot.WaitType(ctx, 0, "call_offered"); err != nil {
		t.Fatal(err)
	}
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	m, _, err := bot.WaitType(ctx, 0, "call_ended")
	if err != nil || m.Str("reason") != agents.EndCallerGone {
		t.Fatalf("call_ended %v %v", m, err)
	}
	waitFor(t, ctx, "agent available again", func() bool { return h.agent("a1").State == queue.Available })
	if err := bot.Call(ctx, "accept", m.Str("call_id")); err != nil {
		t.Fatal(err)
	}
	if e, _, err := bot.WaitType(ctx, 0, "error"); err != nil || !strings.Contains(e.Str("message"), "no such call") {
		t.Fatalf("accepting a gone call: %v %v", e, err)
	}
	r, _ := h.q.Report(ctx, "billing")
	if r.Abandoned != 1 || r.Answered != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestAgentVanishesMidCall(t *testing.T) {
	h := newHarness(t, opts{callGrace: time.Second})
	ctx := ctxT(t, 40*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	c, _ := h.connected(ctx, bot, "+15550000004")
	mark := c.Mark()
	bot.Close() // the browser is gone: signalling and audio
	h.waitBackAtHead(ctx, c, mark)
	waitFor(t, ctx, "the agent out of the way", func() bool {
		s := h.agent("a1").State
		return s == queue.NotReady || s == queue.Offline
	})
}

// TestAgentAudioLostMidCall: the agent's audio path closes while the
// signalling stays up (the browser's PeerConnection is gone). The caller
// hears the apology and goes back to the head of the queue, and the agent
// is offered a new audio path at once, which the browser answers.
func TestAgentAudioLostMidCall(t *testing.T) {
	h := newHarness(t, opts{callGrace: time.Minute})
	ctx := ctxT(t, 20*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	c, i := h.connected(ctx, bot, "+15550000014")
	mark := c.Mark()
	bot.DropAudio()
	h.waitBackAtHead(ctx, c, mark)
	if _, _, err := bot.WaitType(ctx, i, "offer"); err != nil {
		t.Fatalf("no new audio path offered after the loss: %v (messages %v)", err, bot.Messages()[i:])
	}
	waitFor(t, ctx, "the agent's audio connected again", bot.Connected)
}

// connected dials from number and has bot accept the call; it returns the
// caller and the index of the bot's message after call_connected.
func (h *harness) connected(ctx context.Context, bot *agentbot.Bot, number string) (*testcaller.Call, int) {
	h.t.Helper()
	c := h.dial(ctx, number, 440)
	m, i, err := bot.WaitType(ctx, 0, "call_offered")
	if err != nil {
		h.t.Fatal(err)
	}
	if err := bot.Call(ctx, "accept", m.Str("call_id")); err != nil {
		h.t.Fatal(err)
	}
	if _, i, err = bot.WaitType(ctx, i, "call_connected"); err != nil {
		h.t.Fatal(err)
	}
	return c, i
}

// waitBackAtHead waits until the caller, whose agent was lost, has heard
// the apology since mark and is back at the head of the billing queue.
func (h *harness) waitBackAtHead(ctx context.Context, c *testcaller.Call, mark int) {
	h.t.Helper()
	waitFor(h.t, ctx, "the caller hears the apology", func() bool {
		for _, p := range h.rec.Heard(c.FramesSince(mark)) {
			if p == agents.PromptAgentLost {
				return true
			}
		}
		return false
	})
	id := c.Response().CallID().Value()
	waitFor(h.t, ctx, "the caller back in the queue at the head", func() bool {
		pos, err := h.st.Position(ctx, "billing", id)
		return err == nil && pos == 1
	})
}

func TestMalformedMessagesGetErrors(t *testing.T) {
	h := newHarness(t, opts{})
	ctx := ctxT(t, 20*time.Second)
	bot := h.bot(ctx, "a1", 0)
	cases := []struct{ send, want string }{
		{"not json", "not a JSON object"},
		{`{"state":"available"}`, `missing "type"`},
		{`{"type":"dance"}`, `unknown message type "dance"`},
		{`{"type":"state","state":"sleeping"}`, `state "sleeping"`},
		{`{"type":"accept"}`, "accept without call_id"},
		{`{"type":"accept","call_id":"nope"}`, "no such call is ringing"},
		{`{"type":"hold","call_id":"x"}`, "hold needs call_id and on"},
		{`{"type":"answer","sdp":"v=0"}`, "no offer is waiting"},
		{`[1,2,3]`, "not a JSON object"},
	}
	from := len(bot.Messages())
	for _, tc := range cases {
		if err := bot.Send(ctx, tc.send); err != nil {
			t.Fatal(err)
		}
		m, i, err := bot.WaitType(ctx, from, "error")
		if err != nil {
			t.Fatalf("%s: %v", tc.send, err)
		}
		if !strings.Contains(m.Str("message"), tc.want) {
			t.Errorf("%s: error %q, want %q", tc.send, m.Str("message"), tc.want)
		}
		from = i + 1
	}
	// The connection and the agent still work.
	if err := bot.SetState(ctx, "not_ready", "lunch"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bot.WaitState(ctx, from, "not_ready"); err != nil {
		t.Fatal(err)
	}
	if a := h.agent("a1"); a.State != queue.NotReady || a.Reason != "lunch" {
		t.Fatalf("agent %+v", a)
	}
}

func TestTwoConnectionsShareState(t *testing.T) {
	h := newHarness(t, opts{})
	ctx := ctxT(t, 20*time.Second)
	first := h.bot(ctx, "a1", 0)
	second, err := agentbot.Connect(ctx, agentbot.Config{BaseURL: h.base, Username: "a1"}, "a1")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if m, _, err := second.WaitType(ctx, 0, "hello"); err != nil || m.Str("state") != "available" {
		t.Fatalf("second tab's hello %v %v", m, err)
	}
	from := len(first.Messages())
	if err := second.SetState(ctx, "not_ready", "break"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.WaitState(ctx, from, "not_ready"); err != nil {
		t.Fatalf("the first tab did not see the change made in the second: %v", err)
	}
	for _, m := range second.Messages() {
		if m.Type() == "offer" {
			t.Fatal("the second tab was offered audio while the first tab's works")
		}
	}
}

func TestSignallingDropKeepsTheCall(t *testing.T) {
	h := newHarness(t, opts{callGrace: 5 * time.Second})
	ctx := ctxT(t, 40*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	c := h.dial(ctx, "+15550000005", 440)
	m, i, err := bot.WaitType(ctx, 0, "call_offered")
	if err != nil {
		t.Fatal(err)
	}
	callID := m.Str("call_id")
	if err := bot.Call(ctx, "accept", callID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bot.WaitType(ctx, i, "call_connected"); err != nil {
		t.Fatal(err)
	}
	// The WebSocket drops; the audio does not. A new connection with the
	// same session comes back within the grace period.
	bot.CloseSignalling()
	time.Sleep(500 * time.Millisecond)
	again, err := agentbot.Connect(ctx, agentbot.Config{BaseURL: h.base, Username: "a1"}, "a1")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	hello, _, err := again.WaitType(ctx, 0, "hello")
	if err != nil {
		t.Fatal(err)
	}
	call, _ := hello["call"].(map[string]any)
	if hello.Str("state") != "on_call" || call["call_id"] != callID {
		t.Fatalf("hello after reconnect %v", hello)
	}
	mark := c.Mark()
	time.Sleep(1500 * time.Millisecond)
	if p := power(callerPCM(c.FramesSince(mark)), 1000); p < 0.5 {
		t.Fatalf("the caller lost the agent's audio across the reconnect (power %.2f)", p)
	}
	if err := again.Call(ctx, "hangup", callID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprint

// connect brings a caller to agent a1 and returns the call and its id.
func (h *harness) connect(ctx context.Context, bot *agentbot.Bot, number string) (*testcaller.Call, string, int) {
	h.t.Helper()
	c := h.dial(ctx, number, 440)
	m, i, err := bot.WaitType(ctx, 0, "call_offered")
	if err != nil {
		h.t.Fatal(err)
	}
	id := m.Str("call_id")
	if err := bot.Call(ctx, "accept", id); err != nil {
		h.t.Fatal(err)
	}
	if _, i, err = bot.WaitType(ctx, i, "call_connected"); err != nil {
		h.t.Fatal(err)
	}
	return c, id, i
}

func TestHoldPlaysMusicToTheCaller(t *testing.T) {
	h := newHarness(t, opts{})
	ctx := ctxT(t, 30*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	c, id, _ := h.connect(ctx, bot, "+15550000006")
	on, off := true, false
	if err := bot.Send(ctx, map[string]any{"type": "hold", "call_id": id, "on": on}); err != nil {
		t.Fatal(err)
	}
	mark := c.Mark()
	waitFor(t, ctx, "hold music for the caller", func() bool {
		for _, p := range h.rec.Heard(c.FramesSince(mark)) {
			if p == queue.PromptHoldMusic {
				return true
			}
		}
		return false
	})
	_, from := bot.Audio(0)
	time.Sleep(time.Second)
	if got, _ := bot.Audio(from); power(joinPCM(got), 440) > 0.1 {
		t.Error("the agent still hears the caller while the caller is on hold")
	}
	if err := bot.Send(ctx, map[string]any{"type": "hold", "call_id": id, "on": off}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	mark = c.Mark()
	_, from = bot.Audio(0)
	time.Sleep(1500 * time.Millisecond)
	if got, _ := bot.Audio(from); power(joinPCM(got), 440) < 0.5 {
		t.Error("the agent does not hear the caller again after hold")
	}
	if p := power(callerPCM(c.FramesSince(mark)), 1000); p < 0.5 {
		t.Errorf("the caller does not hear the agent again after hold (power %.2f)", p)
	}
}

func TestCallerHangupStartsWrapUpThatEndsByItself(t *testing.T) {
	h := newHarness(t, opts{wrap: time.Second})
	ctx := ctxT(t, 30*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	c, id, i := h.connect(ctx, bot, "+15550000007")
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	m, j, err := bot.WaitType(ctx, i, "call_ended")
	if err != nil || m.Str("reason") != agents.EndCallerHangup || m.Str("call_id") != id {
		t.Fatalf("call_ended %v %v", m, err)
	}
	if w, _, err := bot.WaitType(ctx, j, "wrapup"); err != nil || w["timeout_s"] != 1.0 {
		t.Fatalf("wrapup %v %v", w, err)
	}
	if h.agent("a1").State != queue.WrapUp {
		t.Fatalf("agent %+v, want wrap_up", h.agent("a1"))
	}
	if _, _, err := bot.WaitState(ctx, j, "available"); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.wraps) != 1 || !h.wraps[0].AutoEnded || h.wraps[0].CallID != id {
		t.Fatalf("wrap-ups %+v", h.wraps)
	}
}

func TestDeclineWithPenalty(t *testing.T) {
	h := newHarness(t, opts{declineNotReady: true})
	ctx := ctxT(t, 30*time.Second)
	bot := h.bot(ctx, "a1", 1000)
	h.dial(ctx, "+15550000008", 440)
	m, _, err := bot.WaitType(ctx, 0, "call_offered")
	if err != nil {
		t.Fatal(err)
	}
	if err := bot.Call(ctx, "decline", m.Str("call_id")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "not_ready after declining", func() bool {
		a := h.agent("a1")
		return a.State == queue.NotReady && a.Reason == "declined"
	})
}

// Redis loses everything (a restart without persistence) while an agent is
// logged in and available: once the agent is created again (by the
// configuration), the hub puts back the state the agent had chosen.
func TestAgentStateRestoredAfterRedisLostIt(t *testing.T) {
	h := newHarness(t, opts{})
	ctx := ctxT(t, 20*time.Second)
	h.bot(ctx, "a1", 0)
	if err := h.rdb.Del(ctx, h.st.Key("agent", "a1"), h.st.Key("avail", "billing"), h.st.Key("agents")).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.UpsertAgent(ctx, queue.Agent{ID: "a1", Name: "Agent a1", Skills: map[string]int{"billing": 5}}); err != nil {
		t.Fatal(err)
	}
	if a := h.agent("a1"); a.State != queue.Offline {
		t.Fatalf("recreated agent %+v", a)
	}
	h.hub.Restore()
	waitFor(t, ctx, "the agent available again", func() bool {
		a := h.agent("a1")
		return a.State == queue.Available && a.Instance == "test"
	})
	// And it takes calls again.
	h.dial(ctx, "+15550000011", 440)
	waitFor(t, ctx, "an offer", func() bool { return h.agent("a1").State == queue.Reserved })
}
