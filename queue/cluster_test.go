package queue

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestScriptsRunOnRedisCluster starts a one-node Redis Cluster of the
// test's own (all 16384 slots on one node) and runs a caller's whole way
// through the queue with go-redis's cluster client: the scripts build
// their keys from the prefix, and all keys share the {q} hash tag, so
// Cluster must accept every one of them.
func TestScriptsRunOnRedisCluster(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is needed (Debian package redis-server; .ci/run installs it)")
	}
	port := freeTCPPort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx := ctxTimeout(t, 30*time.Second)

	node := redis.NewClient(&redis.Options{Addr: addr})
	defer node.Close()
	for node.Ping(ctx).Err() != nil {
		time.Sleep(20 * time.Millisecond)
	}
	if err := node.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		info, _ := node.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster never became ok: %s", info)
		case <-time.After(50 * time.Millisecond):
		}
	}

	be, err := parseURL("redis://" + addr + "?cluster=true")
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewUniversalClient(be)
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("cluster URL gave a %T", rdb)
	}
	clock := newClock()
	st, err := NewStore(rdb, StoreConfig{Prefix: "ivrd", Owner: "c1", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	addAgent(t, st, "a1", map[string]int{"billing": 3}, Available)
	must[int](t)(st.Enqueue(ctx, Entry{ID: "call1", Skill: "billing", Enqueued: clock.Now()}))
	ms := must[[]Match](t)(st.Dispatch(ctx, []string{"billing"}, 5))
	if len(ms) != 1 || ms[0].Agent != "a1" {
		t.Fatalf("dispatch on Cluster: %+v", ms)
	}
	clock.Add(10 * time.Second)
	must[time.Duration](t)(st.Accept(ctx, "call1", "a1"))
	must[string](t)(st.Complete(ctx, "call1"))
	must[AgentState](t)(st.SetAgentState(ctx, "a1", Available, ""))
	snap := must[Snapshot](t)(st.Snapshot(ctx, "billing"))
	if snap.Stats.Answered != 1 || len(snap.HandleTimes) != 1 {
		t.Fatalf("snapshot on Cluster: %+v", snap)
	}
	if _, err := st.Reconcile(ctx, nil, clock.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	v, err := NewLimiter(st).Allow(ctx, "number", "+1555", Rate{N: 1, Per: time.Minute})
	if err != nil || !v.Allowed {
		t.Fatalf("limiter on Cluster: %+v %v", v, err)
	}
}
