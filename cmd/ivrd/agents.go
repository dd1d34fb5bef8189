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
	if err == nil {
		err = reg.Register(newAgentAudio(engine))
	}
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

// agentAudio exports the agents' audio paths (rtc.Engine.Stats):
// ivrd_agent_audio_paths, ivrd_agent_audio_connected_total,
// ivrd_agent_audio_moved_total and ivrd_agent_audio_ended_total{reason}.
// Paths ended "silent" or "dtls_failed" are the ones to watch: agents
// whose network drops or blocks their audio.
type agentAudio struct {
	e                             *rtc.Engine
	paths, connected, moved, ends *prometheus.Desc
}

func newAgentAudio(e *rtc.Engine) agentAudio {
	return agentAudio{
		e:         e,
		paths:     prometheus.NewDesc("ivrd_agent_audio_paths", "Agents' audio paths open (one per agent with audio offered or connected).", nil, nil),
		connected: prometheus.NewDesc("ivrd_agent_audio_connected_total", "Agents' audio paths whose DTLS handshake completed.", nil, nil),
		moved:     prometheus.NewDesc("ivrd_agent_audio_moved_total", "Times an agent's audio followed its SRTP to a new address (a NAT gave the browser a new port).", nil, nil),
		ends: prometheus.NewDesc("ivrd_agent_audio_ended_total",
			"Agents' audio paths ended, by reason: closed (by ivrd), agent_closed (the browser closed it), silent (nothing from the browser for the ICE timeouts), dtls_failed.",
			[]string{"reason"}, nil),
	}
}

func (a agentAudio) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.paths
	ch <- a.connected
	ch <- a.moved
	ch <- a.ends
}

func (a agentAudio) Collect(ch chan<- prometheus.Metric) {
	st := a.e.Stats()
	ch <- prometheus.MustNewConstMetric(a.paths, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(a.connected, prometheus.CounterValue, float64(st.Connected))
	ch <- prometheus.MustNewConstMetric(a.moved, prometheus.CounterValue, float64(st.Moved))
	for _, r := range rtc.EndReasons {
		ch <- prometheus.MustNewConstMetric(a.ends, prometheus.CounterValue, float64(st.Ended[r]), r.String())
	}
}
