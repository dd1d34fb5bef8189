package queue

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// tcpProxy stands between ivrd and Redis so a test can cut the network
// (Redis keeps its data) and restore it on the same address.
type tcpProxy struct {
	t       *testing.T
	backend string
	addr    string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func newTCPProxy(t *testing.T, backend string) *tcpProxy {
	p := &tcpProxy{t: t, backend: backend}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); b.Close() }()
			go func() { _, _ = io.Copy(c, b); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection: Redis is unreachable.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restore listens again on the same address.
func (p *tcpProxy) restore() {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy cannot listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func outageClient(t *testing.T, addr string) redis.UniversalClient {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{addr}, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: 1,
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestRedisOutageKeepsCallersAndReconciles cuts the network to Redis while
// callers wait: they keep hearing hold music, a new caller is told we
// cannot take the call, a caller who hangs up meanwhile is counted when
// Redis is back, and reconciliation leaves every key as it should be,
// including a reservation a crashed instance left behind.
func TestRedisOutageKeepsCallersAndReconciles(t *testing.T) {
	real := openReal(t) // the test's own view of Redis, not through the proxy
	proxy := newTCPProxy(t, realRedis)
	h := newQHarness(t, harnessOpts{rdb: outageClient(t, proxy.addr)})
	ctx := ctxTimeout(t, 60*time.Second)
	st := h.st
	k := st.Key

	// A crashed instance left a caller offered to an agent behind.
	dead, err := NewStore(real, StoreConfig{Prefix: st.cfg.Prefix, Owner: "dead-instance"})
	if err != nil {
		t.Fatal(err)
	}
	addAgent(t, st, "stuck", map[string]int{"general": 1}, Available)
	must[int](t)(dead.Enqueue(ctx, Entry{ID: "ghost", Skill: "general", Enqueued: time.Now()}))
	if m := must[[]Match](t)(dead.Dispatch(ctx, []string{"general"}, 1)); len(m) != 1 {
		t.Fatalf("ghost not matched: %v", m)
	}
	real.ZAdd(ctx, k("instances"), redis.Z{Score: float64(time.Now().Add(-time.Hour).UnixMilli()), Member: "dead-instance"})

	stay := h.dial(ctx, "+15550000101")
	leave := h.dial(ctx, "+15550000102")
	h.waitFor(ctx, "two waiting", func() bool { return h.report("billing").Waiting == 2 })
	stayID := stay.Response().CallID().Value()
	leaveID := leave.Response().CallID().Value()
	score := real.ZScore(ctx, k("wait", "billing"), stayID).Val()
	// Reconciliation (on start, on reconnect, every 30 s; run now) frees
	// the crashed instance's agent and removes its caller.
	rep, err := h.q.Reconcile(ctx)
	if err != nil || rep.Lost != 1 || rep.Repaired != 0 {
		// lost 1: the ghost; its agent is freed as the ghost goes.
		t.Fatalf("reconcile %+v %v", rep, err)
	}
	h.waitFor(ctx, "stale reservation freed", func() bool {
		a, err := st.GetAgent(ctx, "stuck")
		return err == nil && a.State == Available && a.Call == ""
	})
	if real.Exists(ctx, k("call", "ghost")).Val() != 0 || real.ZCard(ctx, k("wait", "general")).Val() != 0 {
		t.Fatal("the crashed instance's caller was left behind")
	}
	h.waitHeard(ctx, stay, 0, "you_are_caller", PromptHoldMusic)

	proxy.cut()
	h.waitFor(ctx, "Redis seen down", func() bool { return h.q.Healthy(ctx) != nil })
	mark := stay.Mark()
	if err := leave.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if r := h.result(ctx); r.err == nil {
		t.Fatalf("queue of the caller who hung up returned %+v", r)
	}
	late := h.dial(ctx, "+15550000103")
	h.waitHeard(ctx, late, 0, PromptCannotTake)
	if err := late.WaitBye(ctx); err != nil {
		t.Fatalf("the caller told we cannot take the call was not hung up on: %v", err)
	}
	if r := h.result(ctx); r.err != nil || r.next != "" {
		t.Fatalf("queue of the late caller returned %+v", r)
	}
	// Meanwhile the waiting caller kept hearing music: two loops of it.
	h.waitFor(ctx, "music during the outage", func() bool {
		n := 0
		for _, p := range h.heard(stay, mark) {
			if p == PromptHoldMusic {
				n++
			}
		}
		return n >= 2
	})

	proxy.restore()
	h.waitFor(ctx, "abandon counted after reconnect", func() bool {
		r, err := h.q.Report(ctx, "billing")
		return err == nil && r.Abandoned == 1
	})
	// Key by key.
	if real.Exists(ctx, k("call", leaveID)).Val() != 0 {
		t.Error("the caller who hung up during the outage is still in Redis")
	}
	if got := real.ZRange(ctx, k("wait", "billing"), 0, -1).Val(); len(got) != 1 || got[0] != stayID {
		t.Errorf("billing queue %v, want only %s", got, stayID)
	}
	if s := real.ZScore(ctx, k("wait", "billing"), stayID).Val(); s != score {
		t.Errorf("waiting caller's place changed: score %v, was %v", s, score)
	}
	if got := real.ZRange(ctx, k("since", "billing"), 0, -1).Val(); len(got) != 1 || got[0] != stayID {
		t.Errorf("arrival index %v", got)
	}
	if got := real.SMembers(ctx, k("owned", st.Owner())).Val(); len(got) != 1 || got[0] != stayID {
		t.Errorf("owned calls %v, want only %s", got, stayID)
	}
	if hs := real.HGetAll(ctx, k("call", stayID)).Val(); hs["state"] != "waiting" || hs["skill"] != "billing" || hs["owner"] != st.Owner() {
		t.Errorf("waiting caller's entry %v", hs)
	}
	if n := real.ZCard(ctx, k("avail", "general")).Val(); n != 1 {
		t.Errorf("freed agent not available: %d", n)
	}
	r := h.report("billing")
	if r.Waiting != 1 || r.Offered != 2 || r.Abandoned != 1 {
		t.Errorf("report %+v", r)
	}
	_ = stay.Hangup(ctx)
}

// TestRedisRestartLosingDataRestoresCallers restarts a Redis of the test's
// own (no persistence): everything in it is lost. The waiting caller is
// put back with its original place and the configured agents are created
// again by the reconcile hook.
func TestRedisRestartLosingDataRestoresCallers(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is needed (Debian package redis-server; .ci/run installs it)")
	}
	port := freeTCPPort(t)
	dir := t.TempDir()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	srv := start()
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	rdb := outageClient(t, addr)
	ctx := ctxTimeout(t, 60*time.Second)
	for rdb.Ping(ctx).Err() != nil {
		time.Sleep(20 * time.Millisecond)
	}
	h := newQHarness(t, harnessOpts{rdb: rdb})
	h.q.OnReconcile(func(ctx context.Context) error {
		_, err := h.st.UpsertAgent(ctx, Agent{ID: "cfg-agent", Name: "From config", Skills: map[string]int{"billing": 3}})
		return err
	})
	c := h.dial(ctx, "+15550000201")
	id := c.Response().CallID().Value()
	h.waitFor(ctx, "caller waiting", func() bool { return h.report("billing").Waiting == 1 })
	score := rdb.ZScore(ctx, h.st.Key("wait", "billing"), id).Val()

	_ = srv.Process.Kill()
	_ = srv.Wait()
	h.waitFor(ctx, "Redis seen down", func() bool { return h.q.Healthy(ctx) != nil })
	srv = start()
	h.waitFor(ctx, "caller restored", func() bool {
		return rdb.ZScore(ctx, h.st.Key("wait", "billing"), id).Val() == score
	})
	if hs := rdb.HGetAll(ctx, h.st.Key("call", id)).Val(); hs["state"] != "waiting" || hs["f_number"] != "+15550000201" {
		t.Errorf("restored entry %v", hs)
	}
	h.waitFor(ctx, "configured agent created again", func() bool {
		a, err := h.st.GetAgent(ctx, "cfg-agent")
		return err == nil && a.State == Offline
	})
	// The caller keeps waiting normally: hanging up is counted.
	_ = c.Hangup(ctx)
	h.waitFor(ctx, "abandon counted", func() bool { return h.report("billing").Abandoned == 1 })
}

func freeTCPPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestReconcileWhileCallersJoin: a reconciliation that runs while callers
// are being enqueued takes none of their fresh entries for one this
// instance lost (it used to, between the entry's write to Redis and the
// call's registration here: the caller was removed from Redis and put
// back moments later — "Redis had lost the waiting caller" with Redis
// healthy).
func TestReconcileWhileCallersJoin(t *testing.T) {
	h := newQHarness(t, harnessOpts{})
	ctx := ctxTimeout(t, 60*time.Second)
	stop := make(chan struct{})
	reports := make(chan ReconcileReport, 1)
	go func() {
		var sum ReconcileReport
		defer func() { reports <- sum }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := h.q.Reconcile(ctx)
			if err != nil {
				t.Errorf("reconcile: %v", err)
				return
			}
			sum.Lost += rep.Lost
			sum.Missing = append(sum.Missing, rep.Missing...)
		}
	}()
	const n = 12 // the harness keeps 16 results
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.dial(ctx, fmt.Sprintf("+1555000%04d", i))
		}()
	}
	wg.Wait()
	h.waitFor(ctx, "every caller waiting", func() bool { return h.report("billing").Waiting == n })
	close(stop)
	sum := <-reports
	if sum.Lost != 0 || len(sum.Missing) != 0 {
		t.Errorf("reconciling while callers joined: %d taken for lost, %d restored (%v)", sum.Lost, len(sum.Missing), sum.Missing)
	}
}
