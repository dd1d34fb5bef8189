package media

import (
	"net"
	"slices"
	"testing"
	"time"
)

// TestPacerPhases: one pacer shard serves sessions started at different
// moments; each keeps its own phase (its frames are due every 20 ms from
// its own start, not on a common tick) and no frame leaves more than
// a slot (1 ms) before its deadline.
func TestPacerPhases(t *testing.T) {
	checkGoroutines(t)
	pc := newPacer(1)
	p := newPeer(t)
	pool := newTestPool(t, 10)
	const calls, frames = 10, 25
	started := map[int]time.Time{} // by port: a moment no later than the session's start
	for range calls {
		s, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw, Remote: p.addr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.pacer = pc
		started[s.LocalPort()] = time.Now()
		s.Start()
		time.Sleep(2 * time.Millisecond) // phases about 2 ms apart
	}

	type first struct {
		ts       uint32
		earliest time.Duration // the least lateness seen
	}
	got := map[int]*first{}
	counts := map[int]int{}
	for done := 0; done < calls; {
		pkt := p.next(time.Second)
		port := pkt.from.Port
		if counts[port] == frames {
			continue
		}
		f := got[port]
		if f == nil {
			f = &first{ts: pkt.Timestamp, earliest: time.Hour}
			got[port] = f
		}
		// Frame k (from 1) is due at start + k·20 ms. The first frame the
		// peer got is frame 1 unless the session skipped ahead, which only
		// makes this deadline earlier than the real one.
		k := 1 + int((pkt.Timestamp-f.ts)/FrameSamples)
		lateness := pkt.at.Sub(started[port].Add(time.Duration(k) * FrameDuration))
		if lateness < -slot {
			t.Errorf("port %d: frame %d arrived %v before its deadline", port, k, -lateness)
		}
		f.earliest = min(f.earliest, lateness)
		if counts[port]++; counts[port] == frames {
			done++
		}
	}
	// A common tick would make some calls' frames 10 ms or more late.
	var earliest []time.Duration
	for _, f := range got {
		earliest = append(earliest, f.earliest)
	}
	slices.Sort(earliest)
	t.Logf("least lateness per call: %v", earliest)
	if worst := earliest[len(earliest)-1]; worst > 6*time.Millisecond {
		t.Errorf("a call's frames were never less than %v late: it does not keep its own phase", worst)
	}
}

// TestPacerStopsWhenIdle: the pacer's goroutines run only while they have
// sessions, and start again for the next one.
func TestPacerStopsWhenIdle(t *testing.T) {
	checkGoroutines(t)
	pc := newPacer(2)
	p := newPeer(t)
	pool := newTestPool(t, 4)
	running := func() (n int) {
		for _, sh := range pc.shards {
			sh.mu.Lock()
			if sh.running {
				n++
			}
			sh.mu.Unlock()
		}
		return n
	}
	start := func() *Session {
		s, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw, Remote: p.addr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.pacer = pc
		s.Start()
		return s
	}
	if running() != 0 {
		t.Fatal("a new pacer runs before it has sessions")
	}
	a, b, c := start(), start(), start()
	if n := running(); n != 2 {
		t.Errorf("%d shards running with 3 sessions, want both", n)
	}
	for _, s := range []*Session{a, b, c} {
		eventually(t, time.Second, "every session to send", func() bool { return s.Stats().PacketsOut > 0 })
	}
	a.Close()
	b.Close()
	c.Close()
	eventually(t, time.Second, "the shards to stop", func() bool { return running() == 0 })
	p.drain()
	p.none(60 * time.Millisecond)

	d := start()
	if pkt := p.next(time.Second); pkt.from.Port != d.LocalPort() {
		t.Errorf("a packet from port %d, want the new session's %d", pkt.from.Port, d.LocalPort())
	}
}

// TestSendFrameDoesNotAllocate: the pacer's work per frame — a prompt
// frame or silence, stamped and sent — allocates nothing.
func TestSendFrameDoesNotAllocate(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback}) // never reads: allocates nothing
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, s := newReceiver(t, SessionConfig{Law: ULaw, Remote: conn.LocalAddr().(*net.UDPAddr)})
	s.SetTap(&nopTap{})
	now := time.Now()
	s.pace = pace{epoch: now, n: 1, deadline: now.Add(FrameDuration)}
	s.pending.Store(&playback{prompts: []*Prompt{tonePrompt("long", 440, 150)}, done: make(chan error, 1)})
	if n := testing.AllocsPerRun(100, func() { s.sendFrame(s.pace.deadline) }); n != 0 {
		t.Errorf("prompt frames: %v allocations per frame", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.sendFrame(s.pace.deadline) }); n != 0 {
		t.Errorf("silence: %v allocations per frame", n)
	}
	if s.pace.cur != nil {
		t.Error("the prompt is still playing: the test did not send silence")
	}
	if got := s.Stats().PacketsOut; got != 202 {
		t.Errorf("%d packets sent, want 202", got)
	}
}

// PacingStats counts every paced frame, those sent more than LateFrame
// after their deadline, and the frames skipped when a sender fell more
// than three frames behind.
func TestPacingStatsCountLateAndSkipped(t *testing.T) {
	s, err := NewSession(SessionConfig{Ports: newTestPool(t, 1), LocalIP: net.IPv4(127, 0, 0, 1), Law: ULaw})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Not started: the test plays the pacer's part, alone.
	t0 := time.Now()
	s.pace = pace{epoch: t0, n: 1, deadline: t0.Add(FrameDuration)}
	before := Pacing()
	s.sendFrame(t0.Add(FrameDuration))                                  // on time
	s.sendFrame(t0.Add(2*FrameDuration + LateFrame + time.Millisecond)) // late
	s.sendFrame(t0.Add(3*FrameDuration + 5*FrameDuration))              // five frames behind: skips ahead
	after := Pacing()
	if d := after.Frames - before.Frames; d != 3 {
		t.Errorf("frames %d, want 3", d)
	}
	if d := after.Late - before.Late; d != 2 {
		t.Errorf("late %d, want 2 (the late one and the one far behind)", d)
	}
	if d := after.Skipped - before.Skipped; d != 5 {
		t.Errorf("skipped %d, want 5", d)
	}
}

// TestPacerCatchesUpAfterAStall: a shard held up past a session's
// deadline sends the frames it owes at once — every one up to now, or a
// skip beyond three — so that the session is back on time, not a turn of
// the wheel late for good.
func TestPacerCatchesUpAfterAStall(t *testing.T) {
	checkGoroutines(t)
	p := newPeer(t)
	for _, c := range []struct {
		stall      time.Duration
		sent, skip uint64
	}{
		{45 * time.Millisecond, 3, 0},  // frames due at 0, 20 and 40 ms
		{150 * time.Millisecond, 1, 7}, // beyond three frames: skip to the one due now
	} {
		s, err := NewSession(SessionConfig{Ports: newTestPool(t, 1), LocalIP: loopback, Logger: discard, Law: ULaw, Remote: p.addr()})
		if err != nil {
			t.Fatal(err)
		}
		sh := &shard{epoch: time.Now()}
		d := sh.epoch.Add(FrameDuration)
		s.pace = pace{epoch: sh.epoch, n: 1, deadline: d}
		sh.incoming = append(sh.incoming, s)
		sh.admit()
		before := Pacing()
		now := d.Add(c.stall)
		sh.serve(sh.slotOf(d), now)
		if !s.pace.deadline.After(now) {
			t.Errorf("stall %v: the next deadline %v is still due: the session stays behind", c.stall, s.pace.deadline.Sub(now))
		}
		after := Pacing()
		if sent, skipped := s.Stats().PacketsOut, after.Skipped-before.Skipped; sent != c.sent || skipped != c.skip {
			t.Errorf("stall %v: %d frames sent, %d skipped; want %d and %d", c.stall, sent, skipped, c.sent, c.skip)
		}
		s.Close()
	}
}
