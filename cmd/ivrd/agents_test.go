package main

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"ivrd/rtc"
)

// TestAgentAudioMetrics: /metrics carries the agents' audio paths: open
// now, and ended by reason.
func TestAgentAudioMetrics(t *testing.T) {
	e, err := rtc.NewEngine(rtc.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newAgentAudio(e))
	gather := func() (paths float64, ended map[string]float64) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		ended = map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case "ivrd_agent_audio_paths":
					paths = m.GetGauge().GetValue()
				case "ivrd_agent_audio_ended_total":
					ended[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
		return paths, ended
	}
	if paths, ended := gather(); paths != 0 || len(ended) != 4 || ended["closed"] != 0 {
		t.Errorf("idle: paths %v, ended %v; want 0 and four reasons at 0", paths, ended)
	}
	p, err := e.NewPeer("agent1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if paths, _ := gather(); paths != 1 {
		t.Errorf("paths %v with one agent's path open", paths)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if paths, ended := gather(); paths != 0 || ended["closed"] != 1 || ended["silent"] != 0 {
		t.Errorf("after Close: paths %v, ended %v", paths, ended)
	}
}
