package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"ivrd/ivr"
	"ivrd/queue"
)

// newQueue returns a queue on the real Redis (.ci/run provides one) under
// a fresh prefix, removed when the test ends.
func newQueue(t *testing.T, rdb redis.UniversalClient) *queue.Queue {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "ivrdwebtest-" + hex.EncodeToString(b)
	st, err := queue.NewStore(rdb, queue.StoreConfig{Prefix: prefix, Owner: "web-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+":*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	q, err := queue.New(queue.Config{Store: st, Skills: map[string]queue.SkillConfig{"billing": {}, "support": {}}})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func realRedis(t *testing.T) redis.UniversalClient {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("these tests need a real Redis at 127.0.0.1:6379 (bash .ci/run starts one): %v", err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func TestQueuesAndAgents(t *testing.T) {
	rdb := realRedis(t)
	q := newQueue(t, rdb)
	ctx := context.Background()
	st := q.Store()
	if _, err := st.UpsertAgent(ctx, queue.Agent{ID: "agent1", Name: "Alice", Skills: map[string]int{"billing": 5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetAgentState(ctx, "agent1", queue.NotReady, "lunch"); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"c1", "c2"} {
		if _, err := st.Enqueue(ctx, queue.Entry{ID: id, Skill: "billing", Enqueued: time.Now().Add(time.Duration(i-30) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Abandon(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(queue.NewStatsCollector(q))
	s, err := New(Config{Queue: q, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()

	code, body := get(t, srv, "/api/v1/queues")
	if code != 200 {
		t.Fatalf("GET /api/v1/queues: %d %s", code, body)
	}
	var reps []map[string]any
	if err := json.Unmarshal([]byte(body), &reps); err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || reps[0]["skill"] != "billing" || reps[1]["skill"] != "support" {
		t.Fatalf("skills: %s", body)
	}
	b := reps[0]
	for _, f := range []string{"skill", "waiting", "longest_wait_s", "ewt_s", "agents", "offered", "answered", "abandoned", "avg_wait_s", "service_level"} {
		if _, ok := b[f]; !ok {
			t.Errorf("field %s missing from %v", f, b)
		}
	}
	if b["waiting"] != 1.0 || b["offered"] != 2.0 || b["abandoned"] != 1.0 {
		t.Errorf("billing %v", b)
	}
	if lw := b["longest_wait_s"].(float64); lw < 29 || lw > 40 {
		t.Errorf("longest_wait_s %v, want about 30", lw)
	}
	if ag := b["agents"].(map[string]any); ag["not_ready"] != 1.0 || ag["available"] != 0.0 {
		t.Errorf("agents %v", ag)
	}

	code, body = get(t, srv, "/api/v1/agents")
	if code != 200 || !strings.Contains(body, `"id": "agent1"`) || !strings.Contains(body, `"state": "not_ready"`) || !strings.Contains(body, `"reason": "lunch"`) {
		t.Fatalf("GET /api/v1/agents: %d %s", code, body)
	}
	code, body = get(t, srv, "/metrics")
	if code != 200 || !strings.Contains(body, `ivrd_queue_waiting{skill="billing"} 1`) || !strings.Contains(body, `ivrd_queue_agents{skill="billing",state="not_ready"} 1`) {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	code, body = get(t, srv, "/api/v1/nothing")
	if code != 404 || !strings.Contains(body, `"error"`) {
		t.Fatalf("unknown endpoint: %d %s", code, body)
	}
	code, _ = get(t, srv, "/healthz")
	if code != 200 {
		t.Fatalf("healthz with Redis up: %d", code)
	}
}

func TestHealthzFailsWithoutRedis(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	q := newQueue(t, rdb)
	s, err := New(Config{Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	if code, body := get(t, srv, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz up: %d %q", code, body)
	}
	m.Close()
	code, body := get(t, srv, "/healthz")
	if code != 503 || !strings.Contains(body, "redis") {
		t.Fatalf("healthz with Redis gone: %d %q", code, body)
	}
	code, body = get(t, srv, "/api/v1/queues")
	if code != 503 || !strings.Contains(body, `"error"`) {
		t.Fatalf("queues with Redis gone: %d %q", code, body)
	}
}

// roleAuth is an Authorizer with a fixed answer per role, to check that
// every route asks for its role and answers 401/403 as JSON.
type roleAuth map[Role]int

func (a roleAuth) Authorize(_ *http.Request, need Role) int { return a[need] }

func TestRoutesAskForTheirRole(t *testing.T) {
	q := newQueue(t, realRedis(t))
	s, err := New(Config{Queue: q, Auth: roleAuth{RoleAgent: 401, RoleSupervisor: 403}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	if code, body := get(t, srv, "/api/v1/queues"); code != 401 || !strings.Contains(body, "log in") {
		t.Errorf("queues anonymous: %d %s", code, body)
	}
	if code, body := get(t, srv, "/api/v1/agents"); code != 403 || !strings.Contains(body, "supervisor") {
		t.Errorf("agents as agent: %d %s", code, body)
	}
	if code, _ := get(t, srv, "/healthz"); code != 200 {
		t.Errorf("healthz needs no login: %d", code)
	}
}

var _ ivr.QueueHandler = (*queue.Queue)(nil)
