package media

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// relaySource is another party's stream written into a Relay: its own
// SSRC and timestamps.
type relaySource struct {
	ssrc uint32
	ts   uint32
	n    byte
}

// next returns the next packet of samples samples; every payload is
// distinct (and never silence) so the caller's side can tell them apart.
func (src *relaySource) next(samples int) AudioPacket {
	src.n++
	payload := bytes.Repeat([]byte{0x10 + src.n%0x60}, samples)
	payload[0] = src.n
	p := AudioPacket{SSRC: src.ssrc, Timestamp: src.ts, Payload: payload}
	src.ts += uint32(samples)
	return p
}

// collect reads what the peer gets for d.
func (p *peer) collect(d time.Duration) []rxPacket {
	var out []rxPacket
	end := time.After(d)
	for {
		select {
		case pkt := <-p.rx:
			out = append(out, pkt)
		case <-end:
			return out
		}
	}
}

// TestSessionRelay: prompt → relay → prompt on a real session. The caller
// gets one stream throughout — one SSRC, sequence numbers up by one,
// timestamps that continue — with the marker bit at each switch; while the
// relay runs, only relayed packets (of any size), sent as they are
// written; the prompt that was playing resumes after it, its Play having
// run on meanwhile.
func TestSessionRelay(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: p.addr()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	played := make(chan error, 1)
	long := tonePrompt("long", 440, 100) // 2 s
	go func() { played <- s.Play(ctx, long) }()
	before := []rxPacket{p.waitSound()}

	r := s.StartRelay()
	// What the paced sender sent before StartRelay returned may be in flight.
	before = append(before, p.collect(60*time.Millisecond)...)
	lastPaced := before[len(before)-1]

	src := &relaySource{ssrc: 0xABCD, ts: 123456}
	sizes := []int{160, 160, 80, 80, 240, 160, 160, 160}
	var sent []AudioPacket
	for _, n := range sizes {
		pkt := src.next(n)
		start := time.Now()
		if err := r.Write(pkt); err != nil {
			t.Fatalf("Write: %v", err)
		}
		got := p.next(time.Second)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("relayed packet took %v to arrive", d)
		}
		if !bytes.Equal(got.Payload, pkt.Payload) {
			t.Fatalf("relayed payload % x…, want % x…", got.Payload[:4], pkt.Payload[:4])
		}
		sent = append(sent, pkt)
		before = append(before, got)
		time.Sleep(time.Duration(n) * time.Second / SampleRate)
	}
	// A pause the source's timestamps do not count: the stream's
	// timestamp moves with the clock and the packet is marked.
	time.Sleep(400 * time.Millisecond)
	// The source numbers on as if it had not paused.
	pkt := src.next(160)
	if err := r.Write(pkt); err != nil {
		t.Fatal(err)
	}
	afterPause := p.next(time.Second)
	before = append(before, afterPause)
	p.none(100 * time.Millisecond) // the paced sender stays silent
	r.Stop()
	resumed := p.collect(100 * time.Millisecond)
	if len(resumed) < 3 {
		t.Fatalf("%d packets in the 100 ms after the relay stopped", len(resumed))
	}
	all := append(before, resumed...)

	// One stream throughout.
	for i := 1; i < len(all); i++ {
		prev, pkt := all[i-1], all[i]
		if pkt.SSRC != prev.SSRC || pkt.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("packet %d: SSRC %#x seq %d after SSRC %#x seq %d", i, pkt.SSRC, pkt.SequenceNumber, prev.SSRC, prev.SequenceNumber)
		}
		if d := int32(pkt.Timestamp - prev.Timestamp - uint32(len(prev.Payload))); d < 0 {
			t.Fatalf("packet %d: timestamp %d overlaps the packet before (%d + %d)", i, pkt.Timestamp, prev.Timestamp, len(prev.Payload))
		}
	}
	// Relayed: marker on the first only (until the pause), timestamps
	// spaced as the source spaced them.
	relayed := before[len(before)-len(sizes)-1:]
	first := relayed[0]
	if !first.Marker || first.SequenceNumber != lastPaced.SequenceNumber+1 {
		t.Errorf("first relayed packet: marker %v, seq %d after %d", first.Marker, first.SequenceNumber, lastPaced.SequenceNumber)
	}
	for i := 1; i < len(sizes); i++ {
		if relayed[i].Marker {
			t.Errorf("relayed packet %d marked", i)
		}
		if got, want := relayed[i].Timestamp-first.Timestamp, sent[i].Timestamp-sent[0].Timestamp; got != want {
			t.Errorf("relayed packet %d: %d samples after the first, the source said %d", i, got, want)
		}
	}
	gap := afterPause.Timestamp - relayed[len(sizes)-1].Timestamp
	if !afterPause.Marker || gap < 3000 {
		t.Errorf("after a 400 ms pause: marker %v, timestamp moved %d samples", afterPause.Marker, gap)
	}
	// Prompt again: the marker on the first frame, the tone going on (its
	// Play ran through the relay), 20 ms frames.
	if !resumed[0].Marker || isSilence(ULaw, resumed[0].Payload) || len(resumed[0].Payload) != FrameSamples {
		t.Errorf("first packet after the relay: marker %v, %d bytes, silence %v", resumed[0].Marker, len(resumed[0].Payload), isSilence(ULaw, resumed[0].Payload))
	}
	for i := 1; i < len(resumed); i++ {
		if resumed[i].Marker || resumed[i].Timestamp-resumed[i-1].Timestamp != FrameSamples {
			t.Errorf("paced packet %d: marker %v, timestamp step %d", i, resumed[i].Marker, resumed[i].Timestamp-resumed[i-1].Timestamp)
		}
	}
	if err := <-played; err != nil {
		t.Errorf("Play = %v", err)
	}
}

// TestSessionRelayWrite: what Write refuses, and that nothing goes out
// while the caller holds the call.
func TestSessionRelayWrite(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ALaw, Remote: p.addr()})
	p.next(time.Second)
	r := s.StartRelay()
	p.collect(50 * time.Millisecond)
	src := &relaySource{ssrc: 1, ts: 0}
	a, b := src.next(160), src.next(160)
	for _, pkt := range []AudioPacket{a, b} {
		if err := r.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		pkt  AudioPacket
		want error
	}{
		{"duplicate", b, ErrLatePacket},
		{"reordered", a, ErrLatePacket},
		{"too long", AudioPacket{SSRC: 1, Timestamp: 320, Payload: make([]byte, 1500)}, ErrPayloadTooLong},
	} {
		if err := r.Write(c.pkt); !errors.Is(err, c.want) {
			t.Errorf("%s: Write = %v, want %v", c.name, err, c.want)
		}
	}
	got := p.collect(50 * time.Millisecond)
	if len(got) != 2 || got[0].PayloadType != 8 || !got[0].Marker || got[1].Marker {
		t.Fatalf("got %d packets (want 2, PCMA, marker on the first): %+v", len(got), got)
	}

	s.SetSending(false)
	if err := r.Write(src.next(160)); err != nil {
		t.Errorf("Write while the caller holds = %v, want nil", err)
	}
	p.none(50 * time.Millisecond)
	s.SetSending(true)

	// A newer relay takes over; the old one is stopped.
	r2 := s.StartRelay()
	if err := r.Write(src.next(160)); !errors.Is(err, ErrRelayStopped) {
		t.Errorf("replaced relay: Write = %v, want ErrRelayStopped", err)
	}
	r.Stop() // not the active one: changes nothing
	if err := r2.Write(src.next(160)); err != nil {
		t.Errorf("new relay: Write = %v", err)
	}
	if pkt := p.next(time.Second); !pkt.Marker || len(pkt.Payload) != 160 || isSilence(ALaw, pkt.Payload) {
		t.Errorf("new relay's first packet: marker %v", pkt.Marker)
	}
	p.none(60 * time.Millisecond)
	r2.Stop()
	r2.Stop()
	if err := r2.Write(src.next(160)); !errors.Is(err, ErrRelayStopped) {
		t.Errorf("stopped relay: Write = %v, want ErrRelayStopped", err)
	}
	if pkt := p.next(time.Second); !pkt.Marker || !isSilence(ALaw, pkt.Payload) {
		t.Errorf("after the relay: marker %v, silence %v", pkt.Marker, isSilence(ALaw, pkt.Payload))
	}
}

// TestSessionAudioSink: the sink gets the caller's audio packets as they
// arrive — payload, SSRC, sequence number, timestamp — but not
// telephone-events, duplicates, packets of another payload type or from a
// foreign source; nil stops it.
func TestSessionAudioSink(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, DTMFType: testEventPT, Remote: p.addr()})
	got := make(chan AudioPacket, 64)
	s.SetAudioSink(func(pkt AudioPacket) {
		pkt.Payload = append([]byte(nil), pkt.Payload...) // the sink must not keep it
		got <- pkt
	})
	to := sessionAddr(s)
	st := &stream{ssrc: 9, seq: 100, ts: 8000}
	audio := st.audio(ULaw, tonePCM(440, 3*FrameSamples))
	p.sendAll(to, audio[:2])
	p.sendAll(to, st.press('5', 60*time.Millisecond, true))
	p.send(to, audio[1]) // duplicate
	p.send(to, st.packet(18, false, st.ts, make([]byte, 20)))
	foreign, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	if _, err := foreign.WriteToUDP(audio[2], to); err != nil {
		t.Fatal(err)
	}
	p.send(to, audio[2])

	var recv []AudioPacket
	for len(recv) < 3 {
		select {
		case pkt := <-got:
			recv = append(recv, pkt)
		case <-time.After(2 * time.Second):
			t.Fatalf("sink got %d packets, want 3", len(recv))
		}
	}
	for i, pkt := range recv {
		want, ok := parseRTP(audio[i])
		if !ok || pkt.SSRC != 9 || pkt.Sequence != want.seq || pkt.Timestamp != want.ts || !bytes.Equal(pkt.Payload, want.payload) {
			t.Errorf("sink packet %d: %+v", i, pkt)
		}
	}
	waitDigits(t, s, 1) // the event went to the digits, not the sink
	select {
	case pkt := <-got:
		t.Fatalf("sink got a packet it should not have: %+v", pkt)
	case <-time.After(100 * time.Millisecond):
	}

	s.SetAudioSink(nil)
	in := s.Stats().PacketsIn
	p.sendAll(to, st.audio(ULaw, tonePCM(440, FrameSamples)))
	eventually(t, time.Second, "the packet to be read", func() bool { return s.Stats().PacketsIn > in })
	select {
	case pkt := <-got:
		t.Fatalf("sink got a packet after SetAudioSink(nil): %+v", pkt)
	case <-time.After(50 * time.Millisecond):
	}
}

func tonePCM(freq float64, n int) []int16 {
	x := sine(freq, SampleRate, n, 0.3)
	pcm := make([]int16, n)
	for i, v := range x {
		pcm[i] = int16(v * 32767)
	}
	return pcm
}

// TestRelayPathsDoNotAllocate: per packet, writing into a relay and
// handing caller audio to a sink allocate nothing.
func TestRelayPathsDoNotAllocate(t *testing.T) {
	// A bare socket as the caller: it never reads, so it allocates nothing.
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rcv, s := newReceiver(t, SessionConfig{Law: ULaw, Remote: conn.LocalAddr().(*net.UDPAddr)})
	var sunk int
	s.SetAudioSink(func(pkt AudioPacket) { sunk += len(pkt.Payload) })
	r := s.StartRelay()
	payload := make([]byte, FrameSamples)
	pkt := AudioPacket{SSRC: 5, Payload: payload}
	from := &net.UDPAddr{IP: loopback, Port: 40000}
	st := &stream{ssrc: 1, seq: 2, ts: 3}
	audio := st.audio(ULaw, make([]int16, FrameSamples))[0]
	ss := NewSendStream(time.Now())
	now := time.Now()
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"Relay.Write", func() {
			pkt.Timestamp += FrameSamples
			if err := r.Write(pkt); err != nil {
				t.Fatal(err)
			}
		}},
		{"packet with a sink", func() {
			now = now.Add(FrameDuration)
			st.seq++
			audio[2], audio[3] = byte(st.seq>>8), byte(st.seq)
			rcv.packet(audio, from, now, time.Time{})
		}},
		{"SendStream.Frame", func() { now = now.Add(FrameDuration); ss.Frame(now, FrameSamples, false) }},
		{"SendStream.Relay", func() { pkt.Timestamp += FrameSamples; ss.Relay(time.Now(), 5, pkt.Timestamp, FrameSamples, false) }},
	} {
		if n := testing.AllocsPerRun(200, c.f); n != 0 {
			t.Errorf("%s: %v allocations per packet", c.name, n)
		}
	}
	if sunk == 0 {
		t.Error("the sink got nothing")
	}
}
