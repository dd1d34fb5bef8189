package sim

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// meterOf builds a meter that received n packets (with lost of them
// missing in between) each latency after it was sent.
func meterOf(n, lost int, latency time.Duration, start time.Time) Meter {
	var m Meter
	for i := 0; i < n+lost; i++ {
		if i > 0 && i <= lost {
			continue
		}
		sent := start.Add(time.Duration(i) * 20 * time.Millisecond)
		m.Add(Stamp{Seq: uint32(i), Sent: sent.UnixNano()}, sent.Add(latency))
	}
	return m
}

func TestBuildReport(t *testing.T) {
	t0 := time.Unix(2000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	heard := func(n, lost int) *receiver {
		r := newReceiver()
		r.stream, r.meter = 0, meterOf(n, lost, time.Millisecond, at(5000))
		return r
	}
	legs := []*callerLeg{
		// Completed, joined by call_id.
		{index: 0, callID: "a", inviteAt: at(0), answeredAt: at(3), firstSoundAt: at(143), digitsAt: at(1500), outcome: Completed, rx: heard(50, 0)},
		// Completed, joined by the caller's stamps (another call_id at the agent).
		{index: 1, callID: "b", inviteAt: at(0), answeredAt: at(5), digitsAt: at(1500), outcome: Completed, rx: heard(40, 2)},
		// Completed for the caller, but the agent heard nothing.
		{index: 2, callID: "c", inviteAt: at(0), answeredAt: at(4), outcome: Completed, rx: heard(50, 0)},
		// Timed out waiting, but the agent was connected: no audio to the caller.
		{index: 3, callID: "d", inviteAt: at(0), answeredAt: at(4), outcome: Failed, reason: ReasonNoAgent, rx: newReceiver()},
		{index: 4, outcome: Failed, reason: ReasonRejected, status: 503, detail: "503 Service Unavailable"},
		{index: 5, callID: "f", inviteAt: at(0), answeredAt: at(4), outcome: Abandoned, rx: newReceiver()},
	}
	agentLegs := []agentLeg{
		{agent: "agent1", callID: "a", acceptAt: at(4000), connected: at(4010), stream: 0, rx: meterOf(50, 0, 2*time.Millisecond, at(4020))},
		{agent: "agent2", callID: "other-id", acceptAt: at(4000), connected: at(4020), stream: 1, rx: meterOf(48, 1, 2*time.Millisecond, at(4030))},
		{agent: "agent1", callID: "c", acceptAt: at(4000), connected: at(4010), stream: -1},
		{agent: "agent2", callID: "d", acceptAt: at(4000), connected: at(4010), stream: 3, rx: meterOf(10, 0, time.Millisecond, at(4015))},
		{agent: "agent2", callID: "f", offeredAt: at(3000), stream: -1}, // abandoned while ringing
	}
	cfg := &Config{Target: "sip:x@y", Agents: []Account{{"agent1", "agent1"}, {"agent2", "agent2"}}}
	r := buildReport(cfg, t0, 10*time.Second, legs, agentLegs)

	if r.Counts != (Counts{Started: 6, Completed: 2, Abandoned: 1, Failed: 3}) {
		t.Errorf("counts %+v", r.Counts)
	}
	want := map[string]int{ReasonNoAudioToAgent: 1, ReasonNoAudioToCaller: 1, "rejected_503": 1}
	if len(r.Failures) != len(want) {
		t.Errorf("failures %v, want %v", r.Failures, want)
	}
	for k, v := range want {
		if r.Failures[k] != v {
			t.Errorf("failures %v, want %v", r.Failures, want)
		}
	}
	c0, c1 := r.Calls[0], r.Calls[1]
	if c0.Agent != "agent1" || c0.SetupMs != 3 || c0.FirstPromptMs != 140 || c0.TimeToAgentMs != 2510 || c0.AcceptToAudioMs != 22 {
		t.Errorf("call 0: %+v", c0)
	}
	if c1.Agent != "agent2" || c1.CallerToAgent == nil || c1.CallerToAgent.Lost != 1 || c1.AgentToCaller.Lost != 2 {
		t.Errorf("call 1 (joined by stamps): %+v", c1)
	}
	if r.Setup.N != 5 || r.FirstPrompt.N != 1 || r.TimeToAgent.N != 2 {
		t.Errorf("setup %+v, first prompt %+v, time to agent %+v", r.Setup, r.FirstPrompt, r.TimeToAgent)
	}
	// Caller → agent: the joined legs a, other-id and d.
	if d := r.CallerToAgent; d.Packets != 108 || d.Lost != 1 || d.Latency.P50 != 2 || d.Jitter.N != 3 {
		t.Errorf("caller → agent %+v", d)
	}
	if d := r.AgentToCaller; d.Packets != 140 || d.Lost != 2 || d.Latency.Max != 1 {
		t.Errorf("agent → caller %+v", d)
	}

	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"6 calls to sip:x@y in 10.0 s: 2 completed, 1 abandoned, 3 failed, 0 cut off",
		"call setup (INVITE → 200 OK)",
		"loss agent → caller: 2 of 142 packets (1.41%)",
		"failures: no_audio_to_agent 1 no_audio_to_caller 1 rejected_503 1",
	} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Counts != r.Counts || len(back.Calls) != 6 || back.CallerToAgent.Packets != 108 {
		t.Errorf("JSON round trip: %+v", back.Counts)
	}
}
