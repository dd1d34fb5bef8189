package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"ivrd/agents"
	"ivrd/configs"
	"ivrd/queue"
	"ivrd/recordings"
	"ivrd/rtc"
)

// openAgents starts the agents' audio engine and the agent hub, and makes
// the hub the queue's connector. Close the hub, then the engine.
func openAgents(cfg *configs.Config, q *queue.Queue, recs *recordings.Library, log *slog.Logger, reg prometheus.Registerer) (*agents.Hub, *rtc.Engine, error) {
	listen := net.ParseIP(cfg.WebRTC.ListenIP)
	if listen == nil {
		host, _, _ := net.SplitHostPort(cfg.SIP.Listen)
		listen = net.ParseIP(host)
	}
	engine, err := rtc.NewEngine(rtc.Config{
		ListenIP: listen,
		PublicIP: net.ParseIP(cfg.SIP.PublicIP),
		UDPPort:  cfg.WebRTC.UDPPort,
		PortMin:  uint16(cfg.WebRTC.Ports.Min),
		PortMax:  uint16(cfg.WebRTC.Ports.Max),
		Logger:   log,
	})
	if err != nil {
		return nil, nil, err
	}
	metrics, err := agents.NewMetrics(reg)
	if err != nil {
		engine.Close()
		return nil, nil, err
	}
	hub, err := agents.NewHub(agents.Config{
		Store:           q.Store(),
		Kick:            q.Kick,
		NewPeer:         agents.RTCPeers(engine),
		RingTimeout:     cfg.Agents.RingTimeout,
		WrapUpTimeout:   cfg.Agents.WrapUpTimeout,
		IdleGrace:       cfg.Agents.ReconnectGrace,
		CallGrace:       cfg.Agents.CallGrace,
		DeclineNotReady: cfg.Agents.DeclineNotReady,
		OnWrapUp: func(w agents.WrapUp) {
			// The disposition and notes join the call's recording.
			if recs == nil {
				return
			}
			// Not in the agent's goroutine: a slow disk must not hold it.
			go func() {
				if err := recs.WrapUp(w.CallID, w.Agent, w.Disposition, w.Notes, w.Ended); err != nil {
					log.Warn("wrap-up not added to the recording", "call_id", w.CallID, "agent", w.Agent, "error", err)
				}
			}()
		},
		Metrics: metrics,
		Logger:  log,
	})
	if err != nil {
		engine.Close()
		return nil, nil, err
	}
	q.SetConnector(hub)
	// After Redis lost its data: the configured agents first, then the
	// state of those logged in here.
	q.OnReconcile(func(ctx context.Context) error {
		if err := setupRedis(ctx, cfg, q.Store()); err != nil {
			return err
		}
		hub.Restore()
		return nil
	})
	return hub, engine, nil
}
