package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"ivrd/queue"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	name, data string
	comment    bool
}

// sseClient reads events from one open stream.
type sseClient struct {
	res    *http.Response
	cancel context.CancelFunc
	events chan sseEvent
}

// openSSE opens an event stream; header pairs are added to the request.
func openSSE(t *testing.T, url string, header ...string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	c := &sseClient{res: res, cancel: cancel, events: make(chan sseEvent, 64)}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || len(data) > 0 || ev.comment {
					ev.data = strings.Join(data, "\n")
					c.events <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
				ev.comment = true
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() {
	c.cancel()
	c.res.Body.Close()
}

// next returns the next event that is not a comment.
func (c *sseClient) next(t *testing.T, timeout time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if !ev.comment {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event within %v", timeout)
		}
	}
}

// snapshotUntil reads snapshots until ok holds for one.
func (c *sseClient) snapshotUntil(t *testing.T, timeout time.Duration, what string, ok func(wallboardSnapshot) bool) wallboardSnapshot {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ev := c.next(t, time.Until(deadline)+time.Millisecond)
		if ev.name != "snapshot" {
			last = ev.name + " " + ev.data
			continue
		}
		var s wallboardSnapshot
		if err := json.Unmarshal([]byte(ev.data), &s); err != nil {
			t.Fatalf("snapshot: %v: %s", err, ev.data)
		}
		if ok(s) {
			return s
		}
		last = ev.data
	}
	t.Fatalf("%s: not within %v; last event %s", what, timeout, last)
	return wallboardSnapshot{}
}

// wallboardGoroutines counts goroutines running the wallboard's code.
func wallboardGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "web.(*wallboard)") {
			n++
		}
	}
	return n
}

// waitNoWallboard fails unless every wallboard goroutine ends soon.
func waitNoWallboard(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for wallboardGoroutines() > 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("wallboard goroutines left behind:\n%s", buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWallboardEvents: a snapshot at once with every skill and agent;
// a caller joining shows within a couple of seconds on two streams fed by
// one reader; closing the streams ends the handlers and the reader.
func TestWallboardEvents(t *testing.T) {
	q := newQueue(t, realRedis(t))
	ctx := context.Background()
	st := q.Store()
	if _, err := st.UpsertAgent(ctx, queue.Agent{ID: "agent1", Name: "Alice", Skills: map[string]int{"billing": 5}}); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()

	before := wallboardGoroutines()
	if before != 0 {
		t.Fatalf("%d wallboard goroutines before the test", before)
	}
	start := time.Now()
	a := openSSE(t, srv.URL+"/api/v1/wallboard/events")
	if ct := a.res.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := a.res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	ev := a.next(t, 2*time.Second)
	if ev.name != "snapshot" || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("first event %q after %v, want a snapshot at once", ev.name, time.Since(start))
	}
	var first wallboardSnapshot
	if err := json.Unmarshal([]byte(ev.data), &first); err != nil {
		t.Fatal(err)
	}
	if len(first.Queues) != 2 || first.Queues[0].Skill != "billing" || first.Queues[0].Waiting != 0 {
		t.Fatalf("queues %+v", first.Queues)
	}
	if len(first.Agents) != 1 || first.Agents[0].ID != "agent1" || first.Agents[0].State != "offline" || first.At.IsZero() {
		t.Fatalf("agents %+v at %v", first.Agents, first.At)
	}
	for _, f := range []string{`"queues"`, `"agents"`, `"at"`, `"longest_wait_s"`, `"ewt_s"`, `"service_level"`, `"in_state_s"`} {
		if !strings.Contains(ev.data, f) {
			t.Errorf("snapshot lacks %s: %s", f, ev.data)
		}
	}
	b := openSSE(t, srv.URL+"/api/v1/wallboard/events")
	b.next(t, 2*time.Second)
	if n := wallboardGoroutines(); n != 3 {
		t.Errorf("%d wallboard goroutines for two streams, want 3 (two handlers, one reader)", n)
	}

	if _, err := st.Enqueue(ctx, queue.Entry{ID: "c1", Skill: "billing", Enqueued: time.Now(), Fields: map[string]string{"number": "+15550001"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetAgentState(ctx, "agent1", queue.NotReady, "lunch"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sseClient{a, b} {
		got := c.snapshotUntil(t, 3*time.Second, "the caller and the agent's state", func(s wallboardSnapshot) bool {
			return s.Queues[0].Waiting == 1 && s.Queues[0].Offered == 1 && s.Agents[0].State == "not_ready"
		})
		if got.Agents[0].Reason != "lunch" {
			t.Errorf("reason %q", got.Agents[0].Reason)
		}
	}

	a.close()
	b.close()
	waitNoWallboard(t)

	// A new stream after everyone left starts the reader again.
	c := openSSE(t, srv.URL+"/api/v1/wallboard/events")
	c.snapshotUntil(t, 3*time.Second, "a second snapshot from a restarted reader", func(s wallboardSnapshot) bool { return !s.At.Before(first.At.Add(time.Second)) })
	c.close()
	waitNoWallboard(t)
}

// switchAuth lets requests in until it is turned off, then answers 401.
type switchAuth struct{ off atomic.Bool }

func (a *switchAuth) Authorize(*http.Request, Role) int {
	if a.off.Load() {
		return http.StatusUnauthorized
	}
	return 0
}

// TestWallboardHeartbeatAndEnd: a quiet stream gets heartbeat comments; a
// session that ends mid-stream gets an `end` event and the stream closes;
// so does a server that shuts down (Config.Done).
func TestWallboardHeartbeatAndEnd(t *testing.T) {
	q := newQueue(t, realRedis(t))
	auth := &switchAuth{}
	done := make(chan struct{})
	s, err := New(Config{Queue: q, Auth: auth, Done: done})
	if err != nil {
		t.Fatal(err)
	}
	wb := newWallboard(s)
	wb.every, wb.heartbeat, wb.recheck = time.Hour, 100*time.Millisecond, 300*time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(wb.serve))
	defer srv.Close()

	c := openSSE(t, srv.URL)
	if ev := c.next(t, 2*time.Second); ev.name != "snapshot" {
		t.Fatalf("first event %q", ev.name)
	}
	comments := 0
	for comments < 2 {
		select {
		case ev := <-c.events:
			if !ev.comment {
				t.Fatalf("unexpected event %q while idle", ev.name)
			}
			comments++
		case <-time.After(2 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
	auth.off.Store(true)
	if ev := c.next(t, 2*time.Second); ev.name != "end" || !strings.Contains(ev.data, "401") {
		t.Fatalf("after the session ended: %q %s", ev.name, ev.data)
	}
	for range c.events { // the server closes the stream
	}
	waitNoWallboard(t)

	auth.off.Store(false)
	c = openSSE(t, srv.URL)
	c.next(t, 2*time.Second)
	close(done)
	if ev := c.next(t, 2*time.Second); ev.name != "end" || !strings.Contains(ev.data, "shutting down") {
		t.Fatalf("at shutdown: %q %s", ev.name, ev.data)
	}
	waitNoWallboard(t)
}

// TestWallboardRedisGone: without Redis the stream says `unavailable`
// instead of failing, and the first event still comes at once.
func TestWallboardRedisGone(t *testing.T) {
	rdb := miniRedisClient(t)
	q := newQueue(t, rdb.client)
	s, err := New(Config{Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := openSSE(t, srv.URL+"/api/v1/wallboard/events")
	if ev := c.next(t, 2*time.Second); ev.name != "snapshot" {
		t.Fatalf("first %q", ev.name)
	}
	rdb.server.Close()
	for {
		ev := c.next(t, 5*time.Second)
		if ev.name == "unavailable" {
			if !strings.Contains(ev.data, "queue state unavailable") {
				t.Fatalf("unavailable: %s", ev.data)
			}
			break
		}
	}
	c.close()
	waitNoWallboard(t)
}

// TestCalls: waiting callers per skill in queue order with their place
// and caller details, then calls ringing at or connected to an agent.
func TestCalls(t *testing.T) {
	q := newQueue(t, realRedis(t))
	ctx := context.Background()
	st := q.Store()
	now := time.Now()
	for _, a := range []queue.Agent{
		{ID: "agent1", Name: "Alice", Skills: map[string]int{"support": 5}},
		{ID: "agent2", Name: "Bob", Skills: map[string]int{"support": 5}},
	} {
		if _, err := st.UpsertAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetAgentState(ctx, a.ID, queue.Available, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []queue.Entry{
		{ID: "s1", Skill: "support", Enqueued: now.Add(-90 * time.Second), Fields: map[string]string{"number": "+15550101", "name": "Ada"}},
		{ID: "s2", Skill: "support", Enqueued: now.Add(-60 * time.Second), Fields: map[string]string{"number": "+15550102"}},
	} {
		if _, err := st.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := st.Dispatch(ctx, q.Skills(), 10)
	if err != nil || len(ms) != 2 {
		t.Fatalf("dispatch: %v %v", ms, err)
	}
	if _, err := st.Accept(ctx, "s1", ms[0].Agent); err != nil {
		t.Fatal(err)
	}
	for _, e := range []queue.Entry{
		{ID: "b1", Skill: "billing", Enqueued: now.Add(-30 * time.Second), Fields: map[string]string{"number": "+15550001", "name": "Grace", "customer_id": "C-7", "tier": "gold"}},
		{ID: "b2", Skill: "billing", Enqueued: now.Add(-40 * time.Second), Priority: 5, Fields: map[string]string{"number": "+15550002"}},
	} {
		if _, err := st.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	code, body := get(t, srv, "/api/v1/calls")
	if code != 200 {
		t.Fatalf("GET /api/v1/calls: %d %s", code, body)
	}
	var calls []callJSON
	if err := json.Unmarshal([]byte(body), &calls); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range calls {
		agent := ""
		if c.Agent != nil {
			agent = c.Agent.ID
		}
		got = append(got, fmt.Sprintf("%s %s %s pos=%d prio=%d agent=%s number=%s", c.ID, c.State, c.Skill, c.Position, c.Priority, agent, c.Caller.Number))
	}
	want := []string{
		"b2 waiting billing pos=1 prio=5 agent= number=+15550002",
		"b1 waiting billing pos=2 prio=0 agent= number=+15550001",
		"s1 connected support pos=0 prio=0 agent=" + ms[0].Agent + " number=+15550101",
		"s2 offered support pos=0 prio=0 agent=" + ms[1].Agent + " number=+15550102",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), body)
	}
	b1 := calls[1]
	if b1.Caller.Name != "Grace" || b1.Caller.CustomerID != "C-7" || b1.Caller.Tier != "gold" || b1.WaitedS < 29 || b1.WaitedS > 35 || b1.Instance != "web-test" {
		t.Errorf("b1: %+v", b1)
	}
	if s1 := calls[2]; s1.WaitedS < 89 || s1.WaitedS > 95 || s1.Agent.Name == "" || s1.InStateS > 5 {
		t.Errorf("s1: %+v", s1)
	}

	// Nothing in progress: an empty list, not null.
	q2 := newQueue(t, realRedis(t))
	s2, _ := New(Config{Queue: q2})
	srv2 := httptest.NewServer(s2)
	defer srv2.Close()
	if code, body := get(t, srv2, "/api/v1/calls"); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("no calls: %d %s", code, body)
	}
}

// TestSupervisorRoutesRoles: every supervisor route answers 401 without a
// session and 403 to an agent, and lets supervisors and admins in.
func TestSupervisorRoutesRoles(t *testing.T) {
	a := newAuthServer(t, realRedis(t), false, nil)
	agent := a.login(t, "agent1", "agent1-pw")
	sup := a.login(t, "supervisor1", "supervisor1-pw")
	admin := a.login(t, "admin1", "admin1-pw")
	routes := []string{"/api/v1/calls", "/api/v1/wallboard/events", "/api/v1/audit"}
	for _, path := range routes {
		for _, c := range []struct {
			who, tok string
			want     int
		}{
			{"anonymous", "", 401}, {"agent", agent, 403}, {"supervisor", sup, 200}, {"admin", admin, 200},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+path, nil)
			if c.tok != "" {
				req.Header.Set("Authorization", "Bearer "+c.tok)
			}
			res, err := a.Client().Do(req)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			if res.StatusCode != c.want {
				b, _ := io.ReadAll(res.Body)
				t.Errorf("%s GET %s: %d %s, want %d", c.who, path, res.StatusCode, b, c.want)
			}
			if c.want == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s GET %s: no WWW-Authenticate", c.who, path)
			}
			if c.want >= 400 {
				var e struct{ Error string }
				if err := json.NewDecoder(res.Body).Decode(&e); err != nil || e.Error == "" {
					t.Errorf("%s GET %s: not a JSON error (%v)", c.who, path, err)
				}
			}
			res.Body.Close()
			cancel()
		}
	}
	waitNoWallboard(t)
}

// TestSupervisorPage: /supervisor and its files are served like the
// softphone's.
func TestSupervisorPage(t *testing.T) {
	srv := httptest.NewServer(Pages())
	defer srv.Close()
	for _, c := range []struct{ path, ctype, contains string }{
		{"/supervisor", "text/html; charset=utf-8", `<script src="/static/supervisor.js"`},
		{"/static/supervisor.js", "text/javascript; charset=utf-8", "window.ivrdSupervisor"},
		{"/static/supervisor.css", "text/css; charset=utf-8", ".tiles"},
	} {
		res, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != c.ctype || !strings.Contains(string(body), c.contains) {
			t.Errorf("GET %s: %d %q; body has %q: %v", c.path, res.StatusCode, res.Header.Get("Content-Type"), c.contains, strings.Contains(string(body), c.contains))
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "media-src 'self'") {
			t.Errorf("GET %s: policy %q does not let the page play recordings", c.path, csp)
		}
	}
}

// miniRedis is an in-process Redis the test can stop.
type miniRedis struct {
	server *miniredis.Miniredis
	client redis.UniversalClient
}

func miniRedisClient(t *testing.T) miniRedis {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	return miniRedis{server: m, client: rdb}
}
