package rtc

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"ivrd/media"
)

// exchange has the caller and the agent talk at once, n packets each at
// the 20 ms pace, numbered from first; it returns what each side heard of
// the other within a moment after (the caller's own silence and prompts
// included).
func exchange(t *testing.T, c *caller, b *browser, first, n int, payload func(from string, i int) []byte) (agentHeard []*rtp.Packet, callerHeard []rtp.Packet) {
	t.Helper()
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for i := first; i < first+n; i++ {
		c.say(payload("caller", i))
		b.say(payload("agent", i))
		<-tick.C
	}
	end := time.After(150 * time.Millisecond)
	for {
		select {
		case pkt := <-b.heard:
			agentHeard = append(agentHeard, pkt)
		case pkt := <-c.heard:
			callerHeard = append(callerHeard, pkt)
		case <-end:
			return agentHeard, callerHeard
		}
	}
}

// markedBoth: numbered payloads, the agent's numbered from 1000.
func markedBoth(from string, i int) []byte {
	if from == "agent" {
		return marked(1000+i, media.FrameSamples)
	}
	return marked(i, media.FrameSamples)
}

// fromAgent picks the packets of the agent's voice out of what the caller
// heard (numbers from 1000), checking that everything the caller heard is
// one stream: same SSRC, sequence numbers up by one, timestamps never
// going back; and, unless the session may have played meanwhile (hold),
// nothing of the session's own between the agent's packets.
func fromAgent(t *testing.T, heard []rtp.Packet) []rtp.Packet {
	t.Helper()
	return fromAgentOf(t, heard, true)
}

func fromAgentOf(t *testing.T, heard []rtp.Packet, contiguous bool) []rtp.Packet {
	t.Helper()
	var out []rtp.Packet
	for i, pkt := range heard {
		if i > 0 {
			prev := heard[i-1]
			if pkt.SSRC != prev.SSRC || pkt.SequenceNumber != prev.SequenceNumber+1 {
				t.Fatalf("caller's packet %d: SSRC %#x seq %d after SSRC %#x seq %d", i, pkt.SSRC, pkt.SequenceNumber, prev.SSRC, prev.SequenceNumber)
			}
			if d := int32(pkt.Timestamp - prev.Timestamp - uint32(len(prev.Payload))); d < 0 {
				t.Fatalf("caller's packet %d: timestamp %d overlaps the one before (%d)", i, pkt.Timestamp, prev.Timestamp)
			}
		}
		if number(pkt.Payload) >= 1000 {
			if contiguous && len(out) > 0 && heard[i-1].SequenceNumber != out[len(out)-1].SequenceNumber {
				t.Fatalf("caller's packet %d: the session's own audio between the agent's", i)
			}
			out = append(out, pkt)
		}
	}
	return out
}

// TestBridgePassthrough: PCMU on both legs. The agent hears the caller's
// payloads byte for byte, in one stream marked at its start; the caller
// hears the agent's byte for byte in the session's own stream (same SSRC,
// sequence numbers continuing from the silence before); FirstAudio fires.
// Before the bridge neither hears the other.
func TestBridgePassthrough(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw)
	c := newCaller(t, media.ULaw)

	agentHeard, callerHeard := exchange(t, c, b, 0, 5, markedBoth)
	if len(agentHeard) != 0 || len(fromAgent(t, callerHeard)) != 0 {
		t.Fatalf("before the bridge the agent heard %d packets, the caller %d of the agent's", len(agentHeard), len(fromAgent(t, callerHeard)))
	}

	br, err := p.Bridge(c.sess)
	if err != nil {
		t.Fatal(err)
	}
	const n = 25
	agentHeard, more := exchange(t, c, b, 0, n, markedBoth)
	callerHeard = append(callerHeard, more...)
	select {
	case <-br.FirstAudio():
	default:
		t.Error("FirstAudio not closed")
	}

	if len(agentHeard) != n {
		t.Fatalf("the agent heard %d packets, the caller said %d", len(agentHeard), n)
	}
	for i, pkt := range agentHeard {
		if pkt.PayloadType != 0 || !bytes.Equal(pkt.Payload, markedBoth("caller", i)) {
			t.Fatalf("agent's packet %d: PT %d payload #%d", i, pkt.PayloadType, number(pkt.Payload))
		}
		if pkt.Marker != (i == 0) {
			t.Errorf("agent's packet %d: marker %v", i, pkt.Marker)
		}
		if i > 0 && (pkt.SequenceNumber != agentHeard[i-1].SequenceNumber+1 || pkt.Timestamp-agentHeard[i-1].Timestamp != media.FrameSamples || pkt.SSRC != agentHeard[0].SSRC) {
			t.Errorf("agent's packet %d: seq %d ts %d after seq %d ts %d", i, pkt.SequenceNumber, pkt.Timestamp, agentHeard[i-1].SequenceNumber, agentHeard[i-1].Timestamp)
		}
	}
	got := fromAgent(t, callerHeard)
	if len(got) != n {
		t.Fatalf("the caller heard %d packets of the agent's, the agent said %d", len(got), n)
	}
	for i, pkt := range got {
		if pkt.PayloadType != 0 || !bytes.Equal(pkt.Payload, markedBoth("agent", i)) || pkt.Marker != (i == 0) {
			t.Fatalf("caller's packet %d of the agent's: PT %d payload #%d marker %v", i, pkt.PayloadType, number(pkt.Payload), pkt.Marker)
		}
	}
	st := br.Stats()
	want := BridgeStats{CallerLaw: media.ULaw, AgentLaw: media.ULaw, ToAgent: n, ToCaller: n}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	br.Stop()
}

// TestBridgeTranscodes: an A-law caller and an agent that accepts only
// µ-law. Each side hears the other's audio in its own law, sample values
// within G.711's quantisation of what was said.
func TestBridgeTranscodes(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw)
	c := newCaller(t, media.ALaw)
	br, err := p.Bridge(c.sess)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	callerPCM := tone(440, n*media.FrameSamples, 0.5, 0)
	agentPCM := tone(1000, n*media.FrameSamples, 0.3, 0)
	frame := func(pcm []int16, i int) []int16 { return pcm[i*media.FrameSamples : (i+1)*media.FrameSamples] }
	agentHeard, callerHeard := exchange(t, c, b, 0, n, func(from string, i int) []byte {
		if from == "agent" {
			return encode(media.ULaw, frame(agentPCM, i))
		}
		return encode(media.ALaw, frame(callerPCM, i))
	})
	if len(agentHeard) != n {
		t.Fatalf("the agent heard %d packets", len(agentHeard))
	}
	for i, pkt := range agentHeard {
		if pkt.PayloadType != 0 {
			t.Fatalf("agent's packet %d: PT %d, want 0 (PCMU)", i, pkt.PayloadType)
		}
		closeTo(t, "agent hears", decode(media.ULaw, pkt.Payload), frame(callerPCM, i))
	}
	var fromAgentPkts []rtp.Packet
	for _, pkt := range callerHeard {
		if !isSilence(media.ALaw, pkt.Payload) {
			fromAgentPkts = append(fromAgentPkts, pkt)
		}
	}
	if len(fromAgentPkts) != n {
		t.Fatalf("the caller heard %d packets of sound", len(fromAgentPkts))
	}
	for i, pkt := range fromAgentPkts {
		if pkt.PayloadType != 8 {
			t.Fatalf("caller's packet %d: PT %d, want 8 (PCMA)", i, pkt.PayloadType)
		}
		closeTo(t, "caller hears", decode(media.ALaw, pkt.Payload), frame(agentPCM, i))
	}
	if st := br.Stats(); st.TranscodedToAgent != n || st.TranscodedToCaller != n || st.AgentLaw != media.ULaw {
		t.Errorf("Stats = %+v", st)
	}
	br.Stop()
}

// TestBridgeCallerLawToAgent: an A-law caller and an agent that accepts
// both laws but prefers µ-law: the caller's audio goes to the agent
// untouched, as PCMA; the agent's µ-law is converted for the caller.
func TestBridgeCallerLawToAgent(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw, media.ALaw)
	c := newCaller(t, media.ALaw)
	br, err := p.Bridge(c.sess)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	agentHeard, callerHeard := exchange(t, c, b, 0, n, markedBoth)
	if len(agentHeard) != n {
		t.Fatalf("the agent heard %d packets", len(agentHeard))
	}
	for i, pkt := range agentHeard {
		if pkt.PayloadType != 8 || !bytes.Equal(pkt.Payload, markedBoth("caller", i)) {
			t.Fatalf("agent's packet %d: PT %d, payload changed: %v", i, pkt.PayloadType, !bytes.Equal(pkt.Payload, markedBoth("caller", i)))
		}
	}
	var heard []rtp.Packet
	for _, pkt := range callerHeard {
		if !isSilence(media.ALaw, pkt.Payload) {
			heard = append(heard, pkt)
		}
	}
	if len(heard) != n {
		t.Fatalf("the caller heard %d packets of sound", len(heard))
	}
	for i, pkt := range heard {
		want := make([]byte, media.FrameSamples)
		media.Transcode(media.ULaw, media.ALaw, want, markedBoth("agent", i))
		if pkt.PayloadType != 8 || !bytes.Equal(pkt.Payload, want) {
			t.Fatalf("caller's packet %d: PT %d, not the agent's audio in A-law", i, pkt.PayloadType)
		}
	}
	if st := br.Stats(); st.TranscodedToAgent != 0 || st.TranscodedToCaller != n || st.AgentLaw != media.ALaw {
		t.Errorf("Stats = %+v", st)
	}
	br.Stop()
}

// TestBridgeHold: on hold neither hears the other — the caller hears the
// hold music the hub plays on the session, the agent hears nothing at all;
// off hold both hear each other again, each stream continuing, marked.
func TestBridgeHold(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw)
	c := newCaller(t, media.ULaw)
	br, err := p.Bridge(c.sess)
	if err != nil {
		t.Fatal(err)
	}
	agentHeard, callerHeard := exchange(t, c, b, 0, 5, markedBoth)
	if len(agentHeard) != 5 || len(fromAgent(t, callerHeard)) != 5 {
		t.Fatalf("before hold: %d and %d packets", len(agentHeard), len(fromAgent(t, callerHeard)))
	}
	lastToAgent := agentHeard[len(agentHeard)-1]

	br.Hold(true)
	br.Hold(true) // twice changes nothing
	music := media.NewPrompt("hold", tone(523, 100*media.FrameSamples, 0.2, 0))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.sess.Play(ctx, music)
	}()
	onHoldAgent, onHoldCaller := exchange(t, c, b, 5, 10, markedBoth)
	if len(onHoldAgent) != 0 {
		t.Errorf("on hold the agent heard %d packets", len(onHoldAgent))
	}
	if got := fromAgentOf(t, append(callerHeard, onHoldCaller...), false); len(got) != 5 {
		t.Errorf("on hold the caller heard %d more packets of the agent", len(got)-5)
	}
	musicFrames := 0
	for _, pkt := range onHoldCaller {
		if !isSilence(media.ULaw, pkt.Payload) && number(pkt.Payload) < 1000 {
			musicFrames++
		}
	}
	if musicFrames < 5 {
		t.Errorf("on hold the caller heard %d frames of music", musicFrames)
	}

	br.Hold(false)
	cancel()
	wg.Wait()
	afterAgent, afterCaller := exchange(t, c, b, 15, 5, markedBoth)
	if len(afterAgent) != 5 || !afterAgent[0].Marker || afterAgent[0].SequenceNumber != lastToAgent.SequenceNumber+1 || afterAgent[0].SSRC != lastToAgent.SSRC {
		t.Fatalf("after hold the agent heard %d packets, first marker %v seq %d (before hold %d)", len(afterAgent), len(afterAgent) > 0 && afterAgent[0].Marker, afterAgent[0].SequenceNumber, lastToAgent.SequenceNumber)
	}
	if gap := afterAgent[0].Timestamp - lastToAgent.Timestamp; gap < 10*media.FrameSamples {
		t.Errorf("the agent's timestamp moved %d over a hold of 200 ms", gap)
	}
	all := append(append(callerHeard, onHoldCaller...), afterCaller...)
	got := fromAgentOf(t, all, false)
	if len(got) != 10 || !got[5].Marker || number(got[5].Payload) != 1015 {
		t.Fatalf("after hold the caller heard %d of the agent's packets in all", len(got))
	}
	br.Stop()
	br.Hold(true) // after Stop: nothing
}

// TestBridgeStopAndNextCall: after Stop the session is the caller's
// source again (a prompt plays, the agent is not heard) and the agent
// hears nothing; a second call on the same Peer works both ways, and the
// agent's stream goes on across calls: same SSRC, next sequence number,
// timestamp moved with the time between, marker.
func TestBridgeStopAndNextCall(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw, media.ALaw)
	c1 := newCaller(t, media.ULaw)
	br1, err := p.Bridge(c1.sess)
	if err != nil {
		t.Fatal(err)
	}
	agentHeard, _ := exchange(t, c1, b, 0, 5, markedBoth)
	if len(agentHeard) != 5 {
		t.Fatalf("call 1: the agent heard %d packets", len(agentHeard))
	}
	last, lastAt := agentHeard[4], time.Now()
	br1.Stop()
	br1.Stop()

	prompt := media.NewPrompt("after", tone(800, 10*media.FrameSamples, 0.3, 0))
	played := make(chan error, 1)
	go func() { played <- c1.sess.Play(context.Background(), prompt) }()
	afterAgent, afterCaller := exchange(t, c1, b, 5, 5, markedBoth)
	if len(afterAgent) != 0 {
		t.Errorf("after Stop the agent heard %d packets", len(afterAgent))
	}
	if got := fromAgent(t, afterCaller); len(got) != 0 {
		t.Errorf("after Stop the caller heard %d packets of the agent", len(got))
	}
	promptFrames := slices.IndexFunc(afterCaller, func(pkt rtp.Packet) bool { return pkt.Marker && !isSilence(media.ULaw, pkt.Payload) })
	if promptFrames < 0 {
		t.Error("after Stop the caller did not hear the prompt start")
	}
	if err := <-played; err != nil {
		t.Errorf("Play after Stop = %v", err)
	}

	time.Sleep(100 * time.Millisecond)
	c2 := newCaller(t, media.ALaw)
	between := time.Since(lastAt)
	br2, err := p.Bridge(c2.sess)
	if err != nil {
		t.Fatal(err)
	}
	agentHeard, callerHeard := exchange(t, c2, b, 0, 5, markedBoth)
	if len(agentHeard) != 5 {
		t.Fatalf("call 2: the agent heard %d packets", len(agentHeard))
	}
	first := agentHeard[0]
	if first.SSRC != last.SSRC || first.SequenceNumber != last.SequenceNumber+1 || !first.Marker || first.PayloadType != 8 {
		t.Errorf("call 2's first packet to the agent: SSRC %#x seq %d marker %v PT %d; call 1's last: SSRC %#x seq %d", first.SSRC, first.SequenceNumber, first.Marker, first.PayloadType, last.SSRC, last.SequenceNumber)
	}
	if gap := first.Timestamp - last.Timestamp; gap < uint32(between/time.Millisecond)*8 {
		t.Errorf("the agent's timestamp moved %d samples between calls at least %v apart", gap, between)
	}
	var heard []rtp.Packet
	for _, pkt := range callerHeard {
		if !isSilence(media.ALaw, pkt.Payload) {
			heard = append(heard, pkt)
		}
	}
	if len(heard) != 5 {
		t.Errorf("call 2: the caller heard %d packets of the agent", len(heard))
	}
	br2.Stop()
}

// TestMuxTwoPeers: one UDP port for every agent; two agents connected and
// in calls at once, each hearing only its own caller.
func TestMuxTwoPeers(t *testing.T) {
	checkGoroutines(t)
	port := freeUDPPort(t)
	e := newEngine(t, Config{UDPPort: port})
	if got := e.MuxAddr().String(); got != "127.0.0.1:"+strconv.Itoa(port) {
		t.Errorf("MuxAddr = %s", got)
	}
	type leg struct {
		p  *Peer
		b  *browser
		c  *caller
		br *Bridge
	}
	var legs []*leg
	for _, agent := range []string{"agent1", "agent2"} {
		p := newTestPeer(t, e, agent)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		offer, err := p.Offer(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, cand := range sdpLines(offer, "a=candidate:") {
			if !bytes.Contains([]byte(cand), []byte(" 127.0.0.1 "+strconv.Itoa(port)+" ")) {
				t.Errorf("%s: candidate %q is not on the muxed port %d", agent, cand, port)
			}
		}
		b := newBrowser(t, media.ULaw)
		if err := p.SetAnswer(b.answer(offer)); err != nil {
			t.Fatal(err)
		}
		legs = append(legs, &leg{p: p, b: b})
	}
	for i, l := range legs {
		select {
		case <-l.p.Ready():
		case <-time.After(5 * time.Second):
			t.Fatalf("agent %d not Ready", i+1)
		}
		<-l.b.up
		l.c = newCaller(t, media.ULaw)
		br, err := l.p.Bridge(l.c.sess)
		if err != nil {
			t.Fatal(err)
		}
		l.br = br
	}
	// Both calls at once: leg k's voices are numbered k*100 (caller) and
	// 1000+k*100 (agent).
	var wg sync.WaitGroup
	results := make([][2]int, len(legs))
	for k, l := range legs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(media.FrameDuration)
			defer tick.Stop()
			for i := range 10 {
				l.c.say(marked(k*100+i, media.FrameSamples))
				l.b.say(marked(1000+k*100+i, media.FrameSamples))
				<-tick.C
			}
		}()
	}
	wg.Wait()
	time.Sleep(150 * time.Millisecond)
	for k, l := range legs {
		for len(l.b.heard) > 0 {
			pkt := <-l.b.heard
			if n := number(pkt.Payload); n/100 != k {
				t.Errorf("agent %d heard caller %d's #%d", k+1, n/100+1, n)
			}
			results[k][0]++
		}
		for len(l.c.heard) > 0 {
			pkt := <-l.c.heard
			if isSilence(media.ULaw, pkt.Payload) {
				continue
			}
			if n := number(pkt.Payload); (n-1000)/100 != k {
				t.Errorf("caller %d heard #%d", k+1, n)
			}
			results[k][1]++
		}
		if results[k] != [2]int{10, 10} {
			t.Errorf("leg %d: the agent heard %d packets, the caller %d; want 10 each", k+1, results[k][0], results[k][1])
		}
		l.br.Stop()
	}
}

// TestAcceptToFirstAudio measures, over calls on one kept-open Peer, the
// time from Bridge (the agent's accept) to the caller's first packet
// written to the agent and to its arrival at the agent's PeerConnection.
// The caller talks all along at 20 ms, as phones do, so the figure is
// mostly the wait for the caller's next packet (0–20 ms). Logged, not
// asserted.
func TestAcceptToFirstAudio(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw)
	c := newCaller(t, media.ULaw)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the caller talks
		defer wg.Done()
		tick := time.NewTicker(media.FrameDuration)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				c.say(marked(i%1000, media.FrameSamples))
			}
		}
	}()
	defer wg.Wait()
	defer cancel()

	const calls = 30
	var written, arrived []time.Duration
	for range calls {
		b.drain()
		start := time.Now()
		br, err := p.Bridge(c.sess)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-br.FirstAudio():
		case <-time.After(2 * time.Second):
			t.Fatal("no first audio within 2 s")
		}
		b.hear(time.Second)
		arrived = append(arrived, time.Since(start))
		written = append(written, br.FirstAudioDelay())
		br.Stop()
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond) // the agent's accept comes at any moment
	}
	slices.Sort(written)
	slices.Sort(arrived)
	t.Logf("accept → first caller audio written to the agent over %d calls: median %v, p90 %v, max %v",
		calls, written[calls/2], written[calls*9/10], written[calls-1])
	t.Logf("accept → first caller audio received by the agent's PeerConnection: median %v, p90 %v, max %v",
		arrived[calls/2], arrived[calls*9/10], arrived[calls-1])
}
