package queue

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestLimiterSharedByInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		clock := newClock()
		prefix := randomPrefix(t)
		a := NewLimiter(newStoreWithPrefix(t, rdb, clock, "i1", prefix))
		b := NewLimiter(newStoreWithPrefix(t, rdb, clock, "i2", prefix))
		rate := Rate{N: 3, Per: time.Minute}
		allowed := 0
		var last Verdict
		for i := range 6 {
			lim := a
			if i%2 == 1 {
				lim = b // the other instance draws on the same budget
			}
			v, err := lim.Allow(ctx, "number", "+14155550100", rate)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed {
				allowed++
			}
			last = v
		}
		if allowed != 3 {
			t.Fatalf("allowed %d of 6 at 3/min across two instances", allowed)
		}
		if last.RetryAfter <= 0 || last.RetryAfter > time.Minute {
			t.Fatalf("retry after %v", last.RetryAfter)
		}
		// Another key has its own budget; a zero rate is no limit.
		if v, _ := a.Allow(ctx, "number", "+14155550199", rate); !v.Allowed {
			t.Fatal("another number was limited")
		}
		for range 10 {
			if v, _ := a.Allow(ctx, "source", "10.0.0.1", Rate{}); !v.Allowed {
				t.Fatal("zero rate limited")
			}
		}
	})
}

func TestSourceIP(t *testing.T) {
	for in, want := range map[string]string{"10.1.2.3:5060": "10.1.2.3", "[::1]:5060": "::1", "10.1.2.3": "10.1.2.3"} {
		if got := SourceIP(in); got != want {
			t.Errorf("SourceIP(%q) = %q, want %q", in, got, want)
		}
	}
}
