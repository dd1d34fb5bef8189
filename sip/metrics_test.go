package sip_test

import (
	"context"
	"maps"
	"strconv"
	"testing"
	"time"

	"ivrd/sip"
	"ivrd/sip/testcaller"
)

// metric is the value of one series in the harness's registry: name and
// label pairs; 0 when the series does not exist.
func (h *harness) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// responses is ivrd_sip_responses_total for one method and code.
func (h *harness) responses(t *testing.T, method string, code int) float64 {
	t.Helper()
	return h.metric(t, "ivrd_sip_responses_total", "method", method, "code", strconv.Itoa(code))
}

// wantResponses checks ivrd_sip_responses_total: every series listed
// ("INVITE 200": 1) and no other. A response is counted once it has gone
// out, so the peer may have it a moment before the registry does: the
// check waits up to two seconds for the counts to match.
func (h *harness) wantResponses(t *testing.T, want map[string]float64) {
	t.Helper()
	var got map[string]float64
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got = h.responseCounts(t)
		if maps.Equal(got, want) || time.Now().After(deadline) {
			break
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("responses %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected responses %s = %v", k, v)
		}
	}
}

// responseCounts is ivrd_sip_responses_total by "METHOD code".
func (h *harness) responseCounts(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "ivrd_sip_responses_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var method, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "method":
					method = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			got[method+" "+code] = m.GetCounter().GetValue()
		}
	}
	return got
}

// inState is ivrd_calls_in_state for one state.
func (h *harness) inState(t *testing.T, state string) float64 {
	t.Helper()
	return h.metric(t, "ivrd_calls_in_state", "state", state)
}

// wantNoCallsInState checks that no call is left in any state (and that no
// gauge went below zero on the way).
func (h *harness) wantNoCallsInState(t *testing.T) {
	t.Helper()
	for _, st := range []string{"ringing", "answered"} {
		if v := h.inState(t, st); v != 0 {
			t.Errorf("ivrd_calls_in_state{state=%q} = %v after every call ended, want 0", st, v)
		}
	}
	if v := h.metric(t, "ivrd_calls_active"); v != 0 {
		t.Errorf("ivrd_calls_active = %v, want 0", v)
	}
}

// TestCallMetrics: one call with a prompt, an INFO, two gaps in the caller's
// sequence numbers and a hang-up by the caller; then the registry has the
// responses by code, the call's state changes, the RTP counts and the loss.
func TestCallMetrics(t *testing.T) {
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
		_ = c.Media.Play(ctx, beep(300*time.Millisecond))
		<-ctx.Done()
	})
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 20*time.Second)
	call, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	if err := call.WaitSound(ctx, 0, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The handler plays only once the ACK has confirmed the call.
	if r, a := hs.inState(t, "ringing"), hs.inState(t, "answered"); r != 0 || a != 1 {
		t.Fatalf("during the call: ringing %v answered %v, want 0 and 1", r, a)
	}

	call.SkipSequence(5)
	time.Sleep(200 * time.Millisecond)
	call.SkipSequence(2)
	time.Sleep(200 * time.Millisecond)
	if st, err := call.SendInfo(ctx, '1'); err != nil || st != 200 {
		t.Fatalf("INFO: %d %v", st, err)
	}
	// RTP counters move when the call ends, not per packet.
	if v := hs.metric(t, "ivrd_rtp_packets_total", "direction", "in"); v != 0 {
		t.Fatalf("ivrd_rtp_packets_total{in} = %v during the call, want 0 (counted at the end)", v)
	}
	w := dialWire(t, "udp", hs.addr)
	w.send(options(w, "udp"))
	w.expect("SIP/2.0 200", 2*time.Second)

	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	hs.waitIdle(t)

	hs.wantResponses(t, map[string]float64{
		"INVITE 100": 1, "INVITE 180": 1, "INVITE 200": 1,
		"INFO 200": 1, "OPTIONS 200": 1, "BYE 200": 1,
	})
	hs.wantNoCallsInState(t)
	in := hs.metric(t, "ivrd_rtp_packets_total", "direction", "in")
	out := hs.metric(t, "ivrd_rtp_packets_total", "direction", "out")
	// 400 ms of waiting alone is 20 packets each way.
	if in < 20 || out < 20 {
		t.Errorf("RTP packets in %v out %v, want at least 20 each", in, out)
	}
	if b := hs.metric(t, "ivrd_rtp_bytes_total", "direction", "in"); b != in*(12+160) {
		t.Errorf("RTP bytes in %v for %v packets of 172 bytes", b, in)
	}
	if b := hs.metric(t, "ivrd_rtp_bytes_total", "direction", "out"); b != out*(12+160) {
		t.Errorf("RTP bytes out %v for %v packets of 172 bytes", b, out)
	}
	if lost := hs.metric(t, "ivrd_rtp_lost_total"); lost != 7 {
		t.Errorf("ivrd_rtp_lost_total = %v, want 7 (the caller skipped 5 and 2 sequence numbers)", lost)
	}
	if late := hs.metric(t, "ivrd_rtp_late_total"); late != 0 {
		t.Errorf("ivrd_rtp_late_total = %v, want 0", late)
	}
	for _, reason := range []string{"malformed", "wrong_type", "foreign"} {
		if v := hs.metric(t, "ivrd_rtp_dropped_total", "reason", reason); v != 0 {
			t.Errorf("ivrd_rtp_dropped_total{%s} = %v, want 0", reason, v)
		}
	}
	if got := hs.outcomes(sip.OutcomeCallerHangup); got != 1 {
		t.Errorf("caller_hangup = %v, want 1", got)
	}
}

// TestCallMetricsAddUp: the RTP counters are the sum over calls, and a
// call rejected before it started adds nothing to them or to the states.
func TestCallMetricsAddUp(t *testing.T) {
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
		_ = c.Media.Play(ctx, beep(500*time.Millisecond))
	})
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 20*time.Second)
	for i := 0; i < 3; i++ {
		call, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
		if err != nil {
			t.Fatal(err)
		}
		// Once packets flow (a skip before the first one would only move
		// where the numbering starts), 1, 2, then 3 lost.
		if err := call.WaitSound(ctx, 0, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		call.SkipSequence(i + 1)
		if err := call.WaitBye(ctx); err != nil {
			t.Fatal(err)
		}
		call.Close()
	}
	// No common codec: rejected before any port or state.
	w := dialWire(t, "udp", hs.addr)
	g729 := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 18\r\n"
	w.send(invite(w, hs.addr, "addup-488", "au1", g729))
	w.expect("SIP/2.0 488", 3*time.Second)
	hs.waitIdle(t)

	hs.wantNoCallsInState(t)
	if lost := hs.metric(t, "ivrd_rtp_lost_total"); lost != 1+2+3 {
		t.Errorf("ivrd_rtp_lost_total = %v over three calls, want 1+2+3", lost)
	}
	if out := hs.metric(t, "ivrd_rtp_packets_total", "direction", "out"); out < 3*25 {
		t.Errorf("ivrd_rtp_packets_total{out} = %v over three calls of a 500 ms prompt", out)
	}
	if hs.responses(t, "INVITE", 200) != 3 || hs.responses(t, "INVITE", 488) != 1 || hs.responses(t, "BYE", 200) != 0 {
		t.Errorf("INVITE 200 %v, INVITE 488 %v, BYE 200 %v; want 3, 1, 0 (the server hung up)",
			hs.responses(t, "INVITE", 200), hs.responses(t, "INVITE", 488), hs.responses(t, "BYE", 200))
	}
}

// TestShutdownWhileRinging: a call still ringing when the grace period
// ends gets 503 and leaves the ringing state without going below zero.
func TestShutdownWhileRinging(t *testing.T) {
	h := newDigitHandler(0)
	hs := startServer(t, h, func(c *sip.Config) { c.AnswerDelay = 10 * time.Second })
	w := dialWire(t, "udp", hs.addr)
	w.send(invite(w, hs.addr, "ringing-at-shutdown", "rs1", offerPCMU))
	w.expect("SIP/2.0 180", 2*time.Second)
	if r := hs.inState(t, "ringing"); r != 1 {
		t.Fatalf("ringing = %v while ringing, want 1", r)
	}
	grace, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- hs.srv.Shutdown(grace) }()
	res := w.expect("SIP/2.0 503", 3*time.Second)
	w.send(ack(w, hs.addr, "ringing-at-shutdown", "rs1", header(res, "To"), 1))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if hs.outcomes(sip.OutcomeShutdown) != 1 {
		t.Fatal("outcome shutdown not counted")
	}
	hs.wantResponses(t, map[string]float64{"INVITE 100": 1, "INVITE 180": 1, "INVITE 503": 1})
	hs.wantNoCallsInState(t)
}
