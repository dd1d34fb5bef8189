package rtc

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"ivrd/media"
)

// Per-packet cost of the bridge, each way. Run with
//
//	go test -run '^$' -bench Relay -benchmem ./rtc/
//
// A connected Peer and browser; the browser's network is then cut so that
// its side (which allocates per packet, as browsers do) costs nothing: the
// server's packets still go through SRTP and out of its socket. The
// agent's packets are taken as the socket's reader takes them (SRTP
// decrypted, then relayed), from a ring encrypted beforehand under a key
// the rig gives the Peer. The caller is a socket that never reads.

// relayRig is a bridged call whose two directions can be driven directly.
type relayRig struct {
	br      *Bridge
	p       *Peer
	fromPBX media.AudioPacket // the caller's packet, as the session hands it over

	// The agent's packets, SRTP under a key the rig gave the Peer: one
	// for each sequence number, so none is a replay.
	agent [][]byte
	next  int
	sock  *socket        // where they arrive
	from  netip.AddrPort // from the browser's address, as routed
	key   [16]byte
	salt  [12]byte // AES-GCM's
	sc    scratch
}

// agentProfile is the SRTP profile of the rig's agent packets.
const agentProfile = srtp.ProtectionProfileAeadAes128Gcm

// agentKeys gives the Peer a fresh receive context under the rig's key
// (a new rollover count when the sequence numbers wrap).
func (r *relayRig) agentKeys(tb testing.TB) {
	rx, err := srtp.CreateContext(r.key[:], r.salt[:], agentProfile)
	if err != nil {
		tb.Fatal(err)
	}
	r.p.rx.Store(rx)
}

func newRelayRig(tb testing.TB, callerLaw media.Law, agentLaws ...media.Law) *relayRig {
	tb.Helper()
	e := newEngine(tb, Config{DisconnectedTimeout: time.Minute, FailedTimeout: time.Minute})
	p := newTestPeer(tb, e, "bench")
	b := connect(tb, p, agentLaws...)
	b.net.cut.Store(true)

	phone, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { phone.Close() })
	sess, err := media.NewSession(media.SessionConfig{
		Ports: portPool(tb, 1), LocalIP: loopback, Law: callerLaw,
		Remote: phone.LocalAddr().(*net.UDPAddr), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sess.Close() })
	sess.Start()
	br, err := p.Bridge(sess)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(br.Stop)
	r := &relayRig{
		br:      br,
		p:       p,
		fromPBX: media.AudioPacket{SSRC: 5, Sequence: 1, Timestamp: 1, Payload: marked(2, media.FrameSamples)},
		agent:   make([][]byte, 1<<16),
	}
	for i := range r.key {
		r.key[i] = byte(i + 1)
	}
	tx, err := srtp.CreateContext(r.key[:], r.salt[:], agentProfile)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range r.agent {
		plain, err := (&rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: agentLaws[0].PayloadType(), SequenceNumber: uint16(i), Timestamp: uint32(i * media.FrameSamples), SSRC: 77},
			Payload: marked(1, media.FrameSamples),
		}).Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		if r.agent[i], err = tx.EncryptRTP(nil, plain, nil); err != nil {
			tb.Fatal(err)
		}
	}
	p.out.Lock()
	r.sock, r.from = p.out.sock, p.out.to
	p.out.Unlock()
	r.agentKeys(tb)
	return r
}

// callerPacket relays the caller's next packet to the agent.
func (r *relayRig) callerPacket() {
	r.fromPBX.Sequence++
	r.fromPBX.Timestamp += media.FrameSamples
	r.br.fromCaller(r.fromPBX)
}

// agentPacket takes the agent's next packet as the socket's reader does:
// SRTP decrypted, then relayed to the caller.
func (r *relayRig) agentPacket() {
	if r.next == len(r.agent) {
		r.next = 0
		r.agentKeys(nil)
	}
	r.p.packet(r.sock, r.agent[r.next], r.from, true, time.Time{}, &r.sc)
	r.next++
}

func BenchmarkRelayCallerToAgent(b *testing.B) {
	for _, c := range []struct {
		name   string
		caller media.Law
	}{{"same-law", media.ULaw}, {"transcode", media.ALaw}} {
		b.Run(c.name, func(b *testing.B) {
			r := newRelayRig(b, c.caller, media.ULaw)
			b.SetBytes(media.FrameSamples)
			b.ReportAllocs()
			for b.Loop() {
				r.callerPacket()
			}
			b.StopTimer()
			if st := r.br.Stats(); st.DroppedToAgent != 0 || st.ToAgent == 0 {
				b.Fatalf("stats %+v", st)
			}
		})
	}
}

func BenchmarkRelayAgentToCaller(b *testing.B) {
	for _, c := range []struct {
		name   string
		caller media.Law
	}{{"same-law", media.ULaw}, {"transcode", media.ALaw}} {
		b.Run(c.name, func(b *testing.B) {
			r := newRelayRig(b, c.caller, media.ULaw)
			b.SetBytes(media.FrameSamples)
			b.ReportAllocs()
			for b.Loop() {
				r.agentPacket()
			}
			b.StopTimer()
			if st := r.br.Stats(); st.DroppedToCaller != 0 || st.ToCaller == 0 {
				b.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestRelayDoesNotAllocate: in steady state a packet relayed either way,
// with or without conversion, allocates nothing.
func TestRelayDoesNotAllocate(t *testing.T) {
	checkGoroutines(t)
	for _, callerLaw := range []media.Law{media.ULaw, media.ALaw} {
		r := newRelayRig(t, callerLaw, media.ULaw)
		for _, c := range []struct {
			name string
			f    func()
		}{{"caller to agent", r.callerPacket}, {"agent to caller", r.agentPacket}} {
			if n := testing.AllocsPerRun(1000, c.f); n != 0 {
				t.Errorf("%s, caller %v: %v allocations per packet", c.name, callerLaw, n)
			}
		}
		if st := r.br.Stats(); st.DroppedToAgent+st.DroppedToCaller != 0 || st.ToAgent < 1000 || st.ToCaller < 1000 {
			t.Errorf("caller %v: stats %+v", callerLaw, st)
		}
	}
}

// TestRelayLatency measures, on loopback, the time from a packet leaving
// one side to its arrival at the other — the caller's socket to the
// agent's PeerConnection and back — which is what the server adds plus
// pion's SRTP on the browser's side and two loopback hops. Logged, not
// asserted (numbers live in benchmarks).
func TestRelayLatency(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{UDPPort: freeUDPPort(t)}) // the muxed port stamps the agent's packets
	var before [2][]uint64
	var beforeSum [2]time.Duration
	for dir := range before {
		before[dir], beforeSum[dir] = media.RelayLatency(dir)
	}
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw)
	c := newCaller(t, media.ULaw)
	br, err := p.Bridge(c.sess)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()
	const n = 150
	var toAgent, toCaller []time.Duration
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		start := time.Now()
		c.say(marked(i, media.FrameSamples))
		if pkt := b.hear(time.Second); number(pkt.Payload) != i {
			t.Fatalf("the agent heard #%d, want #%d", number(pkt.Payload), i)
		}
		toAgent = append(toAgent, time.Since(start))
		start = time.Now()
		b.say(marked(1000+i, media.FrameSamples))
		if pkt := c.hearSound(time.Second); number(pkt.Payload) != 1000+i {
			t.Fatalf("the caller heard #%d, want #%d", number(pkt.Payload), 1000+i)
		}
		toCaller = append(toCaller, time.Since(start))
	}
	for _, d := range []struct {
		name string
		v    []time.Duration
	}{{"caller → agent", toAgent}, {"agent → caller", toCaller}} {
		slices.Sort(d.v)
		t.Logf("%s over %d packets: p50 %v, p99 %v, max %v", d.name, n, d.v[n/2], d.v[n*99/100], d.v[n-1])
	}
	// The server's own share, from the kernel's receive stamps: every
	// packet counted in each direction, and on average no more than the
	// whole trip the test timed (which adds the test's sockets and pion on
	// the browser's side).
	for dir, total := range [][]time.Duration{toAgent, toCaller} {
		counts, sum := media.RelayLatency(dir)
		var got uint64
		for i := range counts {
			got += counts[i] - before[dir][i]
		}
		if got < n*9/10 {
			t.Errorf("direction %d: %d packets' latency measured, want about %d", dir, got, n)
			continue
		}
		var whole time.Duration
		for _, d := range total {
			whole += d
		}
		mean, wholeMean := (sum-beforeSum[dir])/time.Duration(got), whole/time.Duration(len(total))
		t.Logf("direction %d: server-added mean %v over %d packets (end to end %v)", dir, mean, got, wholeMean)
		if mean <= 0 || mean > wholeMean {
			t.Errorf("direction %d: server-added mean %v, end to end %v: the stamps are not the packets'", dir, mean, wholeMean)
		}
	}
}
