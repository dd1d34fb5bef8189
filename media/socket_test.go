package media

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// The receive path's life cycle on real sockets: on Linux the pollers
// (socket_linux.go) start with the first session, end with the last, and
// start again; a session closed before it started never receives.

// TestSessionsReceiveThroughPollers: sessions spread over every poller
// each get their own caller's packets, and none is left running after.
func TestSessionsReceiveThroughPollers(t *testing.T) {
	checkGoroutines(t)
	const n = 12 // several per poller
	pool := newTestPool(t, n)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sessions := startSessions(t, pool, n, SessionConfig{Law: ULaw, DTMFType: testEventPT}, func(s *Session) { s.SetSending(false) })
	for round := 1; round <= 5; round++ {
		for i, s := range sessions {
			st := &stream{ssrc: uint32(i + 1), seq: uint16(round), ts: uint32(round * FrameSamples)}
			pkt := st.audio(ULaw, make([]int16, FrameSamples))[0]
			// Session i gets i+1 packets a round: a mix-up between
			// sockets would show in the counts.
			for range i + 1 {
				if _, err := conn.WriteToUDP(pkt, sessionAddr(s)); err != nil {
					t.Fatal(err)
				}
				st.seq++
				pkt = st.audio(ULaw, make([]int16, FrameSamples))[0]
			}
		}
	}
	for i, s := range sessions {
		want := uint64(5 * (i + 1))
		eventually(t, 5*time.Second, "every packet to arrive", func() bool { return s.Stats().PacketsIn >= want })
		if got := s.Stats().PacketsIn; got != want {
			t.Errorf("session %d received %d packets, want %d", i, got, want)
		}
	}
}

// TestPollerStartsAgainAfterIdle: when its last session closes a poller
// ends (no goroutine left); the next session starts one again and
// receives.
func TestPollerStartsAgainAfterIdle(t *testing.T) {
	checkGoroutines(t)
	before := runtime.NumGoroutine()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for round := range 3 {
		s := newSession(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
		s.SetSending(false)
		st := &stream{ssrc: 9, seq: 1, ts: 1}
		if _, err := conn.WriteToUDP(st.audio(ULaw, make([]int16, FrameSamples))[0], sessionAddr(s)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the packet to arrive", func() bool { return s.Stats().PacketsIn == 1 })
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, "the poller and pacer to end", func() bool { return runtime.NumGoroutine() <= before })
		t.Logf("round %d: received, closed, no goroutine left", round)
	}
}

// TestSessionClosedBeforeStart: Start after Close neither receives nor
// leaves anything running, and the port is free again.
func TestSessionClosedBeforeStart(t *testing.T) {
	checkGoroutines(t)
	pool := newTestPool(t, 1)
	s, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw})
	if err != nil {
		t.Fatal(err)
	}
	port := s.LocalPort()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Start()
	if pool.InUse() != 0 {
		t.Errorf("%d ports in use after Close", pool.InUse())
	}
	// The port can be bound again, and packets to it reach nobody.
	again, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.LocalPort() != port {
		t.Errorf("port %d, want %d again", again.LocalPort(), port)
	}
	if got := s.Stats().PacketsIn; got != 0 {
		t.Errorf("closed session received %d packets", got)
	}
}

// TestSessionFootprint: what a started session holds on the heap, with
// telephone-event negotiated (the common case: no in-band detector) and
// without. A call's memory is multiplied by thousands.
func TestSessionFootprint(t *testing.T) {
	checkGoroutines(t)
	for _, c := range []struct {
		name     string
		dtmfType uint8
		limit    uint64 // bytes a session
	}{
		{"telephone-event", testEventPT, 4500},
		{"in-band", 0, 6500},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 200
			pool := newTestPool(t, n)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			startSessions(t, pool, n, SessionConfig{Law: ULaw, DTMFType: c.dtmfType}, nil)
			runtime.GC()
			runtime.ReadMemStats(&after)
			per := (after.HeapAlloc - before.HeapAlloc) / n
			t.Logf("%d bytes of heap a session", per)
			if per > c.limit {
				t.Errorf("%d bytes of heap a session, want at most %d", per, c.limit)
			}
		})
	}
}
