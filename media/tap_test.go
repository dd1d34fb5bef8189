package media

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// countTap counts what a Tap is given; it keeps no payload.
type countTap struct {
	mu               sync.Mutex
	from, to         int
	fromBytes        int
	toSSRC           uint32
	toSSRCs          int
	lastTo, lastFrom time.Time
}

func (c *countTap) FromCaller(p AudioPacket, at time.Time) {
	c.mu.Lock()
	c.from++
	c.fromBytes += len(p.Payload)
	c.lastFrom = at
	c.mu.Unlock()
}

func (c *countTap) ToCaller(p AudioPacket, at time.Time) {
	c.mu.Lock()
	if p.SSRC != c.toSSRC {
		c.toSSRC = p.SSRC
		c.toSSRCs++
	}
	c.to++
	c.lastTo = at
	c.mu.Unlock()
}

func (c *countTap) counts() (from, to, ssrcs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.from, c.to, c.toSSRCs
}

// TestTapBothWays: the tap sees the caller's audio (not its DTMF events,
// not duplicates) and every packet sent to the caller — prompt frames,
// silence and relayed packets — in the session's one stream; SetTap(nil)
// stops it.
func TestTapBothWays(t *testing.T) {
	checkGoroutines(t)
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	s := newSession(t, SessionConfig{Law: ULaw, DTMFType: testEventPT, Remote: peer.LocalAddr().(*net.UDPAddr)})
	tap := &countTap{}
	s.SetTap(tap)
	to := sessionAddr(s)

	st := &stream{ssrc: 9, seq: 100, ts: 1000}
	pkts := st.audio(ULaw, make([]int16, 5*FrameSamples))
	for _, b := range pkts {
		if _, err := peer.WriteToUDP(b, to); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := peer.WriteToUDP(pkts[4], to); err != nil { // a duplicate
		t.Fatal(err)
	}
	for _, b := range st.press('5', 60*time.Millisecond, true) {
		if _, err := peer.WriteToUDP(b, to); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "the caller's audio at the tap", func() bool { f, _, _ := tap.counts(); return f >= 5 })
	eventually(t, 5*time.Second, "the digit", func() bool { return s.Stats().DigitsRFC4733 == 1 })
	if f, _, _ := tap.counts(); f != 5 {
		t.Errorf("FromCaller got %d packets, want 5 (no duplicate, no events)", f)
	}

	// Prompt frames and silence.
	if err := s.Play(context.Background(), tonePrompt("t", 1000, 5)); err != nil {
		t.Fatal(err)
	}
	_, sent, _ := tap.counts()
	if sent < 5 {
		t.Errorf("ToCaller got %d packets after a 5-frame prompt", sent)
	}
	// Relayed packets.
	r := s.StartRelay()
	for i := 0; i < 5; i++ {
		if err := r.Write(AudioPacket{SSRC: 77, Sequence: uint16(i), Timestamp: uint32(i * FrameSamples), Payload: make([]byte, FrameSamples)}); err != nil {
			t.Fatal(err)
		}
	}
	r.Stop()
	_, after, ssrcs := tap.counts()
	if after < sent+5 {
		t.Errorf("ToCaller got %d packets after 5 relayed, %d before", after, sent)
	}
	if ssrcs != 1 {
		t.Errorf("ToCaller saw %d SSRCs, want the session's one stream", ssrcs)
	}
	if got := s.Stats().PacketsOut; uint64(after) > got {
		t.Errorf("ToCaller got %d packets, the session sent %d", after, got)
	}

	s.SetTap(nil)
	_, stopped, _ := tap.counts()
	time.Sleep(100 * time.Millisecond)
	if _, later, _ := tap.counts(); later > stopped+1 { // one may be in flight
		t.Errorf("SetTap(nil): %d more packets", later-stopped)
	}
}

// nopTap is a tap that does nothing, for the allocation check.
type nopTap struct{ n int }

func (t *nopTap) FromCaller(p AudioPacket, _ time.Time) { t.n += len(p.Payload) }
func (t *nopTap) ToCaller(p AudioPacket, _ time.Time)   { t.n += len(p.Payload) }

// TestTapDoesNotAllocate: the tap costs the media path no allocation.
func TestTapDoesNotAllocate(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rcv, s := newReceiver(t, SessionConfig{Law: ULaw, Remote: conn.LocalAddr().(*net.UDPAddr)})
	tap := &nopTap{}
	s.SetTap(tap)
	r := s.StartRelay()
	pkt := AudioPacket{SSRC: 5, Payload: make([]byte, FrameSamples)}
	from := &net.UDPAddr{IP: loopback, Port: 40000}
	st := &stream{ssrc: 1, seq: 2, ts: 3}
	audio := st.audio(ULaw, make([]int16, FrameSamples))[0]
	now := time.Now()
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"Relay.Write with a tap", func() {
			pkt.Timestamp += FrameSamples
			if err := r.Write(pkt); err != nil {
				t.Fatal(err)
			}
		}},
		{"packet with a tap", func() {
			now = now.Add(FrameDuration)
			st.seq++
			audio[2], audio[3] = byte(st.seq>>8), byte(st.seq)
			rcv.packet(audio, from, now, time.Time{})
		}},
	} {
		if n := testing.AllocsPerRun(200, c.f); n != 0 {
			t.Errorf("%s: %v allocations per packet", c.name, n)
		}
	}
	if tap.n == 0 {
		t.Error("the tap got nothing")
	}
}
