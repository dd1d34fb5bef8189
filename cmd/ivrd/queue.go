package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ivrd/configs"
	"ivrd/queue"
	"ivrd/sip"
)

// openQueue connects to Redis (or starts the embedded store), creates the
// configured agents and skills' routing, and builds the queue. The caller
// runs q.Run and closes the backend.
func openQueue(cfg *configs.Config, log *slog.Logger, reg prometheus.Registerer) (*queue.Queue, *queue.Backend, error) {
	be, err := queue.Open(cfg.Redis.URL, log)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	st, err := queue.NewStore(be.Client, queue.StoreConfig{
		Prefix:       cfg.Redis.Prefix,
		Owner:        fmt.Sprintf("%s/%s", host, cfg.SIP.Listen),
		ServiceLevel: cfg.Queue.ServiceLevel,
		Window:       cfg.Queue.Window,
	})
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	metrics, err := queue.NewMetrics(reg)
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	skills := make(map[string]queue.SkillConfig, len(cfg.Queue.Skills))
	for name, s := range cfg.Queue.Skills {
		skills[name] = queue.SkillConfig{Routing: s.Routing, AnnounceEvery: s.AnnounceEvery}
	}
	q, err := queue.New(queue.Config{
		Store: st, Skills: skills, AnnounceEvery: cfg.Queue.AnnounceEvery,
		Estimate: queue.EstimateConfig{DefaultHandleTime: cfg.Queue.DefaultHandleTime},
		Logger:   log, Metrics: metrics,
	})
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	// The configured agents and routing are put (back) in Redis before
	// every reconciliation: at start, and after Redis lost its data.
	q.OnReconcile(func(ctx context.Context) error { return setupRedis(ctx, cfg, st) })
	if err := reg.Register(queue.NewStatsCollector(q)); err != nil {
		be.Close()
		return nil, nil, err
	}
	return q, be, nil
}

// setupRedis writes the configured routing and the agents: users with the
// agent role, from the configuration file and from Redis (`ivrd user
// add`). Existing agents keep their state; new ones start offline.
func setupRedis(ctx context.Context, cfg *configs.Config, st *queue.Store) error {
	for name, s := range cfg.Queue.Skills {
		if err := st.SetRouting(ctx, name, s.Routing); err != nil {
			return err
		}
	}
	agents, err := agentUsers(ctx, cfg, st)
	if err != nil {
		// Unreadable users are left out; the others still become agents.
		slog.Warn("agents from users", "error", err)
	}
	for _, a := range agents {
		if _, err := st.UpsertAgent(ctx, queue.Agent{ID: a.Name, Name: a.Label(), Skills: a.Skills}); err != nil {
			return err
		}
	}
	return nil
}

// admit checks the rate limits before a call takes a media port: new
// INVITEs per source address (503 with Retry-After beyond) and calls per
// caller number (486, or answered with "please call back later"). When
// Redis cannot be asked, calls are let in: a limiter must not turn
// customers away by itself failing.
func admit(lim *queue.Limiter, l configs.Limits, log *slog.Logger) sip.AdmitFunc {
	perSource := queue.Rate{N: l.InvitesPerSource.N, Per: l.InvitesPerSource.Per}
	perNumber := queue.Rate{N: l.CallsPerNumber.N, Per: l.CallsPerNumber.Per}
	return func(ctx context.Context, source string, caller sip.Identity) *sip.Rejection {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		ip := queue.SourceIP(source)
		v, err := lim.Allow(ctx, "source", ip, perSource)
		if err != nil {
			log.Warn("rate limit unavailable: call let in", "error", err)
			return nil
		}
		if !v.Allowed {
			return &sip.Rejection{Status: 503, Reason: "Service Unavailable", RetryAfter: max(time.Second, v.RetryAfter)}
		}
		if caller.Number == "" || caller.Number == "anonymous" {
			return nil
		}
		v, err = lim.Allow(ctx, "number", caller.Number, perNumber)
		if err != nil {
			log.Warn("rate limit unavailable: call let in", "error", err)
			return nil
		}
		if !v.Allowed {
			return &sip.Rejection{Status: 486, Reason: "Busy Here", RetryAfter: v.RetryAfter, Announce: l.NumberAction == "announce"}
		}
		return nil
	}
}
