package queue

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkEnqueueMatch measures one caller's way through a loaded queue:
// 10,000 callers already waiting in three skills and 1,000 agents, all busy
// but the one who comes back each round. One op is: the agent ends wrap-up
// (available), a caller is enqueued, dispatch matches the head caller with
// that agent, the agent accepts and later completes. It reports the p99
// latency of the dispatch (the match) alone.
//
//	go test -run '^$' -bench EnqueueMatch -benchmem ./queue/
func BenchmarkEnqueueMatch(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			rdb := be.open(b)
			clock := newClock()
			st := newStore(b, rdb, clock, "bench")
			ctx := context.Background()
			skills := []string{"billing", "support", "general"}
			seedQueue(b, st, rdb, skills, 10000, 1000)

			matchTimes := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				clock.Add(time.Millisecond)
				agent := fmt.Sprint("agent", i%1000)
				if _, err := st.SetAgentState(ctx, agent, Available, ""); err != nil {
					b.Fatal(err)
				}
				if _, err := st.Enqueue(ctx, Entry{ID: fmt.Sprint("new", i), Skill: skills[i%3], Enqueued: clock.Now()}); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				ms, err := st.Dispatch(ctx, skills, 1)
				matchTimes = append(matchTimes, time.Since(t0))
				if err != nil || len(ms) != 1 || ms[0].Agent != agent {
					b.Fatalf("dispatch %v %v, want a match for %s", ms, err, agent)
				}
				if _, err := st.Accept(ctx, ms[0].Call, agent); err != nil {
					b.Fatal(err)
				}
				if _, err := st.Complete(ctx, ms[0].Call); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			slices.Sort(matchTimes)
			if n := len(matchTimes); n > 0 {
				b.ReportMetric(float64(matchTimes[n*99/100].Microseconds()), "p99-match-µs")
				b.ReportMetric(float64(matchTimes[n/2].Microseconds()), "p50-match-µs")
			}
		})
	}
}

// seedQueue fills a store with waiting callers and busy (wrap-up) agents,
// pipelined so setup takes seconds, not minutes.
func seedQueue(b *testing.B, st *Store, rdb redis.UniversalClient, skills []string, callers, agents int) {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < agents; i++ {
		id := fmt.Sprint("agent", i)
		// Every agent has all skills: the worst case for dispatch.
		if _, err := st.UpsertAgent(ctx, Agent{ID: id, Skills: map[string]int{"billing": 1 + i%10, "support": 1 + i%7, "general": 1}}); err != nil {
			b.Fatal(err)
		}
		rdb.HSet(ctx, st.Key("agent", id), "state", string(WrapUp))
	}
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	// EVALSHA in a pipeline does not fall back to EVAL: load the script.
	if err := st.s.enqueue.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	pipe := rdb.Pipeline()
	for i := 0; i < callers; i++ {
		e := Entry{ID: fmt.Sprint("w", i), Skill: skills[i%3], Priority: i % 4, Enqueued: base.Add(time.Duration(i) * time.Millisecond)}
		st.s.enqueue.Run(ctx, pipe, []string{st.Key("agents")}, append([]any{st.prefix}, st.enqueueArgs(e, true)...)...)
		if i%500 == 499 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, s := range skills {
		n += int(rdb.ZCard(ctx, st.Key("wait", s)).Val())
	}
	if n != callers {
		b.Fatalf("seeded %d waiting callers, want %d", n, callers)
	}
}
