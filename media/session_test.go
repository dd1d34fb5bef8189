package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// Sessions are tested with real UDP sockets on loopback: a peer socket
// stands for the caller's phone, and pion/rtp (an implementation that
// shares nothing with ours) builds and parses its packets.

const testEventPT = 101

// rxPacket is a packet the peer received.
type rxPacket struct {
	rtp.Packet
	at   time.Time
	from *net.UDPAddr
}

// peer is the far end: it records every RTP packet it receives.
type peer struct {
	t    *testing.T
	conn *net.UDPConn
	rx   chan rxPacket
	done chan struct{}

	mu  sync.Mutex
	bad int // datagrams pion could not parse
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, conn: conn, rx: make(chan rxPacket, 8192), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			var pkt rtp.Packet
			if err := pkt.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
				p.mu.Lock()
				p.bad++
				p.mu.Unlock()
				continue
			}
			select {
			case p.rx <- rxPacket{Packet: pkt, at: time.Now(), from: from}:
			default:
				p.mu.Lock()
				p.bad++
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-p.done
		if p.bad > 0 {
			t.Errorf("peer %v got %d packets it could not parse or keep", conn.LocalAddr(), p.bad)
		}
	})
	return p
}

func (p *peer) addr() *net.UDPAddr { return p.conn.LocalAddr().(*net.UDPAddr) }

// next waits for the next packet.
func (p *peer) next(timeout time.Duration) rxPacket {
	p.t.Helper()
	select {
	case pkt := <-p.rx:
		return pkt
	case <-time.After(timeout):
		p.t.Fatalf("peer %v: no packet within %v", p.addr(), timeout)
		return rxPacket{}
	}
}

// none asserts that nothing arrives for d.
func (p *peer) none(d time.Duration) {
	p.t.Helper()
	select {
	case pkt := <-p.rx:
		p.t.Fatalf("peer %v got a packet (seq %d) it should not have", p.addr(), pkt.SequenceNumber)
	case <-time.After(d):
	}
}

// waitSound skips µ-law silence and returns the first packet with sound.
func (p *peer) waitSound() rxPacket {
	p.t.Helper()
	for range 100 {
		if pkt := p.next(time.Second); !isSilence(ULaw, pkt.Payload) {
			return pkt
		}
	}
	p.t.Fatal("2 s of silence, no prompt")
	return rxPacket{}
}

// drain throws away what has arrived so far.
func (p *peer) drain() {
	for {
		select {
		case <-p.rx:
		default:
			return
		}
	}
}

func (p *peer) send(to *net.UDPAddr, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDP(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// stream is one RTP source at the peer: SSRC, sequence and timestamp.
type stream struct {
	ssrc uint32
	seq  uint16
	ts   uint32
}

func (st *stream) packet(pt uint8, marker bool, ts uint32, payload []byte) []byte {
	h := rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: st.seq, Timestamp: ts, SSRC: st.ssrc}
	st.seq++
	b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// audio returns the packets of pcm in law l, 20 ms each.
func (st *stream) audio(l Law, pcm []int16) [][]byte {
	var out [][]byte
	for len(pcm) > 0 {
		n := min(len(pcm), FrameSamples)
		payload := make([]byte, n)
		EncodeFrame(l, payload, pcm[:n])
		out = append(out, st.packet(l.PayloadType(), false, st.ts, payload))
		st.ts += uint32(n)
		pcm = pcm[n:]
	}
	return out
}

// press returns the packets of one key press sent as RFC 4733 events.
func (st *stream) press(key byte, d time.Duration, marker bool) [][]byte {
	var out [][]byte
	for i, p := range press(st.ts, key, d) {
		out = append(out, st.packet(testEventPT, marker && i == 0, p.ts, p.payload()))
	}
	st.ts += uint32(d*SampleRate/time.Second) + 800
	return out
}

func (p *peer) sendAll(to *net.UDPAddr, packets ...[][]byte) {
	p.t.Helper()
	for _, ps := range packets {
		for _, b := range ps {
			p.send(to, b)
		}
	}
}

// newSession starts a session on loopback; it is closed when the test ends.
func newSession(t *testing.T, cfg SessionConfig) *Session {
	t.Helper()
	if cfg.Ports == nil {
		cfg.Ports = newTestPool(t, 2)
	}
	cfg.LocalIP = loopback
	cfg.Logger = discard
	s, err := NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Start()
	return s
}

func sessionAddr(s *Session) *net.UDPAddr { return &net.UDPAddr{IP: loopback, Port: s.LocalPort()} }

// waitDigits reads n digits.
func waitDigits(t *testing.T, s *Session, n int) []Digit {
	t.Helper()
	var out []Digit
	for len(out) < n {
		select {
		case d := <-s.Digits():
			out = append(out, d)
		case <-time.After(3 * time.Second):
			t.Fatalf("got %d digits %v, want %d", len(out), out, n)
		}
	}
	return out
}

func keys(ds []Digit) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteByte(d.Key)
	}
	return b.String()
}

// noMoreDigits asserts the digit channel is empty.
func noMoreDigits(t *testing.T, s *Session) {
	t.Helper()
	select {
	case d := <-s.Digits():
		t.Fatalf("unexpected digit %q (%v)", d.Key, d.Source)
	default:
	}
}

// tonePrompt is a prompt of n frames of a sine at freq Hz.
func tonePrompt(name string, freq float64, frames int) *Prompt {
	x := sine(freq, SampleRate, frames*FrameSamples, 0.3)
	pcm := make([]int16, len(x))
	for i, v := range x {
		pcm[i] = int16(v * 32767)
	}
	return NewPrompt(name, pcm)
}

func isSilence(l Law, payload []byte) bool {
	return len(payload) == FrameSamples && bytes.Count(payload, []byte{l.Silence()}) == FrameSamples
}

// TestSessionStream plays two prompts and silence and checks the stream
// the caller gets: one SSRC, sequence numbers and timestamps continuous
// across prompts and silence, the marker bit on the first packet of each
// prompt, the prompts' frames in order, and a 20 ms pace.
func TestSessionStream(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: p.addr()})
	a := tonePrompt("a", 440, 40)
	b := tonePrompt("b", 1000, 30)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := s.Play(ctx, a); err != nil {
		t.Fatalf("Play(a) = %v", err)
	}
	outA := s.Stats().PacketsOut
	if err := s.Play(ctx, b); err != nil {
		t.Fatalf("Play(b) = %v", err)
	}
	outB := s.Stats().PacketsOut

	const total = 120
	var got []rxPacket
	for len(got) < total {
		got = append(got, p.next(time.Second))
	}

	// Every packet: version 2, PCMU, 160 bytes, one SSRC, and sequence
	// and timestamp moving on together.
	first := got[0]
	skips := 0
	for i, pkt := range got {
		if pkt.Version != 2 || pkt.PayloadType != 0 || len(pkt.Payload) != FrameSamples || pkt.Padding || pkt.Extension || len(pkt.CSRC) != 0 {
			t.Fatalf("packet %d: %v", i, pkt.Header)
		}
		if pkt.SSRC != first.SSRC {
			t.Fatalf("packet %d: SSRC %#x, the stream began with %#x", i, pkt.SSRC, first.SSRC)
		}
		if !pkt.from.IP.Equal(loopback) || pkt.from.Port != s.LocalPort() {
			t.Fatalf("packet %d from %v, want the session's port %d", i, pkt.from, s.LocalPort())
		}
		if i == 0 {
			continue
		}
		prev := got[i-1]
		if pkt.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, pkt.SequenceNumber, prev.SequenceNumber)
		}
		// A sender that fell far behind (a stalled machine) skips ahead
		// and moves the timestamp by the time skipped: whole frames.
		step := pkt.Timestamp - prev.Timestamp
		if step == 0 || step%FrameSamples != 0 {
			t.Fatalf("packet %d: timestamp %d after %d", i, pkt.Timestamp, prev.Timestamp)
		}
		if step != FrameSamples {
			skips++
		}
	}
	if skips > 0 {
		t.Logf("the sender skipped ahead %d times (a busy machine)", skips)
	}

	// Silence, prompt a with the marker on its first frame, maybe a
	// silent frame or two, prompt b likewise, silence.
	i := 0
	for i < len(got) && isSilence(ULaw, got[i].Payload) {
		if got[i].Marker {
			t.Errorf("packet %d: marker on silence", i)
		}
		i++
	}
	expectPrompt := func(pr *Prompt) (last int) {
		t.Helper()
		for f, frame := range pr.Frames(ULaw) {
			if i >= len(got) {
				t.Fatalf("stream ended in prompt %s frame %d", pr.Name(), f)
			}
			if !bytes.Equal(got[i].Payload, frame) {
				t.Fatalf("packet %d: not frame %d of prompt %s", i, f, pr.Name())
			}
			if got[i].Marker != (f == 0) {
				t.Errorf("packet %d (prompt %s frame %d): marker %v", i, pr.Name(), f, got[i].Marker)
			}
			i++
		}
		return i - 1
	}
	if i > 5 {
		t.Errorf("%d packets of silence before the prompt that was started at once", i)
	}
	lastA := expectPrompt(a)
	gapStart := i
	for i < len(got) && isSilence(ULaw, got[i].Payload) {
		i++
	}
	if gap := i - gapStart; gap > 3 {
		t.Errorf("%d silent packets between two Plays in a row", gap)
	}
	lastB := expectPrompt(b)
	for ; i < len(got); i++ {
		if !isSilence(ULaw, got[i].Payload) || got[i].Marker {
			t.Fatalf("packet %d after the prompts: not plain silence", i)
		}
	}

	// Play returns once its last frame has been sent, not before (packet
	// k of the stream is the session's (k+1)th), and not long after.
	for _, c := range []struct {
		name      string
		out       uint64
		lastFrame int
	}{{"a", outA, lastA}, {"b", outB, lastB}} {
		if c.out < uint64(c.lastFrame+1) {
			t.Errorf("Play(%s) returned after %d packets, before its last frame (packet %d) went out", c.name, c.out, c.lastFrame+1)
		}
		if c.out > uint64(c.lastFrame+1+10) {
			t.Errorf("Play(%s) returned %d packets after its last frame", c.name, c.out-uint64(c.lastFrame+1))
		}
	}

	// Pace without drift: the RTP clock keeps up with the wall clock (a
	// sender that stalled skips ahead rather than falling behind), and the
	// sender never runs ahead of real time (no bursts). How evenly packets
	// leave on a busy machine is a benchmark's business, not this test's.
	last := got[len(got)-1]
	wall := last.at.Sub(got[0].at)
	rtpSpan := time.Duration(last.Timestamp-got[0].Timestamp) * time.Second / SampleRate
	if d := rtpSpan - wall; d < -200*time.Millisecond || d > 200*time.Millisecond {
		t.Errorf("over %v the RTP clock moved %v: drift %v", wall, rtpSpan, d)
	}
	if max := int(wall/FrameDuration) + 3; len(got)-1 > max {
		t.Errorf("%d packets in %v: faster than one per 20 ms", len(got)-1, wall)
	}
	s.Close() // so that the counters stand still
	st := s.Stats()
	if st.PacketsOut < total || st.BytesOut != st.PacketsOut*(12+FrameSamples) {
		t.Errorf("stats: %d packets, %d bytes out", st.PacketsOut, st.BytesOut)
	}
}

func TestSessionALawStream(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ALaw, Remote: p.addr()})
	pr := tonePrompt("a", 697, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Play(ctx, pr); err != nil {
		t.Fatal(err)
	}
	var frames int
	for n := 0; frames < 3; n++ {
		if n > 50 {
			t.Fatal("the prompt never came")
		}
		pkt := p.next(time.Second)
		if pkt.PayloadType != 8 {
			t.Fatalf("payload type %d on a PCMA session", pkt.PayloadType)
		}
		if isSilence(ALaw, pkt.Payload) {
			if frames > 0 {
				t.Fatal("silence inside the prompt")
			}
			continue
		}
		if !bytes.Equal(pkt.Payload, pr.Frames(ALaw)[frames]) {
			t.Fatalf("frame %d is not the prompt's A-law frame", frames)
		}
		frames++
	}
}

// TestSessionPlayMany: one Play of several prompts plays them back to back
// with one marker.
func TestSessionPlayMany(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: p.addr()})
	a, b, c := tonePrompt("a", 500, 2), tonePrompt("b", 600, 1), tonePrompt("c", 700, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Play(ctx, a, NewPrompt("empty", nil), b, c); err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for _, pr := range []*Prompt{a, b, c} {
		want = append(want, pr.Frames(ULaw)...)
	}
	pkt := p.waitSound()
	for i, f := range want {
		if i > 0 {
			pkt = p.next(time.Second)
		}
		if !bytes.Equal(pkt.Payload, f) || pkt.Marker != (i == 0) {
			t.Fatalf("packet %d: marker %v, frame matches %v", i, pkt.Marker, bytes.Equal(pkt.Payload, f))
		}
	}
	if pkt := p.next(time.Second); !isSilence(ULaw, pkt.Payload) {
		t.Error("no silence after the prompts")
	}
	// A Play of nothing returns at once.
	if err := s.Play(ctx); err != nil {
		t.Errorf("Play() = %v", err)
	}
}

// seqIndex maps packets to their place in the session's output.
type seqIndex struct{ seq0 uint16 }

func (x seqIndex) of(pkt rxPacket) int { return int(pkt.SequenceNumber - x.seq0) }

func TestSessionPlayCancelled(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: p.addr()})
	idx := seqIndex{p.next(time.Second).SequenceNumber} // the peer listened before Start: this is packet 0
	long := tonePrompt("long", 440, 250)                // 5 s

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Play(ctx, long) }()
	// Wait until it plays.
	p.waitSound()

	// A Play whose context is already over returns its error at once and
	// leaves the one that is playing alone.
	dead, deadCancel := context.WithCancel(context.Background())
	deadCancel()
	for range 50 {
		if err := s.Play(dead, tonePrompt("x", 1000, 1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Play with a cancelled context = %v", err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the playing prompt ended (%v) when a Play with a dead context was called", err)
	case <-time.After(60 * time.Millisecond):
	}

	// Cancelling the playing one ends it with ctx.Err() at a frame
	// boundary; from then on the caller hears silence.
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Play = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled Play did not return")
	}
	stoppedAt := int(s.Stats().PacketsOut)
	for {
		pkt := p.next(time.Second)
		i := idx.of(pkt)
		if i >= stoppedAt && !isSilence(ULaw, pkt.Payload) {
			t.Fatalf("packet %d, after the cancelled Play returned at %d, still carries the prompt", i, stoppedAt)
		}
		if i > stoppedAt+5 {
			break
		}
	}

	// A deadline ends it the same way.
	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	if err := s.Play(dctx, long); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Play past its deadline = %v", err)
	}
}

func TestSessionPlayReplaces(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: p.addr()})
	long := tonePrompt("long", 440, 250)
	short := tonePrompt("short", 1000, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	first := make(chan error, 1)
	go func() { first <- s.Play(ctx, long) }()
	p.waitSound()
	if err := s.Play(ctx, short); err != nil {
		t.Fatalf("the newer Play = %v", err)
	}
	select {
	case err := <-first:
		if !errors.Is(err, errPreempted) {
			t.Errorf("the replaced Play = %v, want errPreempted", err)
		}
	default:
		t.Fatal("the replaced Play had not returned when the newer one finished")
	}

	// In the stream: long's frames, then short's with the marker, then
	// silence, never long again.
	state := "long"
	sf := 0
	for state != "done" {
		pkt := p.next(time.Second)
		switch {
		case state == "long" && bytes.Equal(pkt.Payload, short.Frames(ULaw)[0]):
			if !pkt.Marker {
				t.Error("no marker where the newer prompt starts")
			}
			state, sf = "short", 1
		case state == "long":
			if isSilence(ULaw, pkt.Payload) {
				t.Fatal("silence between the replaced prompt and its replacement")
			}
		case state == "short" && sf < len(short.Frames(ULaw)):
			if !bytes.Equal(pkt.Payload, short.Frames(ULaw)[sf]) || pkt.Marker {
				t.Fatalf("frame %d of the newer prompt wrong", sf)
			}
			sf++
		case state == "short":
			if !isSilence(ULaw, pkt.Payload) {
				t.Fatal("the replaced prompt came back")
			}
			state = "done"
		}
	}
}

// TestSessionPlayHandoff: a Play waits for the pacer to take it at the next
// frame; until then a newer Play replaces it, and one whose context ends
// withdraws, so that the pacer never starts it. A session not started yet
// holds the handoff still.
func TestSessionPlayHandoff(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s, err := NewSession(SessionConfig{Ports: newTestPool(t, 1), LocalIP: loopback, Logger: discard, Law: ULaw, Remote: p.addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := tonePrompt("a", 440, 3), tonePrompt("b", 1000, 3)

	first := make(chan error, 1)
	go func() { first <- s.Play(ctx, a) }()
	eventually(t, time.Second, "the Play to be handed over", func() bool { return s.pending.Load() != nil })
	bctx, bcancel := context.WithCancel(ctx)
	second := make(chan error, 1)
	go func() { second <- s.Play(bctx, b) }()
	select {
	case err := <-first:
		if !errors.Is(err, errPreempted) {
			t.Errorf("the Play replaced before it started = %v, want errPreempted", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the replaced Play did not return")
	}
	bcancel()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the withdrawn Play = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a Play cancelled before the pacer took it did not return")
	}
	if s.pending.Load() != nil {
		t.Error("the withdrawn Play is still waiting for the pacer")
	}

	s.Start()
	for i := range 5 {
		if pkt := p.next(time.Second); !isSilence(ULaw, pkt.Payload) {
			t.Fatalf("packet %d carries sound: a replaced or withdrawn Play was started", i)
		}
	}
	if err := s.Play(ctx, a); err != nil {
		t.Fatalf("Play after Start = %v", err)
	}
	pkt := p.waitSound()
	if !bytes.Equal(pkt.Payload, a.Frames(ULaw)[0]) || !pkt.Marker {
		t.Errorf("the prompt started without its first frame (%v) or marker (%v)", bytes.Equal(pkt.Payload, a.Frames(ULaw)[0]), pkt.Marker)
	}
}

func TestSessionPlayClosed(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: p.addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Play(ctx, tonePrompt("long", 440, 250)) }()
	p.waitSound()
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrSessionClosed) {
			t.Errorf("Play during Close = %v, want ErrSessionClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Play did not return on Close")
	}
	if err := s.Play(ctx, tonePrompt("x", 440, 1)); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Play after Close = %v, want ErrSessionClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	p.drain()
	p.none(100 * time.Millisecond)
}

// TestSessionClose: Close frees the port for the next call and leaves no
// goroutine behind.
func TestSessionClose(t *testing.T) {
	checkGoroutines(t)
	pool := newTestPool(t, 1)
	cfg := SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard}
	s1, err := NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s1.Start()
	s1.Start() // twice does nothing
	port := s1.LocalPort()
	if _, err := NewSession(cfg); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("second session on a one-port pool: %v, want ErrNoPorts", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if pool.InUse() != 0 {
		t.Errorf("InUse() = %d after Close", pool.InUse())
	}
	// The socket is really gone: the port can be bound again.
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback, Port: port})
	if err != nil {
		t.Fatalf("port %d still bound after Close: %v", port, err)
	}
	c.Close()
	s2, err := NewSession(cfg)
	if err != nil {
		t.Fatalf("session after Close: %v", err)
	}
	if s2.LocalPort() != port {
		t.Errorf("port %d, want the freed %d", s2.LocalPort(), port)
	}
	// A session closed without ever starting releases its port too.
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if pool.InUse() != 0 {
		t.Errorf("InUse() = %d after closing an unstarted session", pool.InUse())
	}
	if _, err := NewSession(SessionConfig{}); err == nil {
		t.Error("NewSession without a pool succeeded")
	}
}

// TestSessionManyCalls: sessions opened and closed in parallel leave
// nothing behind.
func TestSessionManyCalls(t *testing.T) {
	checkGoroutines(t)
	pool := newTestPool(t, 8)
	p := newPeer(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Remote: p.addr()})
			if err != nil {
				t.Error(err)
				return
			}
			s.Start()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Play(ctx, tonePrompt("x", 440, 2)); err != nil {
				t.Error(err)
			}
			s.Close()
		}()
	}
	wg.Wait()
	if pool.InUse() != 0 {
		t.Errorf("InUse() = %d", pool.InUse())
	}
}

// TestSessionDropsGarbage: datagrams that are not RTP, or RTP of a type not
// negotiated, are counted and dropped, latch nothing, and the session goes
// on working.
func TestSessionDropsGarbage(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	stranger := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
	to := sessionAddr(s)

	hdr := func(b0, b1 byte, rest ...byte) []byte {
		return append([]byte{b0, b1, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}, rest...)
	}
	malformed := [][]byte{
		{},
		{0x80},
		[]byte("hello, this is not RTP"),
		hdr(0x80, 0)[:11],                  // header cut short
		hdr(0x40, 0, make([]byte, 160)...), // version 1
		hdr(0x00, 0, make([]byte, 160)...), // version 0
		hdr(0xC0, 0, make([]byte, 160)...), // version 3
		hdr(0xA0, 0, append(make([]byte, 159), 0)...),                  // padding of length 0
		hdr(0xA0, 0, append(make([]byte, 159), 200)...),                // padding longer than the payload
		hdr(0x8F, 0, make([]byte, 20)...),                              // 15 CSRCs announced, 5 present
		hdr(0x90, 0, 0xBE, 0xDE),                                       // extension header cut short
		hdr(0x90, 0, append([]byte{0xBE, 0xDE, 0, 50}, 1, 2, 3, 4)...), // extension longer than the packet
	}
	wrongType := [][]byte{
		hdr(0x80, 8, make([]byte, 160)...),      // PCMA on a PCMU session
		hdr(0x80, 18, make([]byte, 20)...),      // G.729
		hdr(0x80, 13, 40),                       // comfort noise
		hdr(0x80, 100, 1, 0, 0, 160),            // telephone-event on a type not negotiated
		hdr(0x80, 0x80|96, make([]byte, 10)...), // dynamic type with the marker bit
	}
	// The stranger sends all of it first: none of it may latch.
	for _, b := range append(malformed, wrongType...) {
		stranger.send(to, b)
	}
	st := &stream{ssrc: 0xCAFE, seq: 100, ts: 8000}
	p.sendAll(to, st.press('4', 100*time.Millisecond, true))
	if got := keys(waitDigits(t, s, 1)); got != "4" {
		t.Fatalf("digits %q", got)
	}
	// The digit comes with the first end packet; its repeats may still
	// be on the way.
	want := uint64(len(press(0, '4', 100*time.Millisecond)))
	eventually(t, time.Second, "the press's last packets", func() bool { return s.Stats().PacketsIn >= want })
	stats := s.Stats()
	if stats.Malformed != uint64(len(malformed)) || stats.WrongType != uint64(len(wrongType)) {
		t.Errorf("Malformed %d, WrongType %d; want %d and %d", stats.Malformed, stats.WrongType, len(malformed), len(wrongType))
	}
	if stats.PacketsIn != want {
		t.Errorf("PacketsIn %d, want %d (the press only)", stats.PacketsIn, want)
	}
	// The session latched to the peer, not to the stranger.
	if pkt := p.next(time.Second); pkt.PayloadType != 0 {
		t.Errorf("peer got payload type %d", pkt.PayloadType)
	}
	stranger.none(100 * time.Millisecond)

	// Garbage from the latched address itself changes nothing either.
	for _, b := range malformed {
		p.send(to, b)
	}
	p.sendAll(to, st.press('5', 100*time.Millisecond, true))
	if got := keys(waitDigits(t, s, 1)); got != "5" {
		t.Fatalf("digits %q after garbage", got)
	}
	if got := s.Stats().Malformed; got != 2*uint64(len(malformed)) {
		t.Errorf("Malformed %d, want %d", got, 2*len(malformed))
	}
}

// TestSessionLatching: the session sends to the SDP address until a packet
// arrives, then to wherever packets come from (symmetric RTP, for callers
// behind NAT), without a break in the stream.
func TestSessionLatching(t *testing.T) {
	checkGoroutines(t)
	sdp := newPeer(t)
	real := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: sdp.addr()})
	before := sdp.next(time.Second)
	for range 3 {
		before = sdp.next(time.Second)
	}
	real.none(30 * time.Millisecond)

	st := &stream{ssrc: 1, seq: 1, ts: 160}
	real.sendAll(sessionAddr(s), st.audio(ULaw, make([]int16, 160)))
	after := real.next(time.Second)
	// Everything the SDP address got came before; the stream just moved.
	var last uint16 = before.SequenceNumber
	for {
		select {
		case pkt := <-sdp.rx:
			last = pkt.SequenceNumber
			if pkt.SSRC != after.SSRC {
				t.Fatal("SSRC changed when the stream moved")
			}
			continue
		case <-time.After(60 * time.Millisecond):
		}
		break
	}
	if after.SequenceNumber != last+1 || after.SSRC != before.SSRC {
		t.Errorf("stream moved from seq %d to %d, SSRC %#x to %#x", last, after.SequenceNumber, before.SSRC, after.SSRC)
	}
	sdp.none(100 * time.Millisecond)
	if s.LastReceived().IsZero() {
		t.Error("LastReceived is zero after a packet")
	}
}

// TestSessionWaitsForAddress: with no usable address in the SDP (none, or
// 0.0.0.0 for hold) nothing is sent until the caller's first packet.
func TestSessionWaitsForAddress(t *testing.T) {
	for _, remote := range []*net.UDPAddr{nil, {IP: net.IPv4zero, Port: 4000}} {
		t.Run(remote.String(), func(t *testing.T) {
			checkGoroutines(t)
			p := newPeer(t)
			s := newSession(t, SessionConfig{Law: ULaw, Remote: remote})
			p.none(100 * time.Millisecond)
			if n := s.Stats().PacketsOut; n != 0 {
				t.Errorf("%d packets sent to nowhere", n)
			}
			st := &stream{ssrc: 1, seq: 1, ts: 160}
			p.sendAll(sessionAddr(s), st.audio(ULaw, make([]int16, 160)))
			pkt := p.next(time.Second)
			if !pkt.from.IP.Equal(loopback) {
				t.Errorf("from %v", pkt.from)
			}
		})
	}
}

// TestSessionForeignSource: while latched, packets from another address
// are counted and dropped, and their digits are not the caller's.
func TestSessionForeignSource(t *testing.T) {
	checkGoroutines(t)
	caller := newPeer(t)
	intruder := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
	to := sessionAddr(s)
	cs := &stream{ssrc: 10, seq: 1, ts: 160}
	caller.sendAll(to, cs.audio(ULaw, make([]int16, 320)))
	caller.next(time.Second) // latched

	is := &stream{ssrc: 20, seq: 1, ts: 160}
	bad := is.press('7', 100*time.Millisecond, true)
	intruder.sendAll(to, bad, is.audio(ULaw, make([]int16, 160)))
	caller.sendAll(to, cs.press('3', 100*time.Millisecond, true))
	if got := keys(waitDigits(t, s, 1)); got != "3" {
		t.Fatalf("digits %q, want the caller's 3 only", got)
	}
	noMoreDigits(t, s)
	if got := s.Stats().Foreign; got != uint64(len(bad)+1) {
		t.Errorf("Foreign %d, want %d", got, len(bad)+1)
	}
	intruder.none(100 * time.Millisecond)
	caller.next(time.Second)
}

// TestSessionRFC4733 with telephone-event negotiated: digits come from
// events, marker bit or not; in-band tones are ignored so that a phone
// sending both does not press twice.
func TestSessionRFC4733(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
	to := sessionAddr(s)
	st := &stream{ssrc: 0xABC, seq: 65530, ts: 0xFFFFF000} // both wrap during the test
	p.sendAll(to,
		st.audio(ULaw, concat(GenerateDTMF('5', 200*time.Millisecond, 0.3), silence(100*time.Millisecond))),
		st.press('1', 100*time.Millisecond, true),
		st.press('2', 100*time.Millisecond, true),
		st.audio(ULaw, silence(40*time.Millisecond)),
		st.press('#', 300*time.Millisecond, false), // a phone that never sets the marker
		st.press('#', 80*time.Millisecond, false),  // the same key again
		st.press('9', 100*time.Millisecond, true),
	)
	ds := waitDigits(t, s, 5)
	if got := keys(ds); got != "12##9" {
		t.Errorf("digits %q, want \"12##9\"", got)
	}
	for _, d := range ds {
		if d.Source != DigitRFC4733 {
			t.Errorf("digit %q from %v", d.Key, d.Source)
		}
	}
	if ds[2].Duration != 0 {
		t.Errorf("duration %v from a first packet of duration 0", ds[2].Duration)
	}
	noMoreDigits(t, s)
	if st := s.Stats(); st.DigitsRFC4733 != 5 || st.DigitsIn != 0 {
		t.Errorf("stats %d RFC 4733, %d in-band digits", st.DigitsRFC4733, st.DigitsIn)
	}
}

// TestSessionRFC4733NewStream: when the caller's stream changes (a new
// SSRC after a transfer or re-INVITE, with timestamps starting anywhere),
// its digits still count.
func TestSessionRFC4733NewStream(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
	to := sessionAddr(s)
	a := &stream{ssrc: 0x1111, seq: 10, ts: 2_000_000_000}
	b := &stream{ssrc: 0x2222, seq: 500, ts: 1000} // "older" timestamps
	p.sendAll(to, a.press('1', 100*time.Millisecond, true), b.press('2', 100*time.Millisecond, true), b.press('3', 100*time.Millisecond, true))
	if got := keys(waitDigits(t, s, 3)); got != "123" {
		t.Errorf("digits %q, want \"123\"", got)
	}
}

// TestSessionInband without telephone-event: digits from tones in the
// audio, in both laws; event packets are not negotiated and dropped.
func TestSessionInband(t *testing.T) {
	for _, l := range []Law{ULaw, ALaw} {
		t.Run(l.String(), func(t *testing.T) {
			checkGoroutines(t)
			p := newPeer(t)
			s := newSession(t, SessionConfig{Law: l})
			to := sessionAddr(s)
			st := &stream{ssrc: 5, seq: 1, ts: 0}
			p.sendAll(to,
				st.press('8', 100*time.Millisecond, true), // not negotiated
				st.audio(l, concat(silence(60*time.Millisecond),
					GenerateDTMF('5', 120*time.Millisecond, 0.2), silence(80*time.Millisecond),
					GenerateDTMF('*', 400*time.Millisecond, 0.2), silence(80*time.Millisecond),
					GenerateDTMF('5', 80*time.Millisecond, 0.2), silence(100*time.Millisecond))),
			)
			ds := waitDigits(t, s, 3)
			if got := keys(ds); got != "5*5" {
				t.Errorf("digits %q, want \"5*5\"", got)
			}
			for _, d := range ds {
				if d.Source != DigitInband {
					t.Errorf("digit %q from %v", d.Key, d.Source)
				}
			}
			time.Sleep(50 * time.Millisecond)
			noMoreDigits(t, s)
			if st := s.Stats(); st.DigitsIn != 3 || st.DigitsRFC4733 != 0 || st.WrongType == 0 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

// TestSessionInbandOddPackets: 10 ms and 30 ms packets (other ptimes) are
// cut into frames for the detector and still give the digit.
func TestSessionInbandOddPackets(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw})
	to := sessionAddr(s)
	pcm := concat(GenerateDTMF('6', 150*time.Millisecond, 0.2), silence(60*time.Millisecond))
	ts := uint32(0)
	st := &stream{ssrc: 9}
	for i, size := 0, 80; len(pcm) > 0; i++ {
		n := min(len(pcm), size)
		payload := make([]byte, n)
		EncodeFrame(ULaw, payload, pcm[:n])
		p.send(to, st.packet(0, false, ts, payload))
		ts += uint32(n)
		pcm = pcm[n:]
		size = 80 + 160*(i%2) // 10 ms, 30 ms, 10 ms…
	}
	if got := keys(waitDigits(t, s, 1)); got != "6" {
		t.Errorf("digits %q", got)
	}
}

// TestSessionSending: on hold nothing is sent; afterwards the stream goes
// on with the next sequence number and a timestamp that kept running.
func TestSessionSending(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: p.addr()})
	last := p.next(time.Second)
	s.SetSending(false)
	for n := 0; ; n++ {
		if n > 10 {
			t.Fatal("still sending after SetSending(false)")
		}
		select {
		case pkt := <-p.rx:
			last = pkt
			continue
		case <-time.After(100 * time.Millisecond):
		}
		break
	}
	p.none(200 * time.Millisecond)
	s.SetSending(true)
	pkt := p.next(time.Second)
	if pkt.SequenceNumber != last.SequenceNumber+1 || pkt.SSRC != last.SSRC {
		t.Errorf("after hold: seq %d after %d, SSRC %#x after %#x", pkt.SequenceNumber, last.SequenceNumber, pkt.SSRC, last.SSRC)
	}
	gap := pkt.Timestamp - last.Timestamp
	if gap%FrameSamples != 0 || gap < 15*FrameSamples {
		t.Errorf("timestamp moved %d over a hold of more than 300 ms", gap)
	}
}

// TestSessionDigitBuffer: type-ahead is kept up to the buffer, then
// dropped and counted; SIP INFO digits join the same channel.
func TestSessionDigitBuffer(t *testing.T) {
	checkGoroutines(t)
	s := newSession(t, SessionConfig{Law: ULaw})
	const buffered = 32
	for i := range buffered + 3 {
		s.InjectDigit(Digit{Key: "0123456789"[i%10], Source: DigitSIPInfo})
	}
	if got := s.Stats().DigitsDropped; got != 3 {
		t.Errorf("DigitsDropped %d, want 3", got)
	}
	ds := waitDigits(t, s, buffered)
	for i, d := range ds {
		if d.Key != "0123456789"[i%10] || d.Source != DigitSIPInfo {
			t.Fatalf("digit %d = %+v", i, d)
		}
	}
	noMoreDigits(t, s)
}

// The receive path, driven directly with its own clock.

func newReceiver(t testing.TB, cfg SessionConfig) (*receiver, *Session) {
	t.Helper()
	if cfg.Ports == nil {
		cfg.Ports = newTestPool(t, 1)
	}
	cfg.LocalIP = loopback
	cfg.Logger = discard
	s, err := NewSession(cfg) // not started: no goroutines
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &receiver{s: s, tones: NewToneDetector()}, s
}

func TestReceiverRelatch(t *testing.T) {
	r, s := newReceiver(t, SessionConfig{Law: ULaw, Remote: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5004}})
	a := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 10000}
	b := &net.UDPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 20000}
	c := &net.UDPAddr{IP: net.IPv4(203, 0, 113, 10), Port: 30000}
	d := &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 40000}
	st := &stream{ssrc: 1}
	pkt := func() []byte { return st.audio(ULaw, make([]int16, 160))[0] }
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	remote := func() string { return s.remote.Load().String() }
	s.start = t0 // as Start would have set it

	if remote() != "192.0.2.1:5004" {
		t.Fatalf("before any packet, sending to %s, want the SDP address", remote())
	}
	steps := []struct {
		from    *net.UDPAddr
		ms      int
		remote  string
		foreign uint64
	}{
		{a, 0, a.String(), 0},    // first packet latches
		{a, 20, a.String(), 0},   //
		{b, 1000, a.String(), 1}, // someone else: dropped
		{a, 1500, a.String(), 1}, //
		{b, 3400, a.String(), 2}, // a silent for 1.9 s: still a's
		{b, 3600, b.String(), 2}, // a silent for 2.1 s: b takes over (NAT rebinding)
		{a, 3700, b.String(), 3}, // and a is now the stranger
		// The 4-byte form of b's address is b.
		{&net.UDPAddr{IP: b.IP.To4(), Port: b.Port}, 3720, b.String(), 3},
	}
	for i, step := range steps {
		r.packet(pkt(), step.from, at(step.ms), time.Time{})
		if remote() != step.remote || s.Stats().Foreign != step.foreign {
			t.Fatalf("step %d: sending to %s with %d foreign, want %s and %d", i, remote(), s.Stats().Foreign, step.remote, step.foreign)
		}
	}
	if got := s.LastReceived(); !got.Equal(at(3720)) {
		t.Errorf("LastReceived %v", got)
	}

	// A re-INVITE moves the caller: the new address is used at once and
	// the next valid packet latches afresh, wherever it comes from.
	s.SetRemote(c)
	if remote() != c.String() {
		t.Errorf("after SetRemote, sending to %s", remote())
	}
	r.packet(pkt(), d, at(3740), time.Time{})
	if remote() != d.String() {
		t.Errorf("after SetRemote and a packet from %s, sending to %s", d, remote())
	}
	// SetRemote(nil) (no address in the new SDP) keeps sending where we
	// were and relatches.
	s.SetRemote(nil)
	if remote() != d.String() {
		t.Errorf("SetRemote(nil) changed the address to %s", remote())
	}
	r.packet(pkt(), a, at(3760), time.Time{})
	if remote() != a.String() {
		t.Errorf("after SetRemote(nil) and a packet from %s, sending to %s", a, remote())
	}
}

// TestReceiverLatchCopiesAddress: the latched address is a copy, so a
// reused read buffer cannot move it.
func TestReceiverLatchCopiesAddress(t *testing.T) {
	r, s := newReceiver(t, SessionConfig{Law: ULaw})
	from := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 1).To4(), Port: 10000}
	st := &stream{ssrc: 1}
	r.packet(st.audio(ULaw, make([]int16, 160))[0], from, time.Now(), time.Time{})
	from.IP[3] = 99
	from.Port = 1
	if got := s.remote.Load().String(); got != "198.51.100.1:10000" {
		t.Errorf("latched address changed with the caller's buffer: %s", got)
	}
}

func TestParseRTP(t *testing.T) {
	mk := func(h rtp.Header, payload []byte) []byte {
		h.Version = 2
		b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pay := []byte{1, 2, 3, 4, 5}
	withExt := rtp.Header{PayloadType: 0, SequenceNumber: 7, Timestamp: 8, SSRC: 9, Extension: true, ExtensionProfile: 0x1234}
	if err := withExt.SetExtension(0, []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22}); err != nil {
		t.Fatal(err)
	}
	padded := mk(rtp.Header{PayloadType: 0, SequenceNumber: 1}, pay)
	padded[0] |= 0x20
	padded = append(padded, 0, 0, 3)
	tests := []struct {
		name string
		b    []byte
		want rtpHeader
	}{
		{"plain", mk(rtp.Header{PayloadType: 0, SequenceNumber: 65535, Timestamp: 0xFFFFFFFF, SSRC: 0xDEADBEEF}, pay),
			rtpHeader{pt: 0, seq: 65535, ts: 0xFFFFFFFF, ssrc: 0xDEADBEEF, payload: pay}},
		{"marker, dynamic type", mk(rtp.Header{Marker: true, PayloadType: 101, SequenceNumber: 1, Timestamp: 2, SSRC: 3}, pay[:4]),
			rtpHeader{pt: 101, marker: true, seq: 1, ts: 2, ssrc: 3, payload: pay[:4]}},
		{"CSRCs", mk(rtp.Header{PayloadType: 8, SSRC: 1, CSRC: []uint32{10, 11, 12}}, pay),
			rtpHeader{pt: 8, ssrc: 1, payload: pay}},
		{"header extension", mk(withExt, pay), rtpHeader{pt: 0, seq: 7, ts: 8, ssrc: 9, payload: pay}},
		{"padding", padded, rtpHeader{pt: 0, seq: 1, payload: pay}},
		{"empty payload", mk(rtp.Header{PayloadType: 0}, nil), rtpHeader{payload: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRTP(tt.b)
			if !ok {
				t.Fatalf("parseRTP(% x) rejected", tt.b)
			}
			if got.pt != tt.want.pt || got.marker != tt.want.marker || got.seq != tt.want.seq || got.ts != tt.want.ts || got.ssrc != tt.want.ssrc || !bytes.Equal(got.payload, tt.want.payload) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseRTP compares parseRTP with pion/rtp: whatever pion parses as a
// version 2 packet we parse the same, whatever we accept pion accepts
// (header extensions aside, whose contents pion checks and we skip), and
// the payload always lies inside the packet.
func FuzzParseRTP(f *testing.F) {
	st := &stream{ssrc: 1, seq: 2, ts: 3}
	f.Add(st.audio(ULaw, make([]int16, 160))[0])
	f.Add(st.press('1', 40*time.Millisecond, true)[0])
	f.Add([]byte{0xA0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 2})
	f.Add([]byte{0x91, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5})
	f.Add([]byte{0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("not RTP at all"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := parseRTP(b)
		var p rtp.Packet
		perr := p.Unmarshal(append([]byte(nil), b...))
		if perr == nil && p.Version == 2 {
			if !ok {
				t.Fatalf("pion parses % x, we do not", b)
			}
			if h.pt != p.PayloadType || h.marker != p.Marker || h.seq != p.SequenceNumber || h.ts != p.Timestamp || h.ssrc != p.SSRC || !bytes.Equal(h.payload, p.Payload) {
				t.Fatalf("% x: we read %+v, pion %v payload % x", b, h, p.Header, p.Payload)
			}
		}
		if !ok {
			return
		}
		if len(b) < 12 || b[0]>>6 != 2 {
			t.Fatalf("accepted % x", b)
		}
		if perr != nil && b[0]&0x10 == 0 {
			t.Fatalf("we accept % x, pion says %v", b, perr)
		}
		if len(h.payload) > 0 {
			start := cap(b) - cap(h.payload)
			if start < 12 || start+len(h.payload) > len(b) {
				t.Fatalf("payload outside the packet")
			}
		}
	})
}

// TestPacketEventPayloadWithPadding: a telephone-event packet with RTP
// padding is read by its payload, not its padding.
func TestPacketEventPayloadWithPadding(t *testing.T) {
	r, s := newReceiver(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
	b := make([]byte, 12, 20)
	b[0], b[1] = 0xA0, testEventPT
	binary.BigEndian.PutUint32(b[4:], 1234)
	b = append(b, 4, 0x0a, 0, 0) // '4', duration 0
	b = append(b, 0, 0, 0, 4)    // four bytes of padding
	r.packet(b, &net.UDPAddr{IP: loopback, Port: 9}, time.Now(), time.Time{})
	select {
	case d := <-s.Digits():
		if d.Key != '4' {
			t.Errorf("digit %q", d.Key)
		}
	default:
		t.Fatal("no digit")
	}
}

// TestSinePowerHelper guards the test helpers the resampling tests rely on.
func TestSinePowerHelper(t *testing.T) {
	x := sine(1000, SampleRate, 8000, 1)
	pcm := make([]int16, len(x))
	for i, v := range x {
		pcm[i] = int16(v * 32767)
	}
	if p := toneAt(pcm, 1000); math.Abs(p-1) > 0.01 {
		t.Errorf("full-scale 1 kHz measured %.3f", p)
	}
	if zc := zeroCrossings(pcm); zc < 1998 || zc > 2001 {
		t.Errorf("%d zero crossings", zc)
	}
	if r := rms(pcm); math.Abs(r-1/math.Sqrt2) > 0.01 {
		t.Errorf("RMS %.3f", r)
	}
}

// TestSessionAddressFamilies: the receive loop hands the right source
// address to latching whatever the socket: IPv6, and a dual-stack socket
// (bound to no address) receiving from IPv4.
func TestSessionAddressFamilies(t *testing.T) {
	ipv6 := net.ParseIP("::1")
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: ipv6}); err != nil {
		t.Logf("no IPv6 loopback (%v): testing dual stack only", err)
		ipv6 = nil
	} else {
		c.Close()
	}
	for _, c := range []struct {
		name    string
		local   net.IP // session binds here
		peer    net.IP // caller sends from here
		peerNet string
	}{
		{"dual-stack from IPv4", nil, loopback, "udp4"},
		{"IPv6", ipv6, ipv6, "udp6"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.peer == nil {
				t.Skip("no IPv6 loopback")
			}
			checkGoroutines(t)
			conn, err := net.ListenUDP(c.peerNet, &net.UDPAddr{IP: c.peer})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			s, err := NewSession(SessionConfig{Ports: newTestPool(t, 1), LocalIP: c.local, Logger: discard, Law: ULaw, DTMFType: testEventPT})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.Start()
			to := &net.UDPAddr{IP: c.peer, Port: s.LocalPort()}
			st := &stream{ssrc: 3, seq: 1, ts: 800}
			for _, b := range st.press('7', 100*time.Millisecond, true) {
				if _, err := conn.WriteToUDP(b, to); err != nil {
					t.Fatal(err)
				}
			}
			if got := keys(waitDigits(t, s, 1)); got != "7" {
				t.Errorf("digits %q", got)
			}
			if got, want := s.remote.Load().String(), conn.LocalAddr().String(); got != want {
				t.Errorf("latched to %s, want %s", got, want)
			}
			// And the stream comes back to the caller.
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 1500)
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("no packet back: %v", err)
			}
			if h, ok := parseRTP(buf[:n]); !ok || h.pt != 0 || from.Port != s.LocalPort() {
				t.Errorf("got % x from %v", buf[:min(n, 12)], from)
			}
		})
	}
}

// TestHotPathsDoNotAllocate: per packet, the receive and send paths
// allocate nothing (a call lasts minutes at 50 packets a second each way).
func TestHotPathsDoNotAllocate(t *testing.T) {
	from := &net.UDPAddr{IP: loopback, Port: 40000}
	st := &stream{ssrc: 1, seq: 2, ts: 3}
	audio := st.audio(ULaw, GenerateDTMF('1', 20*time.Millisecond, 0.2))[0]
	event := st.press('1', 100*time.Millisecond, true)[1]
	inband, _ := newReceiver(t, SessionConfig{Law: ULaw})
	withEvents, _ := newReceiver(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
	pcm := make([]int16, FrameSamples)
	enc := make([]byte, FrameSamples)
	var ed EventDetector
	td := NewToneDetector()
	pb := &playback{prompts: []*Prompt{tonePrompt("a", 440, 3)}}
	now := time.Now()
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"parseRTP", func() { parseRTP(audio) }},
		{"packet/inband", func() { now = now.Add(FrameDuration); inband.packet(audio, from, now, time.Time{}) }},
		{"packet/audio with events negotiated", func() { now = now.Add(FrameDuration); withEvents.packet(audio, from, now, time.Time{}) }},
		{"packet/event", func() { now = now.Add(FrameDuration); withEvents.packet(event, from, now, time.Time{}) }},
		{"packet/in sequence", func() {
			now = now.Add(FrameDuration)
			binary.BigEndian.PutUint16(audio[2:4], binary.BigEndian.Uint16(audio[2:4])+1)
			withEvents.packet(audio, from, now, time.Time{})
		}},
		{"EncodeFrame", func() { EncodeFrame(ALaw, enc, pcm) }},
		{"DecodeFrame", func() { DecodeFrame(ALaw, pcm, enc) }},
		{"Transcode", func() { Transcode(ULaw, ALaw, enc, enc) }},
		{"EventDetector.Feed", func() { ed.Feed(5, event[12:]) }},
		{"ToneDetector.Feed", func() { td.Feed(pcm) }},
		{"playback.next", func() {
			if pb.next(ULaw) == nil {
				pb.p, pb.f = 0, 0
			}
		}},
	} {
		if n := testing.AllocsPerRun(200, c.f); n != 0 {
			t.Errorf("%s: %v allocations per call", c.name, n)
		}
	}
}

// TestReceiveLoopDoesNotAllocate: a packet through the socket and the
// receive path (the pollers) allocates nothing either (reading the source address
// used to cost an allocation per packet).
func TestReceiveLoopDoesNotAllocate(t *testing.T) {
	checkGoroutines(t)
	s := newSession(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback}) // never reads: allocates nothing
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := sessionAddr(s)
	st := &stream{ssrc: 1, seq: 2, ts: 3}
	pkt := st.audio(ULaw, make([]int16, FrameSamples))[0]
	send := func(n int) {
		base := s.Stats().PacketsIn
		for i := 1; i <= n; i++ {
			if _, err := conn.WriteToUDP(pkt, to); err != nil {
				t.Fatal(err)
			}
			if i%16 == 0 || i == n {
				want := base + uint64(i)
				eventually(t, 5*time.Second, "the session to read the packets", func() bool { return s.Stats().PacketsIn >= want })
			}
		}
	}
	send(50) // latch, warm up
	const n = 1000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	send(n)
	runtime.ReadMemStats(&after)
	// eventually's sleeps and timers allocate a little; a per-packet
	// allocation would be n of them.
	mallocs := after.Mallocs - before.Mallocs
	t.Logf("%d allocations for %d packets", mallocs, n)
	if mallocs > n/4 {
		t.Errorf("%d allocations for %d packets", mallocs, n)
	}
}

// TestSessionStartPlay: a playback started without waiting delivers its
// result on Done — nil after its last frame, Stop's context.Canceled, the
// context's error, ErrSessionClosed for one never taken — exactly once,
// and runs no goroutine of its own.
func TestSessionStartPlay(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	s := newSession(t, SessionConfig{Law: ULaw, Remote: p.addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	before := runtime.NumGoroutine()
	short := tonePrompt("short", 440, 3)
	pb := s.StartPlay(ctx, short)
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("StartPlay started %d goroutines", n-before)
	}
	select {
	case err := <-pb.Done():
		if err != nil {
			t.Fatalf("finished playback = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a three-frame playback did not finish")
	}
	pb.Stop() // after the end: nothing more is delivered
	select {
	case err := <-pb.Done():
		t.Fatalf("Done delivered twice (%v)", err)
	case <-time.After(60 * time.Millisecond):
	}

	long := tonePrompt("long", 1000, 250)
	pb = s.StartPlay(ctx, long)
	p.waitSound()
	pb.Stop()
	select {
	case err := <-pb.Done():
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped playback = %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("a stopped playback did not end")
	}
	p.drain()
	for i := range 3 {
		if pkt := p.next(time.Second); !isSilence(ULaw, pkt.Payload) {
			t.Fatalf("packet %d after Stop still carries the prompt", i)
		}
	}

	dctx, dcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer dcancel()
	pb = s.StartPlay(dctx, long)
	select {
	case err := <-pb.Done():
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("playback past its context's deadline = %v, want DeadlineExceeded", err)
		}
	case <-time.After(time.Second):
		t.Fatal("a playback did not end with its context")
	}

	// Closed before the pacer took it: Close ends it.
	s2, err := NewSession(SessionConfig{Ports: newTestPool(t, 1), LocalIP: loopback, Logger: discard, Law: ULaw, Remote: p.addr()})
	if err != nil {
		t.Fatal(err)
	}
	pb = s2.StartPlay(ctx, long) // never started: the pacer never sees it
	s2.Close()
	select {
	case err := <-pb.Done():
		if !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("playback pending at Close = %v, want ErrSessionClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("a playback pending at Close never ended")
	}
	if err := <-s2.StartPlay(ctx, short).Done(); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("StartPlay after Close = %v, want ErrSessionClosed", err)
	}
}
