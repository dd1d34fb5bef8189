package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/queue"
	"ivrd/sip/testcaller"
)

// queueReport is one skill of GET /api/v1/queues, as far as the tests read it.
type queueReport struct {
	Skill    string `json:"skill"`
	Waiting  int    `json:"waiting"`
	EWTKnown bool   `json:"ewt_known"`
	Agents   struct {
		Available int `json:"available"`
		Busy      int `json:"busy"`
		WrapUp    int `json:"wrap_up"`
		NotReady  int `json:"not_ready"`
		Offline   int `json:"offline"`
	} `json:"agents"`
	Offered   int `json:"offered"`
	Answered  int `json:"answered"`
	Abandoned int `json:"abandoned"`
	Callbacks int `json:"callbacks"`
}

// agentEntry is one agent of GET /api/v1/agents.
type agentEntry struct {
	ID     string         `json:"id"`
	Name   string         `json:"name"`
	Skills map[string]int `json:"skills"`
	State  string         `json:"state"`
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get fetches path from ivrd's HTTP server and returns the status and body.
func (d *ivrd) get(path string) (int, string) {
	d.t.Helper()
	if d.httpAddr == "" {
		d.t.Fatal("ivrd's ready line named no http address")
	}
	req, err := http.NewRequest("GET", "http://"+d.httpAddr+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	if strings.HasPrefix(path, "/api/") {
		req.Header.Set("Authorization", "Bearer "+d.token()) // supervisor1 of the demo
	}
	res, err := httpClient.Do(req)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	return res.StatusCode, string(body)
}

// getJSON fetches path, which must answer 200 with JSON, into v.
func (d *ivrd) getJSON(path string, v any) {
	d.t.Helper()
	status, body := d.get(path)
	if status != http.StatusOK {
		d.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		d.t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// queueOf returns skill's figures from GET /api/v1/queues.
func (d *ivrd) queueOf(skill string) queueReport {
	d.t.Helper()
	var reps []queueReport
	d.getJSON("/api/v1/queues", &reps)
	for _, r := range reps {
		if r.Skill == skill {
			return r
		}
	}
	d.t.Fatalf("GET /api/v1/queues has no skill %q: %+v", skill, reps)
	return queueReport{}
}

// waitQueue polls GET /api/v1/queues until skill's figures satisfy ok.
func (d *ivrd) waitQueue(skill string, timeout time.Duration, what string, ok func(queueReport) bool) queueReport {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := d.queueOf(skill)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s queue never showed %s: %+v", skill, what, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queueAtMenu dials the demo, presses key as soon as the main menu starts
// (the menu allows barge-in) and returns the call.
func queueAtMenu(t *testing.T, ctx context.Context, d *ivrd, from string, key byte) (*testcaller.Call, *testcaller.Recognizer) {
	t.Helper()
	call := dialDemo(t, ctx, d, testcaller.DialOptions{From: from})
	rec := recognizer(t, call.Law())
	waitPrompt(t, ctx, call, rec, 0, "main_menu")
	if err := call.SendDigit(key, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return call, rec
}

// waitAfter waits for prompt to start after then has been heard.
func waitAfter(t *testing.T, ctx context.Context, call *testcaller.Call, rec *testcaller.Recognizer, then, prompt string) {
	t.Helper()
	waitPrompt(t, ctx, call, rec, 0, then)
	waitPrompt(t, ctx, call, rec, call.Mark(), prompt)
}

// waitBillingMusic queues an unknown caller for billing and waits until
// the first announcement is over and the hold music plays again.
func waitBillingMusic(t *testing.T, ctx context.Context, d *ivrd, from string) (*testcaller.Call, *testcaller.Recognizer) {
	t.Helper()
	call, rec := queueAtMenu(t, ctx, d, from, '1')
	waitAfter(t, ctx, call, rec, "queue_options", "hold_music")
	d.waitLog(5*time.Second, "caller queued", call.ID, "skill=billing", "position=1")
	assertHeard(t, rec.Heard(call.Frames()), "welcome", "recording_notice", "main_menu",
		"hold_music", "you_are_caller", "num_1", "queue_options", "hold_music")
	return call, rec
}

// TestDemoUnknownCallerChoosesBilling: an unknown caller gets no "welcome
// back"; 1 queues the caller for billing (embedded store): hold music, "you
// are caller number one", the options, music again. The API shows the
// caller waiting with both demo agents offline; /metrics shows the queue
// and Redis up; hanging up counts the caller abandoned.
func TestDemoUnknownCallerChoosesBilling(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	d.waitLog(time.Second, "embedded in-process store")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	call, _ := waitBillingMusic(t, ctx, d, "+15005550199")

	r := d.queueOf("billing")
	if r.Waiting != 1 || r.Offered != 1 || r.Agents.Offline != 2 || r.Agents.Available+r.Agents.Busy+r.Agents.WrapUp+r.Agents.NotReady != 0 {
		t.Fatalf("billing while the caller waits: %+v; want waiting 1, offered 1, both agents offline", r)
	}
	if g := d.queueOf("general"); g.Waiting != 0 || g.Offered != 0 {
		t.Fatalf("general queue touched: %+v", g)
	}
	var agents []agentEntry
	d.getJSON("/api/v1/agents", &agents)
	slices.SortFunc(agents, func(a, b agentEntry) int { return strings.Compare(a.ID, b.ID) })
	if len(agents) != 2 || agents[0].ID != "agent1" || agents[1].ID != "agent2" {
		t.Fatalf("GET /api/v1/agents: %+v; want agent1 and agent2", agents)
	}
	for _, a := range agents {
		if a.State != "offline" || a.Name == "" || a.Skills["billing"] != 5 {
			t.Fatalf("agent %+v: want offline, named, billing skill 5", a)
		}
	}
	status, metrics := d.get("/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	for _, want := range []string{"\nivrd_queue_waiting{skill=\"billing\"} 1\n", "\nivrd_redis_up 1\n"} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}

	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r = d.waitQueue("billing", 5*time.Second, "the caller abandoned", func(r queueReport) bool { return r.Abandoned == 1 })
	if r.Waiting != 0 || r.Offered != 1 || r.Answered != 0 {
		t.Fatalf("billing after the hangup: %+v; want waiting 0, offered 1, answered 0", r)
	}
	d.waitLog(5*time.Second, "caller abandoned the queue", call.ID)
	if _, metrics = d.get("/metrics"); !strings.Contains(metrics, "\nivrd_queue_waiting{skill=\"billing\"} 0\n") {
		t.Fatal("/metrics still shows a caller waiting for billing")
	}
}

// TestHealthzEmbedded: with the embedded store /healthz answers 200 "ok".
func TestHealthzEmbedded(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	d.waitLog(time.Second, "embedded in-process store")
	status, body := d.get("/healthz")
	if status != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("GET /healthz: %d %q; want 200 ok", status, body)
	}
}

// TestDemoCallback: in the billing queue, 1 during the options asks for a
// callback: ivrd reads the caller's number back, 1 confirms, ivrd says
// goodbye and hangs up, and the queue counts one callback.
func TestDemoCallback(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	call, rec := queueAtMenu(t, ctx, d, "+15005550199", '1')
	waitPrompt(t, ctx, call, rec, 0, "queue_options")
	if err := call.SendDigit('1', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitAfter(t, ctx, call, rec, "callback_at", "callback_confirm")
	if err := call.SendDigit('1', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := call.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"welcome", "recording_notice", "main_menu", "hold_music", "you_are_caller", "num_1", "queue_options", "callback_at"}
	for _, c := range "15005550199" {
		want = append(want, "num_"+string(c))
	}
	want = append(want, "callback_confirm", "callback_done")
	assertHeard(t, rec.Heard(call.Frames()), want...)
	d.waitLog(5*time.Second, "callback requested", call.ID, "number=+15005550199")
	r := d.waitQueue("billing", 5*time.Second, "the callback", func(r queueReport) bool { return r.Callbacks == 1 })
	if r.Waiting != 0 || r.Abandoned != 0 || r.Offered != 1 {
		t.Fatalf("billing after the callback request: %+v; want waiting 0, abandoned 0, offered 1", r)
	}
}

// realRedisAddr is the Redis .ci/run provides; IVRD_TEST_REDIS overrides.
func realRedisAddr() string {
	if a := os.Getenv("IVRD_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// realRedisIvrd starts ivrd with the demo on the real Redis under a
// prefix of its own, and returns it with a client on that Redis. Every key
// under the prefix is deleted once ivrd has stopped.
func realRedisIvrd(t *testing.T) (*ivrd, *redis.Client, string) {
	t.Helper()
	addr := realRedisAddr()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("this test needs a real Redis at %s (bash .ci/run starts one; IVRD_TEST_REDIS names another): %v", addr, err)
	}
	c.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "e2e" + hex.EncodeToString(b)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	// Registered before startIvrd: cleanups run last-in first-out, so
	// this one runs after ivrd has stopped writing.
	t.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var keys []string
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scan %s:*: %v", prefix, err)
			return
		}
		for _, k := range keys {
			if err := rdb.Del(ctx, k).Err(); err != nil {
				t.Errorf("delete %s: %v", k, err)
			}
		}
	})
	cfg := writeConfig(t, fmt.Sprintf("redis:\n  url: \"\"\n  prefix: %s\n", prefix))
	d := startIvrd(t, cfg, "IVRD_REDIS_URL=redis://"+addr+"/0")
	if strings.Contains(d.log.String(), "embedded in-process store") {
		t.Fatalf("ivrd started the embedded store instead of using %s", addr)
	}
	// ivrd creates the demo agents when it first reconciles.
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(context.Background(), prefix+":{q}:agent:agent1", prefix+":{q}:agent:agent2").Val() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("ivrd did not create the demo agents under %s", prefix)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, rdb, prefix
}

// TestDemoBillingOnRealRedis: the billing wait of the demo with ivrd on the
// real Redis; the keys are checked in Redis directly while the caller
// waits and after the hangup.
func TestDemoBillingOnRealRedis(t *testing.T) {
	t.Parallel()
	d, rdb, prefix := realRedisIvrd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	call, _ := waitBillingMusic(t, ctx, d, "+15005550199")

	k := func(parts ...string) string { return prefix + ":{q}:" + strings.Join(parts, ":") }
	if ids := rdb.ZRange(ctx, k("wait", "billing"), 0, -1).Val(); len(ids) != 1 || ids[0] != call.ID {
		t.Fatalf("%s = %v; want just the call %s", k("wait", "billing"), ids, call.ID)
	}
	if st := rdb.HGet(ctx, k("call", call.ID), "state").Val(); st != "waiting" {
		t.Fatalf("%s state = %q; want waiting", k("call", call.ID), st)
	}
	if n := rdb.HGet(ctx, k("stats", "billing"), "offered").Val(); n != "1" {
		t.Fatalf("%s offered = %q; want 1", k("stats", "billing"), n)
	}
	if r := d.queueOf("billing"); r.Waiting != 1 || r.Agents.Offline != 2 {
		t.Fatalf("billing while the caller waits: %+v", r)
	}

	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rdb.HGet(ctx, k("stats", "billing"), "abandoned").Val() != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v; want abandoned 1", k("stats", "billing"), rdb.HGetAll(ctx, k("stats", "billing")).Val())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := rdb.ZCard(ctx, k("wait", "billing")).Val(); n != 0 {
		t.Fatalf("%s holds %d entries after the hangup", k("wait", "billing"), n)
	}
	if n := rdb.ZCard(ctx, k("since", "billing")).Val(); n != 0 {
		t.Fatalf("%s holds %d entries after the hangup", k("since", "billing"), n)
	}
	if n := rdb.Exists(ctx, k("call", call.ID)).Val(); n != 0 {
		t.Fatalf("%s still exists after the hangup", k("call", call.ID))
	}
	if r := d.queueOf("billing"); r.Waiting != 0 || r.Abandoned != 1 {
		t.Fatalf("billing after the hangup: %+v", r)
	}
}

// TestDemoAnnouncesEstimate: with agent1 busy on another call, billing is
// staffed, so the caller at position 1 hears an estimated wait in minutes
// between the position and the options. The other call is put there with
// the queue package's store as a second instance would.
func TestDemoAnnouncesEstimate(t *testing.T) {
	t.Parallel()
	d, rdb, prefix := realRedisIvrd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	st, err := queue.NewStore(rdb, queue.StoreConfig{Prefix: prefix, Owner: "e2e-helper"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetAgentState(ctx, "agent1", queue.Available, ""); err != nil {
		t.Fatal(err)
	}
	other := "e2e-other-" + prefix
	if _, err := st.Enqueue(ctx, queue.Entry{ID: other, Skill: "billing", Enqueued: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ms, err := st.Dispatch(ctx, []string{"billing"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Call != other || ms[0].Agent != "agent1" {
		t.Fatalf("dispatch: %+v; want %s with agent1", ms, other)
	}
	if _, err := st.Accept(ctx, other, "agent1"); err != nil {
		t.Fatal(err)
	}
	if r := d.queueOf("billing"); r.Waiting != 0 || r.Agents.Busy != 1 || r.Agents.Offline != 1 || !r.EWTKnown {
		t.Fatalf("billing with agent1 on a call: %+v; want nobody waiting, 1 busy, 1 offline, an estimate", r)
	}

	call, rec := queueAtMenu(t, ctx, d, "+15005550199", '1')
	waitPrompt(t, ctx, call, rec, 0, "queue_options")
	d.waitLog(5*time.Second, "announcing", call.ID, "position=1", "estimated=true")
	heard := rec.Heard(call.Frames())
	i := slices.Index(heard, "you_are_caller")
	if i < 0 || len(heard) < i+6 {
		t.Fatalf("heard %v; want the position, an estimate and the options", heard)
	}
	got := heard[i:]
	n := strings.TrimPrefix(got[3], "num_")
	unit := "minutes"
	if n == "1" {
		unit = "minute"
	}
	if got[1] != "num_1" || got[2] != "ewt_intro" || n == got[3] || n == "0" || got[4] != unit || got[5] != "queue_options" {
		t.Fatalf("heard %v\nwant  you_are_caller, num_1, ewt_intro, num_N, minute(s), queue_options", got)
	}
	t.Logf("heard %v", got)
	hangup(call)
	d.waitLog(5*time.Second, "caller abandoned the queue", call.ID)
}
