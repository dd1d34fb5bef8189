package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"ivrd/cmd/callsim/sim"
)

// TestCallsimSmoke runs callsim's load generator against the demo: 50
// callers, twelve at a time (the demo's welcome takes 4.7 s, so fewer would
// leave the agents idle), press 1 for billing and wait for agent1 or
// agent2, who accept after 100 ms; each talks for a second and the agent
// wraps up in 200 ms. Every call must complete with audio both ways, and
// ivrd's own count must agree.
func TestCallsimSmoke(t *testing.T) {
	d := startIvrd(t, demoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	const calls = 50
	rep, err := sim.Run(ctx, sim.Config{
		Target:       "sip:support@" + d.sipAddr,
		HTTP:         "http://" + d.httpAddr,
		Agents:       []sim.Account{{User: "agent1", Password: "agent1"}, {User: "agent2", Password: "agent2"}},
		Calls:        calls,
		Concurrency:  12,
		Path:         "1",
		Talk:         time.Second,
		AcceptDelay:  100 * time.Millisecond,
		WrapUp:       200 * time.Millisecond,
		AgentTimeout: 60 * time.Second,
		Progress:     5 * time.Second,
	}, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)

	if rep.Counts.Started != calls || rep.Counts.Completed != calls {
		t.Fatalf("counts %+v, failures %v", rep.Counts, rep.Failures)
	}
	for _, c := range rep.Calls {
		// A second of talk is 50 packets each way; the caller hangs up
		// the talk time after the agent's first packet, so the agent may
		// hear a few fewer.
		if c.CallerToAgent == nil || c.CallerToAgent.Packets < 40 || c.AgentToCaller == nil || c.AgentToCaller.Packets < 40 {
			t.Errorf("call %d (%s, %s): not a second of audio both ways: caller → agent %+v, agent → caller %+v",
				c.Index, c.CallID, c.Agent, c.CallerToAgent, c.AgentToCaller)
			continue
		}
		if c.CallerToAgent.Foreign > 0 || c.AgentToCaller.Foreign > 0 {
			t.Errorf("call %d: another call's audio crossed into it: %+v %+v", c.Index, c.CallerToAgent, c.AgentToCaller)
		}
		if c.SetupMs == 0 || c.FirstPromptMs == 0 || c.TimeToAgentMs == 0 || c.AcceptToAudioMs == 0 {
			t.Errorf("call %d: a figure is missing: %+v", c.Index, c)
		}
	}
	for name, dir := range map[string]sim.Direction{"caller → agent": rep.CallerToAgent, "agent → caller": rep.AgentToCaller} {
		if dir.LossPct > 1 {
			t.Errorf("%s: %.2f%% lost on loopback", name, dir.LossPct)
		}
	}
	if r := d.queueOf("billing"); r.Answered != calls {
		t.Errorf("ivrd's billing queue answered %d, want %d", r.Answered, calls)
	}
}

// logWriter writes each line to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestCallsimFirstPrompt measures call setup through the first prompt: 30
// callers, ten at a time, each hanging up as soon as it hears the demo's
// welcome. Every call completes with a first-prompt figure, and the run
// takes seconds where callers staying the talk time would take minutes.
func TestCallsimFirstPrompt(t *testing.T) {
	d := startIvrd(t, demoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const calls = 30
	rep, err := sim.Run(ctx, sim.Config{
		Target:      "sip:support@" + d.sipAddr,
		Calls:       calls,
		Concurrency: 10,
		FirstPrompt: true,
		Talk:        30 * time.Second,
	}, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)
	if rep.Counts.Completed != calls || rep.FirstPrompt.N != calls || rep.Setup.N != calls {
		t.Fatalf("counts %+v, failures %v, first prompt %+v", rep.Counts, rep.Failures, rep.FirstPrompt)
	}
	if rep.Elapsed > 15 {
		t.Errorf("the run took %.1f s: the callers did not hang up at the first prompt", rep.Elapsed)
	}
}

// logReport writes callsim's table to the test log.
func logReport(t *testing.T, rep *sim.Report) {
	t.Helper()
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
}
