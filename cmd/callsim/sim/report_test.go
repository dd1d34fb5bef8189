package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// heard is a receiver that got n stamped packets of one stream (lost of
// them missing after the first), each latency after it was sent.
func heard(from Kind, stream uint16, n, lost int, latency time.Duration, start time.Time) *receiver {
	r := newReceiver(from)
	var payload [StampBytes]byte
	for i := 0; i < n+lost; i++ {
		if i > 0 && i <= lost {
			continue
		}
		sent := start.Add(time.Duration(i) * 20 * time.Millisecond)
		Stamp{Kind: from, Stream: stream, Seq: uint32(i), Sent: sent.UnixNano()}.Put(payload[:])
		r.packet(payload[:], sent.Add(latency))
	}
	return r
}

func TestBuildReport(t *testing.T) {
	t0 := time.Unix(2000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var c2a, a2c dirSum
	// ended is what a caller or agent does with its receiver when its call ends.
	ended := func(d *dirSum, r *receiver) *StreamLeg {
		d.add(&r.meter)
		return r.result()
	}
	crossed := heard(KindAgent, 0, 40, 2, time.Millisecond, at(5000))
	var other [StampBytes]byte
	Stamp{Kind: KindAgent, Stream: 7, Sent: at(5000).UnixNano()}.Put(other[:])
	crossed.packet(other[:], at(5001)) // another agent's packet: foreign, not measured
	legs := []*callerLeg{
		// Completed, joined by call_id.
		{index: 0, callID: "a", inviteAt: at(0), answeredAt: at(3), firstSoundAt: at(143), digitsAt: at(1500), outcome: Completed,
			fromAgent: ended(&a2c, heard(KindAgent, 0, 50, 0, time.Millisecond, at(5000)))},
		// Completed, joined by the caller's stamps (another call_id at the agent).
		{index: 1, callID: "b", inviteAt: at(0), answeredAt: at(5), digitsAt: at(1500), outcome: Completed, fromAgent: ended(&a2c, crossed)},
		// Completed for the caller, but the agent heard nothing.
		{index: 2, callID: "c", inviteAt: at(0), answeredAt: at(4), outcome: Completed,
			fromAgent: ended(&a2c, heard(KindAgent, 0, 50, 0, time.Millisecond, at(5000)))},
		// Timed out waiting, but the agent was connected: no audio to the caller.
		{index: 3, callID: "d", inviteAt: at(0), answeredAt: at(4), outcome: Failed, reason: ReasonNoAgent, fromAgent: ended(&a2c, newReceiver(KindAgent))},
		{index: 4, outcome: Failed, reason: ReasonRejected, status: 503, detail: "503 Service Unavailable"},
		{index: 5, callID: "f", inviteAt: at(0), answeredAt: at(4), outcome: Abandoned, fromAgent: ended(&a2c, newReceiver(KindAgent))},
	}
	agentSide := func(agent, callID string, accept, connected int, rx *receiver) agentLeg {
		l := agentLeg{agent: agent, callID: callID, acceptAt: at(accept), connected: at(connected)}
		if connected == 0 {
			l.connected = time.Time{}
		}
		l.firstAudioAt, l.fromCaller, l.stream = rx.meter.FirstAt(), ended(&c2a, rx), rx.stream
		return l
	}
	agentLegs := []agentLeg{
		agentSide("agent1", "a", 4000, 4010, heard(KindCaller, 0, 50, 0, 2*time.Millisecond, at(4020))),
		agentSide("agent2", "other-id", 4000, 4020, heard(KindCaller, 1, 48, 1, 2*time.Millisecond, at(4030))),
		agentSide("agent1", "c", 4000, 4010, newReceiver(KindCaller)),
		agentSide("agent2", "d", 4000, 4010, heard(KindCaller, 3, 10, 0, time.Millisecond, at(4015))),
		agentSide("agent2", "f", 4000, 0, newReceiver(KindCaller)), // abandoned while ringing
	}
	cfg := &Config{Target: "sip:x@y", Agents: []Account{{"agent1", "agent1"}, {"agent2", "agent2"}}}
	r := buildReport(cfg, t0, 10*time.Second, legs, agentLegs, &c2a, &a2c, &streamSum{})

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
	if c1.Agent != "agent2" || c1.CallerToAgent == nil || c1.CallerToAgent.Lost != 1 || c1.AgentToCaller.Lost != 2 || c1.AgentToCaller.Foreign != 1 {
		t.Errorf("call 1 (joined by stamps): %+v", c1)
	}
	if l := c0.CallerToAgent; l == nil || l.Packets != 50 || l.Latency.N != 50 || l.Latency.Max != 2 || math.Abs(l.Latency.P99-2) > 2.0/128 {
		t.Errorf("call 0 caller → agent: %+v", l)
	}
	if r.Setup.N != 5 || r.FirstPrompt.N != 1 || r.TimeToAgent.N != 2 {
		t.Errorf("setup %+v, first prompt %+v, time to agent %+v", r.Setup, r.FirstPrompt, r.TimeToAgent)
	}
	// Caller → agent: the joined legs a, other-id and d.
	if d := r.CallerToAgent; d.Packets != 108 || d.Lost != 1 || math.Abs(d.Latency.P50-2) > 2.0/128 || d.Latency.N != 108 || d.Jitter.N != 3 {
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
