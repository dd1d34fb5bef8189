package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// realRedis is the Redis that .ci/run provides; IVRD_TEST_REDIS (host:port)
// overrides.
var realRedis = func() string {
	if a := os.Getenv("IVRD_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}()

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func randomPrefix(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "ivrdtest-" + hex.EncodeToString(b)
}

// backend is one kind of Redis the store runs on in tests.
type backend struct {
	name string
	open func(t testing.TB) redis.UniversalClient
}

// backends are the real Redis (required: the suite runs against real
// parts) and the embedded store, so the scripts are checked on both.
var backends = []backend{
	{"redis", openReal},
	{"embedded", openEmbedded},
}

func openReal(t testing.TB) redis.UniversalClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", realRedis, time.Second)
	if err != nil {
		t.Fatalf("these tests need a real Redis at %s (bash .ci/run starts one): %v", realRedis, err)
	}
	c.Close()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{realRedis}})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func openEmbedded(t testing.TB) redis.UniversalClient {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newStore returns a store under a fresh prefix whose keys are deleted when
// the test ends.
func newStore(t testing.TB, rdb redis.UniversalClient, clock *fakeClock, owner string) *Store {
	t.Helper()
	return newStoreWithPrefix(t, rdb, clock, owner, randomPrefix(t))
}

func newStoreWithPrefix(t testing.TB, rdb redis.UniversalClient, clock *fakeClock, owner, prefix string) *Store {
	t.Helper()
	st, err := NewStore(rdb, StoreConfig{Prefix: prefix, Owner: owner, Now: clock.Now, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteKeys(t, rdb, prefix) })
	return st
}

func deleteKeys(t testing.TB, rdb redis.UniversalClient, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := rdb.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		keys = keys[n:]
	}
}

func forEachBackend(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func addAgent(t testing.TB, st *Store, id string, skills map[string]int, state AgentState) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.UpsertAgent(ctx, Agent{ID: id, Name: "Agent " + id, Skills: skills}); err != nil {
		t.Fatal(err)
	}
	if state != Offline {
		if _, err := st.SetAgentState(ctx, id, state, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOrderByPriorityThenArrival(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		enq := func(id string, prio int) int {
			clock.Add(time.Second)
			return must[int](t)(st.Enqueue(ctx, Entry{ID: id, Skill: "billing", Priority: prio, Enqueued: clock.Now()}))
		}
		if p := enq("a", 0); p != 1 {
			t.Fatalf("a position %d", p)
		}
		if p := enq("b", 0); p != 2 {
			t.Fatalf("b position %d", p)
		}
		if p := enq("vip", 10); p != 1 {
			t.Fatalf("vip position %d, want 1 (priority first)", p)
		}
		if p := enq("c", 5); p != 2 {
			t.Fatalf("c position %d, want 2", p)
		}
		if p := must[int](t)(st.Position(ctx, "billing", "a")); p != 3 {
			t.Fatalf("a is now at %d, want 3", p)
		}

		addAgent(t, st, "x", map[string]int{"billing": 1}, Available)
		var order []string
		for range 4 {
			m := must[[]Match](t)(st.Dispatch(ctx, []string{"billing"}, 10))
			if len(m) != 1 {
				t.Fatalf("dispatch with one agent matched %d", len(m))
			}
			order = append(order, m[0].Call)
			if m[0].Agent != "x" || m[0].Owner != "i1" || m[0].Skill != "billing" {
				t.Fatalf("match %+v", m[0])
			}
			must[time.Duration](t)(st.Accept(ctx, m[0].Call, "x"))
			must[string](t)(st.Complete(ctx, m[0].Call))
			must[AgentState](t)(st.SetAgentState(ctx, "x", Available, ""))
		}
		if want := []string{"vip", "c", "a", "b"}; !slices.Equal(order, want) {
			t.Fatalf("served %v, want %v", order, want)
		}
	})
}

func TestLongestIdleAgentAndProficiency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		addAgent(t, st, "novice", map[string]int{"support": 1, "billing": 9}, Available)
		clock.Add(time.Second)
		addAgent(t, st, "expert", map[string]int{"support": 9}, Available)
		clock.Add(time.Second)

		must[int](t)(st.Enqueue(ctx, Entry{ID: "c1", Skill: "support", Enqueued: clock.Now()}))
		m := must[[]Match](t)(st.Dispatch(ctx, []string{"support"}, 1))
		if len(m) != 1 || m[0].Agent != "novice" {
			t.Fatalf("idle routing gave %+v, want the longest idle (novice)", m)
		}
		// novice is reserved: no longer available for billing either.
		if n := rdb.ZCard(ctx, st.Key("avail", "billing")).Val(); n != 0 {
			t.Fatalf("reserved agent still in billing's available set (%d)", n)
		}
		if a := must[Agent](t)(st.GetAgent(ctx, "novice")); a.State != Reserved || a.Call != "c1" {
			t.Fatalf("novice: %+v", a)
		}

		if err := st.SetRouting(ctx, "support", "proficiency"); err != nil {
			t.Fatal(err)
		}
		must[int](t)(st.Requeue(ctx, "c1", "novice", Available, ""))
		clock.Add(time.Second)
		m = must[[]Match](t)(st.Dispatch(ctx, []string{"support"}, 1))
		// The requeue made novice available again; proficiency routing
		// prefers the expert whatever the idle times.
		if len(m) != 1 || m[0].Agent != "expert" {
			t.Fatalf("proficiency routing gave %+v, want expert", m)
		}
	})
}

func TestDispatchPicksBestCallerAcrossSkills(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		must[int](t)(st.Enqueue(ctx, Entry{ID: "old-support", Skill: "support", Enqueued: clock.Now()}))
		clock.Add(time.Second)
		must[int](t)(st.Enqueue(ctx, Entry{ID: "new-billing", Skill: "billing", Enqueued: clock.Now()}))
		addAgent(t, st, "both", map[string]int{"support": 5, "billing": 5}, Available)
		m := must[[]Match](t)(st.Dispatch(ctx, []string{"billing", "support"}, 5))
		if len(m) != 1 || m[0].Call != "old-support" {
			t.Fatalf("dispatch %+v, want the longest waiting caller of the agent's skills", m)
		}
	})
}

func TestAbandonWhileWaitingAndWhileOffered(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		must[int](t)(st.Enqueue(ctx, Entry{ID: "w", Skill: "billing", Enqueued: clock.Now()}))
		clock.Add(42 * time.Second)
		if prev := must[string](t)(st.Abandon(ctx, "w")); prev != "waiting" {
			t.Fatalf("abandon returned %q", prev)
		}
		snap := must[Snapshot](t)(st.Snapshot(ctx, "billing"))
		if snap.Waiting != 0 || snap.Stats.Abandoned != 1 || snap.Stats.AbandonWaitSum != 42*time.Second || snap.Stats.Offered != 1 {
			t.Fatalf("after abandon: %+v", snap)
		}
		if n := rdb.Exists(ctx, st.Key("call", "w")).Val(); n != 0 {
			t.Fatal("abandoned call hash left behind")
		}
		if prev := must[string](t)(st.Abandon(ctx, "w")); prev != "" {
			t.Fatalf("second abandon returned %q", prev)
		}

		// A call offered to an agent, then the caller hangs up: the agent is
		// available again, not stuck reserved.
		addAgent(t, st, "x", map[string]int{"billing": 1}, Available)
		must[int](t)(st.Enqueue(ctx, Entry{ID: "o", Skill: "billing", Enqueued: clock.Now()}))
		must[[]Match](t)(st.Dispatch(ctx, []string{"billing"}, 1))
		if prev := must[string](t)(st.Abandon(ctx, "o")); prev != "offered" {
			t.Fatalf("abandon of offered returned %q", prev)
		}
		a := must[Agent](t)(st.GetAgent(ctx, "x"))
		if a.State != Available || a.Call != "" {
			t.Fatalf("agent after caller left: %+v", a)
		}
		if _, err := st.Accept(ctx, "o", "x"); !errors.Is(err, ErrGone) {
			t.Fatalf("accept after caller hung up: %v, want ErrGone (no offer to a gone caller)", err)
		}
		if n := rdb.ZCard(ctx, st.Key("avail", "billing")).Val(); n != 1 {
			t.Fatalf("agent not back in the available set: %d", n)
		}
	})
}

func TestAcceptCompleteWrapUpRecordsStats(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		addAgent(t, st, "x", map[string]int{"billing": 1}, Available)
		for i, wait := range []time.Duration{5 * time.Second, 30 * time.Second} {
			id := fmt.Sprint("c", i)
			must[int](t)(st.Enqueue(ctx, Entry{ID: id, Skill: "billing", Enqueued: clock.Now()}))
			clock.Add(wait)
			must[[]Match](t)(st.Dispatch(ctx, []string{"billing"}, 1))
			if w := must[time.Duration](t)(st.Accept(ctx, id, "x")); w != wait {
				t.Fatalf("accept wait %v, want %v", w, wait)
			}
			if _, err := st.Accept(ctx, id, "x"); !errors.Is(err, ErrNotOffered) {
				t.Fatalf("second accept: %v, want ErrNotOffered (no call answered twice)", err)
			}
			if a := must[Agent](t)(st.GetAgent(ctx, "x")); a.State != OnCall {
				t.Fatalf("agent state %s", a.State)
			}
			clock.Add(100 * time.Second)
			if ag := must[string](t)(st.Complete(ctx, id)); ag != "x" {
				t.Fatalf("complete returned %q", ag)
			}
			if a := must[Agent](t)(st.GetAgent(ctx, "x")); a.State != WrapUp {
				t.Fatalf("after complete agent is %s, want wrap_up", a.State)
			}
			clock.Add(20 * time.Second) // wrap-up
			if _, err := st.SetAgentState(ctx, "x", Offline, ""); err != nil {
				t.Fatal(err)
			}
			must[AgentState](t)(st.SetAgentState(ctx, "x", Available, ""))
		}
		snap := must[Snapshot](t)(st.Snapshot(ctx, "billing"))
		s := snap.Stats
		if s.Offered != 2 || s.Answered != 2 || s.AnsweredSL != 1 || s.WaitSum != 35*time.Second {
			t.Fatalf("stats %+v", s)
		}
		if s.ServiceLevel() != 0.5 || s.AvgWait() != 17500*time.Millisecond {
			t.Fatalf("service level %v, avg wait %v", s.ServiceLevel(), s.AvgWait())
		}
		if len(snap.HandleTimes) != 2 || snap.HandleTimes[0] != 120*time.Second {
			t.Fatalf("handle times %v, want talk + wrap-up", snap.HandleTimes)
		}
		if len(snap.WrapTimes) != 2 || snap.WrapTimes[0] != 20*time.Second {
			t.Fatalf("wrap-up times %v", snap.WrapTimes)
		}
		if snap.Served != 2 || snap.Staffed() != 1 {
			t.Fatalf("served %d staffed %d", snap.Served, snap.Staffed())
		}
		// The next day starts from zero.
		clock.Add(24 * time.Hour)
		snap = must[Snapshot](t)(st.Snapshot(ctx, "billing"))
		if snap.Stats.Offered != 0 || snap.Stats.Answered != 0 {
			t.Fatalf("next day stats %+v", snap.Stats)
		}
	})
}

func TestRequeueGoesToHeadAndAgentNotReady(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		addAgent(t, st, "x", map[string]int{"billing": 1}, Available)
		must[int](t)(st.Enqueue(ctx, Entry{ID: "first", Skill: "billing", Enqueued: clock.Now()}))
		m := must[[]Match](t)(st.Dispatch(ctx, []string{"billing"}, 1))
		if len(m) != 1 {
			t.Fatal("no match")
		}
		// While the offer rings, a VIP arrives.
		clock.Add(time.Second)
		must[int](t)(st.Enqueue(ctx, Entry{ID: "vip", Skill: "billing", Priority: 10, Enqueued: clock.Now()}))
		pos := must[int](t)(st.Requeue(ctx, "first", "x", NotReady, "missed call"))
		if pos != 1 {
			t.Fatalf("requeued caller at %d, want the head", pos)
		}
		a := must[Agent](t)(st.GetAgent(ctx, "x"))
		if a.State != NotReady || a.Reason != "missed call" || a.Call != "" {
			t.Fatalf("agent %+v", a)
		}
		if cs := must[CallState](t)(st.Call(ctx, "first")); cs.State != "waiting" || cs.Agent != "" {
			t.Fatalf("call %+v", cs)
		}
	})
}

func TestAgentStateRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		if _, err := st.SetAgentState(ctx, "ghost", Available, ""); !errors.Is(err, ErrNoAgent) {
			t.Fatalf("unknown agent: %v", err)
		}
		addAgent(t, st, "x", map[string]int{"billing": 1}, Offline)
		if _, err := st.SetAgentState(ctx, "x", OnCall, ""); !errors.Is(err, ErrBadState) {
			t.Fatalf("agent chose on_call: %v", err)
		}
		must[AgentState](t)(st.SetAgentState(ctx, "x", Available, ""))
		must[int](t)(st.Enqueue(ctx, Entry{ID: "c", Skill: "billing", Enqueued: clock.Now()}))
		must[[]Match](t)(st.Dispatch(ctx, []string{"billing"}, 1))
		if _, err := st.SetAgentState(ctx, "x", Offline, ""); !errors.Is(err, ErrBusy) {
			t.Fatalf("reserved agent went offline: %v", err)
		}
		if err := st.RemoveAgent(ctx, "x"); !errors.Is(err, ErrBusy) {
			t.Fatalf("reserved agent removed: %v", err)
		}
		// Skills changed while available move the agent between sets.
		must[int](t)(st.Requeue(ctx, "c", "x", Available, ""))
		must[AgentState](t)(st.UpsertAgent(ctx, Agent{ID: "x", Skills: map[string]int{"support": 3}}))
		if n := rdb.ZCard(ctx, st.Key("avail", "billing")).Val(); n != 0 {
			t.Fatalf("agent left in billing after losing the skill")
		}
		if n := rdb.ZCard(ctx, st.Key("avail", "support")).Val(); n != 1 {
			t.Fatalf("agent not available for its new skill")
		}
		if _, err := st.UpsertAgent(ctx, Agent{ID: "bad", Skills: map[string]int{"billing": 0}}); err == nil {
			t.Fatal("proficiency 0 accepted")
		}
		if _, err := st.UpsertAgent(ctx, Agent{ID: "a:b", Skills: map[string]int{"billing": 1}}); err == nil {
			t.Fatal("id with a colon accepted")
		}
	})
}

func TestLeaveAndCallback(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		must[int](t)(st.Enqueue(ctx, Entry{ID: "a", Skill: "billing", Enqueued: clock.Now(), Fields: map[string]string{"name": "Ann"}}))
		clock.Add(time.Second)
		must[int](t)(st.Enqueue(ctx, Entry{ID: "b", Skill: "billing", Enqueued: clock.Now()}))
		if err := st.Leave(ctx, "a", LeftMenu); err != nil {
			t.Fatal(err)
		}
		if pos := must[int](t)(st.Callback(ctx, "b", "+14155550100")); pos != 1 {
			t.Fatalf("callback position %d", pos)
		}
		cbs := must[[]CallbackRequest](t)(st.Callbacks(ctx, "billing"))
		if len(cbs) != 1 || cbs[0].Number != "+14155550100" || cbs[0].ID != "b" {
			t.Fatalf("callbacks %+v", cbs)
		}
		snap := must[Snapshot](t)(st.Snapshot(ctx, "billing"))
		if snap.Waiting != 0 || snap.Stats.ToMenu != 1 || snap.Stats.Callbacks != 1 || snap.Stats.Abandoned != 0 {
			t.Fatalf("snapshot %+v", snap)
		}
		if err := st.Leave(ctx, "a", LeftMenu); !errors.Is(err, ErrGone) {
			t.Fatalf("leave twice: %v", err)
		}
	})
}

func TestOverflowMovesCallKeepingArrival(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		st := newStore(t, rdb, clock, "i1")
		start := clock.Now()
		must[int](t)(st.Enqueue(ctx, Entry{ID: "a", Skill: "billing", Enqueued: start}))
		clock.Add(time.Minute)
		must[int](t)(st.Enqueue(ctx, Entry{ID: "g", Skill: "general", Enqueued: clock.Now()}))
		// Overflow: a moves to general with its original arrival, ahead of g.
		if pos := must[int](t)(st.Enqueue(ctx, Entry{ID: "a", Skill: "general", Enqueued: start})); pos != 1 {
			t.Fatalf("overflowed caller at %d", pos)
		}
		b := must[Snapshot](t)(st.Snapshot(ctx, "billing"))
		if b.Waiting != 0 {
			t.Fatalf("billing still has %d", b.Waiting)
		}
		g := must[Snapshot](t)(st.Snapshot(ctx, "general"))
		if g.Waiting != 2 || g.LongestWait() != time.Minute {
			t.Fatalf("general %d waiting, longest %v", g.Waiting, g.LongestWait())
		}
	})
}

// TestConcurrentDispatchNeverAssignsTwice runs two independent clients
// (two "instances", each with its own connection pool and goroutines)
// enqueueing and dispatching the same queues at once: 1,000 callers, 40
// agents who take a call and come back, and every assignment counted.
func TestConcurrentDispatchNeverAssignsTwice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		prefix := randomPrefix(t)
		addr := rdb.(*redis.Client).Options().Addr
		stores := make([]*Store, 2)
		for i := range stores {
			c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 8})
			t.Cleanup(func() { c.Close() })
			stores[i] = newStoreWithPrefix(t, c, clock, fmt.Sprint("inst", i), prefix)
		}
		skills := []string{"billing", "support"}
		for i := range 40 {
			addAgent(t, stores[0], fmt.Sprint("agent", i), map[string]int{skills[i%2]: 1, "general": 1}, Available)
		}
		const callers = 1000
		var mu sync.Mutex
		matched := make(map[string]int)
		accepted := 0
		var wg sync.WaitGroup
		errc := make(chan error, 64)
		for inst, st := range stores {
			wg.Add(1)
			go func() { // this instance's callers arrive
				defer wg.Done()
				for i := range callers / 2 {
					e := Entry{ID: fmt.Sprintf("i%d-c%d", inst, i), Skill: skills[i%2], Priority: i % 3, Enqueued: clock.Now()}
					if _, err := st.Enqueue(ctx, e); err != nil {
						errc <- err
						return
					}
				}
			}()
			for range 3 { // dispatchers, which also play the agents' part
				wg.Add(1)
				go func() {
					defer wg.Done()
					idle := 0
					for idle < 200 {
						ms, err := st.Dispatch(ctx, []string{"billing", "support", "general"}, 5)
						if err != nil {
							errc <- err
							return
						}
						if len(ms) == 0 {
							idle++
							time.Sleep(time.Millisecond)
							continue
						}
						idle = 0
						for _, m := range ms {
							mu.Lock()
							matched[m.Call]++
							mu.Unlock()
							if _, err := st.Accept(ctx, m.Call, m.Agent); err != nil {
								errc <- fmt.Errorf("accept %s by %s: %w", m.Call, m.Agent, err)
								return
							}
							mu.Lock()
							accepted++
							mu.Unlock()
							if _, err := st.Complete(ctx, m.Call); err != nil {
								errc <- err
								return
							}
							if _, err := st.SetAgentState(ctx, m.Agent, Available, ""); err != nil {
								errc <- err
								return
							}
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		twice := 0
		for _, n := range matched {
			if n != 1 {
				twice++
			}
		}
		t.Logf("%d callers, %d matched, %d accepted, %d matched more than once", callers, len(matched), accepted, twice)
		if len(matched) != callers || accepted != callers || twice != 0 {
			t.Fatalf("matched %d distinct callers (want %d), accepted %d, %d assigned twice", len(matched), callers, accepted, twice)
		}
		for _, sk := range skills {
			s := must[Snapshot](t)(stores[1].Snapshot(ctx, sk))
			if s.Waiting != 0 || s.Stats.Offered != callers/2 || s.Stats.Answered != callers/2 {
				t.Fatalf("%s: %d waiting, stats %+v", sk, s.Waiting, s.Stats)
			}
		}
	})
}

// An agent logged in on one instance is only offered that instance's
// callers: the audio bridge joins caller and agent on one machine.
func TestDispatchKeepsAgentsWithTheirInstance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		prefix := randomPrefix(t)
		a := newStoreWithPrefix(t, rdb, clock, "inst-a", prefix)
		b := newStoreWithPrefix(t, rdb, clock, "inst-b", prefix)
		addAgent(t, b, "on-b", map[string]int{"billing": 1}, Available)
		if err := b.SetAgentInstance(ctx, "on-b", true); err != nil {
			t.Fatal(err)
		}
		if ag := must[Agent](t)(a.GetAgent(ctx, "on-b")); ag.Instance != "inst-b" {
			t.Fatalf("instance %q", ag.Instance)
		}
		// A's caller arrived first, B's second: the agent on B takes B's.
		must[int](t)(a.Enqueue(ctx, Entry{ID: "caller-a", Skill: "billing", Enqueued: clock.Now()}))
		clock.Add(time.Second)
		must[int](t)(b.Enqueue(ctx, Entry{ID: "caller-b", Skill: "billing", Enqueued: clock.Now()}))
		m := must[[]Match](t)(a.Dispatch(ctx, []string{"billing"}, 5))
		if len(m) != 1 || m[0].Call != "caller-b" || m[0].Agent != "on-b" || m[0].Owner != "inst-b" {
			t.Fatalf("dispatch %+v, want caller-b with on-b", m)
		}
		// An agent on no instance (a program, or a test) takes anyone.
		addAgent(t, a, "anywhere", map[string]int{"billing": 1}, Available)
		m = must[[]Match](t)(b.Dispatch(ctx, []string{"billing"}, 5))
		if len(m) != 1 || m[0].Call != "caller-a" || m[0].Agent != "anywhere" {
			t.Fatalf("dispatch %+v", m)
		}
		if err := b.SetAgentInstance(ctx, "on-b", false); err != nil {
			t.Fatal(err)
		}
		if ag := must[Agent](t)(a.GetAgent(ctx, "on-b")); ag.Instance != "" {
			t.Fatalf("instance after logout %q", ag.Instance)
		}
		// Instance B crashes with an agent logged in and available: A's
		// reconciliation logs the agent out.
		addAgent(t, a, "stranded", map[string]int{"billing": 1}, Available)
		if err := b.SetAgentInstance(ctx, "stranded", true); err != nil {
			t.Fatal(err)
		}
		if err := b.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Minute)
		if _, err := a.Reconcile(ctx, nil, clock.Now().Add(-30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if ag := must[Agent](t)(a.GetAgent(ctx, "stranded")); ag.State != Offline || ag.Instance != "" {
			t.Fatalf("agent of a crashed instance: %+v", ag)
		}
	})
}
