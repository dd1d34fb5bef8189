package queue

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/ivr"
	"ivrd/media"
	"ivrd/sip"
	"ivrd/sip/testcaller"
)

// These tests place real SIP calls (the test caller against a real
// sip.Server on 127.0.0.1) into a real queue on a real Redis. Prompts are
// short synthetic sounds with unique frames, so the caller can tell exactly
// which prompt it heard, and tests stay quick.

// testPrompts builds a library with every prompt the queue plays plus the
// demo's queue_options, each a burst of seeded noise.
func testPrompts() *media.Library {
	lib := media.NewLibrary()
	names := append(Prompts(), "queue_options")
	for i, name := range names {
		d := 200 * time.Millisecond
		if name == PromptHoldMusic {
			d = 2 * time.Second
		}
		rng := rand.New(rand.NewPCG(uint64(i+1), 42))
		pcm := make([]int16, int(d.Seconds()*media.SampleRate))
		for j := range pcm {
			pcm[j] = int16(rng.IntN(16000) - 8000)
		}
		lib.Add(media.NewPrompt(name, pcm))
	}
	return lib
}

// testConnector stands in for the agent side (the softphone release): it
// accepts the offer in Redis as an agent's browser would, plays
// "connecting", holds the call for talk, then completes it.
type testConnector struct {
	st     *Store
	talk   time.Duration
	mu     sync.Mutex
	offers []Match
	// refuse makes the offer fail (the agent declines): the caller goes
	// back to the head of the queue.
	refuse bool
}

func (c *testConnector) Connect(ctx context.Context, ch ivr.Channel, call *ivr.Call, m Match) (ConnectResult, error) {
	c.mu.Lock()
	c.offers = append(c.offers, m)
	refuse := c.refuse
	c.mu.Unlock()
	if refuse {
		if _, err := c.st.Requeue(ctx, m.Call, m.Agent, NotReady, "declined"); err != nil {
			return Requeued, err
		}
		return Requeued, nil
	}
	if _, err := c.st.Accept(ctx, m.Call, m.Agent); err != nil {
		return Requeued, err
	}
	if err := ch.Play(ctx, PromptConnecting); err != nil {
		return Connected, err
	}
	select {
	case <-time.After(c.talk):
	case <-ctx.Done():
		return Connected, ctx.Err()
	}
	if _, err := c.st.Complete(context.Background(), m.Call); err != nil {
		return Connected, err
	}
	return Connected, nil
}

func (c *testConnector) got() []Match {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.offers)
}

type qresult struct {
	next string
	err  error
}

// qharness is a SIP server whose every call goes straight into the queue.
type qharness struct {
	t       *testing.T
	rdb     redis.UniversalClient
	st      *Store
	q       *Queue
	conn    *testConnector
	lib     *media.Library
	rec     *testcaller.Recognizer
	phone   *testcaller.Phone
	target  string
	req     func(number string) ivr.QueueRequest
	results chan qresult
	cancel  context.CancelFunc
}

type harnessOpts struct {
	rdb       redis.UniversalClient // default: the real Redis
	connector bool                  // run the dispatcher with a test connector
	skills    []string              // default billing, general
	// beforeCall, when set, runs on the SIP server's goroutine for each
	// new INVITE (as its admission check) and on the call's goroutine
	// before it is queued.
	beforeCall func()
}

func newQHarness(t *testing.T, o harnessOpts) *qharness {
	t.Helper()
	if o.rdb == nil {
		o.rdb = openReal(t)
	}
	if len(o.skills) == 0 {
		o.skills = []string{"billing", "general"}
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	prefix := randomPrefix(t)
	st, err := NewStore(o.rdb, StoreConfig{Prefix: prefix, Owner: "test-" + prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteKeys(t, o.rdb, prefix) })
	h := &qharness{t: t, rdb: o.rdb, st: st, lib: testPrompts(), results: make(chan qresult, 16)}
	skills := map[string]SkillConfig{}
	for _, s := range o.skills {
		skills[s] = SkillConfig{}
	}
	cfg := Config{
		Store: st, Skills: skills, AnnounceEvery: 3 * time.Second, Logger: log,
		StatePoll: 200 * time.Millisecond, FirstAnnounceAfter: 300 * time.Millisecond,
		Estimate: EstimateConfig{DefaultHandleTime: 3 * time.Minute},
	}
	if o.connector {
		h.conn = &testConnector{st: st, talk: 500 * time.Millisecond}
		cfg.Connector = h.conn
	}
	h.q, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var prompts []*media.Prompt
	for _, n := range h.lib.Names() {
		p, _ := h.lib.Get(n)
		prompts = append(prompts, p)
	}
	h.rec = testcaller.NewRecognizer(media.ULaw, prompts...)
	h.req = func(string) ivr.QueueRequest { return ivr.QueueRequest{Skill: "billing"} }

	h.phone, err = testcaller.NewPhone(testcaller.PhoneConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.phone.Close() })
	ports, err := media.NewPortPool(44000, 45999)
	if err != nil {
		t.Fatal(err)
	}
	var admit func(context.Context, string, sip.Identity) *sip.Rejection
	if o.beforeCall != nil {
		admit = func(context.Context, string, sip.Identity) *sip.Rejection { o.beforeCall(); return nil }
	}
	srv, err := sip.NewServer(sip.Config{
		Listen: "127.0.0.1:0", Ports: ports, Logger: log, RTPTimeout: time.Minute, Admit: admit,
		Handler: sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
			if o.beforeCall != nil {
				o.beforeCall()
			}
			call := &ivr.Call{ID: c.ID, Number: c.Caller.Number}
			next, err := h.q.Queue(ctx, ivr.NewMediaChannel(c.Media, h.lib), call, h.req(c.Caller.Number))
			h.results <- qresult{next, err}
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.q.Run(ctx)
	}()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		<-done
	})
	h.target = "sip:support@" + srv.Addr("udp")
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (h *qharness) dial(ctx context.Context, number string) *testcaller.Call {
	h.t.Helper()
	c, err := h.phone.Dial(ctx, testcaller.DialOptions{Target: h.target, From: number, Laws: []media.Law{media.ULaw}, KeepFrames: true})
	if err != nil {
		h.t.Fatalf("dial %s: %v", number, err)
	}
	h.t.Cleanup(c.Close)
	return c
}

// heard is what the caller recognised since mark.
func (h *qharness) heard(c *testcaller.Call, mark int) []string {
	return h.rec.Heard(c.FramesSince(mark))
}

// waitHeard waits until the caller has heard the prompts in order (as a
// subsequence of everything heard since mark).
func (h *qharness) waitHeard(ctx context.Context, c *testcaller.Call, mark int, want ...string) []string {
	h.t.Helper()
	for {
		got := h.heard(c, mark)
		if isSubsequence(want, got) {
			return got
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("caller did not hear %v; heard %v", want, got)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func (h *qharness) result(ctx context.Context) qresult {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-ctx.Done():
		h.t.Fatal("the queue did not return")
		return qresult{}
	}
}

func (h *qharness) waitFor(ctx context.Context, what string, cond func() bool) {
	h.t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			h.t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (h *qharness) report(skill string) Report {
	h.t.Helper()
	r, err := h.q.Report(context.Background(), skill)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func TestWaitingCallerHearsPositionEstimateMusicThenAbandons(t *testing.T) {
	h := newQHarness(t, harnessOpts{})
	ctx := ctxTimeout(t, 30*time.Second)
	addAgent(t, h.st, "busy1", map[string]int{"billing": 1}, NotReady)
	// Two callers ahead, so the third hears position 3.
	for _, n := range []string{"+15550000001", "+15550000002"} {
		h.dial(ctx, n)
	}
	h.waitFor(ctx, "two waiting", func() bool { return h.report("billing").Waiting == 2 })
	c := h.dial(ctx, "+15550000003")
	got := h.waitHeard(ctx, c, 0, "you_are_caller", "num_3", PromptHoldMusic)
	t.Logf("heard %v", got)
	r := h.report("billing")
	if r.Waiting != 3 || r.Offered != 3 {
		t.Fatalf("report %+v", r)
	}
	// A repeat comes every announce_every (3 s here).
	mark := c.Mark()
	h.waitHeard(ctx, c, mark, "you_are_caller", "num_3")

	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	res := h.result(ctx)
	if res.err == nil || res.next != "" {
		t.Fatalf("queue returned %+v after the caller hung up", res)
	}
	h.waitFor(ctx, "abandon counted", func() bool {
		r := h.report("billing")
		return r.Abandoned == 1 && r.Waiting == 2
	})
	if n := h.rdb.Exists(context.Background(), h.st.Key("call", fmt.Sprint(c.Response().CallID().Value()))).Val(); n != 0 {
		t.Fatal("the abandoned call's entry is still in Redis")
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestMatchedCallerReachesAgentWithoutAnnouncement(t *testing.T) {
	h := newQHarness(t, harnessOpts{connector: true})
	ctx := ctxTimeout(t, 20*time.Second)
	addAgent(t, h.st, "a1", map[string]int{"billing": 5}, Available)
	h.q.Kick()
	c := h.dial(ctx, "+15550000010")
	if err := c.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	res := h.result(ctx)
	if res.err != nil || res.next != "" {
		t.Fatalf("queue returned %+v, want the call over", res)
	}
	heard := h.heard(c, 0)
	if !slices.Contains(heard, PromptConnecting) || slices.Contains(heard, "you_are_caller") {
		t.Fatalf("heard %v: want connecting and no announcement for a caller answered at once", heard)
	}
	offers := h.conn.got()
	if len(offers) != 1 || offers[0].Agent != "a1" || offers[0].Skill != "billing" {
		t.Fatalf("offers %+v", offers)
	}
	r := h.report("billing")
	if r.Answered != 1 || r.Waiting != 0 || r.Abandoned != 0 || r.Agents.WrapUp != 1 {
		t.Fatalf("report %+v", r)
	}
}

func TestDeclinedOfferPutsCallerBackAtHead(t *testing.T) {
	h := newQHarness(t, harnessOpts{connector: true})
	ctx := ctxTimeout(t, 20*time.Second)
	h.conn.mu.Lock()
	h.conn.refuse = true
	h.conn.mu.Unlock()
	first := h.dial(ctx, "+15550000020")
	h.waitFor(ctx, "first caller waiting", func() bool { return h.report("billing").Waiting == 1 })
	second := h.dial(ctx, "+15550000021")
	h.waitFor(ctx, "second caller waiting", func() bool { return h.report("billing").Waiting == 2 })
	addAgent(t, h.st, "decliner", map[string]int{"billing": 5}, Available)
	h.q.Kick()
	h.waitFor(ctx, "an offer declined", func() bool { return len(h.conn.got()) == 1 })
	a, err := h.st.GetAgent(ctx, "decliner")
	if err != nil {
		t.Fatal(err)
	}
	if a.State != NotReady || a.Reason != "declined" {
		t.Fatalf("agent after declining: %+v", a)
	}
	firstID := h.conn.got()[0].Call
	if pos, err := h.st.Position(ctx, "billing", firstID); err != nil || pos != 1 {
		t.Fatalf("declined caller at %d (%v), want the head", pos, err)
	}
	// The next agent takes the same caller first.
	h.conn.mu.Lock()
	h.conn.refuse = false
	h.conn.mu.Unlock()
	addAgent(t, h.st, "taker", map[string]int{"billing": 5}, Available)
	h.q.Kick()
	h.waitFor(ctx, "second offer", func() bool { return len(h.conn.got()) == 2 })
	if got := h.conn.got()[1]; got.Call != firstID || got.Agent != "taker" {
		t.Fatalf("second offer %+v, want %s to taker", got, firstID)
	}
	_ = first.WaitBye(ctx)
	_ = second.Hangup(ctx)
}

func TestOptionBackToMenu(t *testing.T) {
	h := newQHarness(t, harnessOpts{})
	h.req = func(string) ivr.QueueRequest {
		return ivr.QueueRequest{Skill: "billing", Options: map[byte]string{'*': "main_menu", '1': ivr.QueueCallbackOption},
			OptionsPrompt: []string{"queue_options"}}
	}
	ctx := ctxTimeout(t, 20*time.Second)
	c := h.dial(ctx, "+15550000030")
	h.waitHeard(ctx, c, 0, "you_are_caller", "num_1", "queue_options")
	if err := c.SendDigit('*', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	res := h.result(ctx)
	if res.err != nil || res.next != "main_menu" {
		t.Fatalf("queue returned %+v, want main_menu", res)
	}
	r := h.report("billing")
	if r.ToMenu != 1 || r.Waiting != 0 || r.Abandoned != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestCallbackConfirmsCallerNumber(t *testing.T) {
	h := newQHarness(t, harnessOpts{})
	h.req = func(string) ivr.QueueRequest {
		return ivr.QueueRequest{Skill: "billing", Options: map[byte]string{'1': ivr.QueueCallbackOption},
			OptionsPrompt: []string{"queue_options"}}
	}
	ctx := ctxTimeout(t, 20*time.Second)
	other := h.dial(ctx, "+15550000040") // someone ahead
	h.waitFor(ctx, "first waiting", func() bool { return h.report("billing").Waiting == 1 })
	c := h.dial(ctx, "+1 (415) 555-0101")
	h.waitHeard(ctx, c, 0, "queue_options")
	mark := c.Mark()
	if err := c.SendDigit('1', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	h.waitHeard(ctx, c, mark, PromptCallbackAt, "num_1", "num_4", "num_1", "num_5", "num_5", "num_5", "num_5", "num_0", "num_1", "num_0", "num_1", PromptCallbackChoice)
	if err := c.SendDigit('1', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	h.waitHeard(ctx, c, mark, PromptCallbackDone)
	if err := c.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	cbs, err := h.st.Callbacks(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if len(cbs) != 1 || cbs[0].Number != "+14155550101" {
		t.Fatalf("callbacks %+v", cbs)
	}
	r := h.report("billing")
	if r.Callbacks != 1 || r.Waiting != 1 || r.Abandoned != 0 {
		t.Fatalf("report %+v", r)
	}
	_ = other.Hangup(ctx)
}

func TestCallbackToAnotherNumber(t *testing.T) {
	h := newQHarness(t, harnessOpts{})
	h.req = func(string) ivr.QueueRequest {
		return ivr.QueueRequest{Skill: "billing", Options: map[byte]string{'1': ivr.QueueCallbackOption},
			OptionsPrompt: []string{"queue_options"}}
	}
	ctx := ctxTimeout(t, 25*time.Second)
	c := h.dial(ctx, "anonymous")
	h.waitHeard(ctx, c, 0, "queue_options")
	mark := c.Mark()
	send := func(keys string) {
		for i := 0; i < len(keys); i++ {
			if err := c.SendDigit(keys[i], 80*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond)
		}
	}
	send("1")
	// No usable caller number: asked for one straight away.
	h.waitHeard(ctx, c, mark, PromptCallbackEnter)
	send("5551234#")
	h.waitHeard(ctx, c, mark, PromptCallbackAt, "num_5", "num_5", "num_5", "num_1", "num_2", "num_3", "num_4", PromptCallbackChoice)
	send("1")
	if err := c.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	cbs, err := h.st.Callbacks(ctx, "billing")
	if err != nil || len(cbs) != 1 || cbs[0].Number != "5551234" {
		t.Fatalf("callbacks %+v %v", cbs, err)
	}
}

func TestMaxWaitOverflowsToAnotherSkill(t *testing.T) {
	h := newQHarness(t, harnessOpts{})
	h.req = func(string) ivr.QueueRequest {
		return ivr.QueueRequest{Skill: "billing", MaxWait: time.Second, OverflowSkill: "general"}
	}
	ctx := ctxTimeout(t, 20*time.Second)
	start := time.Now()
	c := h.dial(ctx, "+15550000050")
	h.waitFor(ctx, "overflow", func() bool { return h.report("general").Waiting == 1 })
	b, g := h.report("billing"), h.report("general")
	if b.Waiting != 0 || b.Overflowed != 1 || g.Offered != 1 {
		t.Fatalf("billing %+v general %+v", b, g)
	}
	// The caller kept their arrival time: the longest wait in general
	// counts from when they called.
	if lw := time.Duration(g.LongestWaitS * float64(time.Second)); lw < time.Second-200*time.Millisecond || lw > time.Since(start)+time.Second {
		t.Fatalf("longest wait in general %v", lw)
	}
	_ = c.Hangup(ctx)
	h.waitFor(ctx, "abandon in general", func() bool { return h.report("general").Abandoned == 1 })
}

func TestMaxWaitToFlowNode(t *testing.T) {
	h := newQHarness(t, harnessOpts{})
	h.req = func(string) ivr.QueueRequest {
		return ivr.QueueRequest{Skill: "billing", MaxWait: time.Second, OnMaxWait: "voicemail"}
	}
	ctx := ctxTimeout(t, 20*time.Second)
	h.dial(ctx, "+15550000060")
	res := h.result(ctx)
	if res.err != nil || res.next != "voicemail" {
		t.Fatalf("queue returned %+v", res)
	}
	if r := h.report("billing"); r.Overflowed != 1 || r.Waiting != 0 {
		t.Fatalf("report %+v", r)
	}
}

// A caller inserted ahead with priority must not make the announced
// position go up ("you are caller 1 … you are caller 2").
func TestAnnouncedPositionNeverGoesUp(t *testing.T) {
	h := newQHarness(t, harnessOpts{})
	prio := map[string]int{"+15550000071": 10}
	h.req = func(n string) ivr.QueueRequest { return ivr.QueueRequest{Skill: "billing", Priority: prio[n]} }
	ctx := ctxTimeout(t, 25*time.Second)
	c := h.dial(ctx, "+15550000070")
	h.waitHeard(ctx, c, 0, "you_are_caller", "num_1")
	vip := h.dial(ctx, "+15550000071")
	h.waitFor(ctx, "vip ahead", func() bool {
		pos, err := h.st.Position(ctx, "billing", c.Response().CallID().Value())
		return err == nil && pos == 2
	})
	mark := c.Mark()
	got := h.waitHeard(ctx, c, mark, PromptPleaseHold)
	if slices.Contains(got, "num_2") || slices.Contains(got, "you_are_caller") {
		t.Fatalf("after the VIP went ahead the caller heard %v: the position went up", got)
	}
	_ = vip.Hangup(ctx)
	_ = c.Hangup(ctx)
}

// TestMatchWhileCallerJoins: the dispatcher matches a caller between its
// enqueue in Redis and its registration here. The offer must wait for the
// registration and reach the caller — not be taken for a call that ended,
// freeing the agent and dropping the caller from Redis until the caller's
// own check put it back.
func TestMatchWhileCallerJoins(t *testing.T) {
	h := newQHarness(t, harnessOpts{connector: true})
	ctx := ctxTimeout(t, 20*time.Second)
	addAgent(t, h.st, "a1", map[string]int{"billing": 5}, Available)
	hook := func(string) {
		h.q.Kick() // the dispatcher finds the caller and the agent now
		time.Sleep(300 * time.Millisecond)
	}
	testHookEnqueued.Store(&hook)
	t.Cleanup(func() { testHookEnqueued.Store(nil) })
	c := h.dial(ctx, "+15550000030")
	if err := c.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	res := h.result(ctx)
	if res.err != nil || res.next != "" {
		t.Fatalf("queue returned %+v, want the call over", res)
	}
	if offers := h.conn.got(); len(offers) != 1 || offers[0].Agent != "a1" {
		t.Fatalf("offers %+v, want one to a1", offers)
	}
	if r := h.report("billing"); r.Answered != 1 || r.Abandoned != 0 {
		t.Fatalf("report %+v: want answered 1, abandoned 0", r)
	}
}
