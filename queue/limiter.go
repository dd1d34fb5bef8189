package queue

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Rate is a limit of N events per period; N = 0 means no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// Limiter guards admissions with GCRA limits kept in Redis (redis_rate),
// so every instance on the same Redis shares them.
type Limiter struct {
	lim    *redis_rate.Limiter
	prefix string
}

// NewLimiter returns a limiter on the store's Redis, under its prefix.
func NewLimiter(st *Store) *Limiter {
	return &Limiter{lim: redis_rate.NewLimiter(st.rdb), prefix: st.Key("limit")}
}

// Verdict is a limiter's answer.
type Verdict struct {
	Allowed    bool
	RetryAfter time.Duration // when not allowed: when the next one would be
}

// Allow takes one event for key under rate r ("source", "number", "login"
// are the kinds in use). A zero rate always allows.
func (l *Limiter) Allow(ctx context.Context, kind, key string, r Rate) (Verdict, error) {
	if r.N <= 0 || r.Per <= 0 {
		return Verdict{Allowed: true}, nil
	}
	limit := redis_rate.Limit{Rate: r.N, Burst: r.N, Period: r.Per}
	res, err := l.lim.Allow(ctx, l.prefix+":"+kind+":"+key, limit)
	if err != nil {
		return Verdict{Allowed: true}, fmt.Errorf("rate limit %s %s: %w", kind, key, err)
	}
	return Verdict{Allowed: res.Allowed > 0, RetryAfter: res.RetryAfter}, nil
}

// SourceIP returns the address part of host:port (the key of per-source
// limits).
func SourceIP(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return host
}
