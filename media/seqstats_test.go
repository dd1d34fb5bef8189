package media

import (
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// TestSeqStats: expected and lost from crafted sequence numbers, by the
// rules of RFC 3550 A.1 and A.3 (without counting duplicates as received).
func TestSeqStats(t *testing.T) {
	type pkt struct {
		ssrc uint32
		seq  uint16
	}
	run := func(seqs ...uint16) []pkt {
		out := make([]pkt, len(seqs))
		for i, s := range seqs {
			out[i] = pkt{1, s}
		}
		return out
	}
	span := func(ssrc uint32, from uint16, n int) []pkt {
		var out []pkt
		for i := 0; i < n; i++ {
			out = append(out, pkt{ssrc, from + uint16(i)})
		}
		return out
	}
	cat := func(parts ...[]pkt) []pkt {
		var out []pkt
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		name                      string
		packets                   []pkt
		expected, lost, late, dup uint64
	}{
		{"nothing", nil, 0, 0, 0, 0},
		{"one packet", run(7), 1, 0, 0, 0},
		{"in order", span(1, 100, 50), 50, 0, 0, 0},
		{"gap of three", run(10, 11, 15, 16), 7, 3, 0, 0},
		{"two gaps", run(10, 12, 13, 17), 8, 4, 0, 0},
		{"reordered: nothing lost", run(10, 12, 11, 13), 4, 0, 1, 0},
		{"reordered far back", run(10, 11, 13, 14, 15, 16, 12), 7, 0, 1, 0},
		{"late packet fills half a gap", run(10, 14, 12), 5, 2, 1, 0},
		{"duplicate of the highest", run(10, 11, 11, 12), 3, 0, 0, 1},
		{"duplicate of an older one", run(10, 11, 12, 11, 10), 3, 0, 0, 2},
		{"duplicate masks no loss", run(10, 12, 12), 3, 1, 0, 1},
		{"late then its duplicate", run(10, 12, 11, 11), 3, 0, 1, 1},
		{"wrap at 65535", run(65533, 65534, 65535, 0, 1, 2), 6, 0, 0, 0},
		{"gap across the wrap", run(65534, 65535, 2, 3), 6, 2, 0, 0},
		{"reordered across the wrap", run(65534, 0, 65535, 1), 4, 0, 1, 0},
		{"wraps many times", span(1, 0, 3*65536+10), 3*65536 + 10, 0, 0, 0},
		{"late before the first packet", run(100, 98, 99, 101), 4, 0, 2, 0},
		{"late before the first, across the wrap", run(1, 65535, 0, 2), 4, 0, 2, 0},
		{"new SSRC restarts the count", cat(run(10, 11, 13), span(2, 40000, 5)), 4 + 5, 1, 0, 0},
		{"new SSRC with a gap of its own", cat(run(10, 11), []pkt{{2, 500}, {2, 503}}), 2 + 4, 2, 0, 0},
		{"back to the first SSRC restarts again", cat(run(10, 11), span(2, 7, 2), run(30, 31)), 6, 0, 0, 0},
		// A.1: a jump of MAX_DROPOUT or more is a stray packet until the
		// next one follows it; then the numbering restarted.
		{"one stray packet far ahead", run(10, 11, 20000, 12, 13), 4, 0, 0, 0},
		{"confirmed restart of numbering", run(10, 11, 12, 30000, 30001, 30002), 3 + 2, 0, 0, 0},
		{"gap just under MAX_DROPOUT", run(10, 10+maxDropout-1), maxDropout, maxDropout - 2, 0, 0},
		{"duplicate MAX_MISORDER-1 behind", cat(span(1, 10, 120), run(129-(maxMisorder-1))), 120, 0, 0, 1},
		{"MAX_MISORDER behind is a jump", cat(span(1, 10, 120), run(129-maxMisorder)), 120, 0, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var q seqStats
			var late, dup uint64
			for _, p := range c.packets {
				switch q.update(p.ssrc, p.seq) {
				case seqLate:
					late++
				case seqDuplicate:
					dup++
				}
			}
			if q.expected() != c.expected || q.lost() != c.lost || late != c.late || dup != c.dup {
				t.Errorf("expected %d lost %d late %d duplicates %d, want %d %d %d %d",
					q.expected(), q.lost(), late, dup, c.expected, c.lost, c.late, c.dup)
			}
		})
	}
}

// TestSeqStatsWindow: the duplicate window follows the highest sequence
// number through gaps of every size, so a packet missing behind a gap is
// taken once when it comes late, never twice.
func TestSeqStatsWindow(t *testing.T) {
	for _, gap := range []uint16{1, 2, 63, 64, 65, 99, 127, 128, 129, 500} {
		var q seqStats
		q.update(1, 1000)
		q.update(1, 1000+gap) // gap-1 missing
		for back := uint16(1); back < min(gap, maxMisorder); back++ {
			if r := q.update(1, 1000+gap-back); r != seqLate {
				t.Fatalf("gap %d: %d behind came as %v, want late", gap, back, r)
			}
			if r := q.update(1, 1000+gap-back); r != seqDuplicate {
				t.Fatalf("gap %d: %d behind again came as %v, want duplicate", gap, back, r)
			}
		}
		if gap < maxMisorder {
			if r := q.update(1, 1000); r != seqDuplicate {
				t.Fatalf("gap %d: the first packet again came as %v", gap, r)
			}
		}
		filled := uint64(min(gap, maxMisorder) - 1)
		if want := uint64(gap-1) - filled; q.lost() != want || q.expected() != uint64(gap)+1 {
			t.Errorf("gap %d: lost %d of %d, want %d of %d", gap, q.lost(), q.expected(), want, gap+1)
		}
	}
}

// TestSessionCountsLoss: the receive path feeds the sequence numbers of
// audio and events alike to the loss count, and Stats reports it; dropped
// packets (foreign, wrong type) are no part of the stream.
func TestSessionCountsLoss(t *testing.T) {
	r, s := newReceiver(t, SessionConfig{Law: ULaw, DTMFType: testEventPT})
	a := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 10000}
	b := &net.UDPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 20000}
	st := &stream{ssrc: 7, seq: 65530}
	now := time.Unix(1000, 0)
	feed := func(from *net.UDPAddr, p []byte) {
		now = now.Add(FrameDuration)
		r.packet(p, from, now, time.Time{})
	}
	pcm := make([]int16, 10*FrameSamples)
	audio := st.audio(ULaw, pcm) // 65530 … 65535, 0 … 3
	for i, p := range audio {
		if i == 2 || i == 7 { // 65532 and 1 lost
			continue
		}
		feed(a, p)
	}
	feed(a, audio[8])                                      // 2 again
	feed(b, st.audio(ULaw, pcm[:FrameSamples])[0])         // 4 from a stranger: dropped, never seen
	feed(a, st.press('1', 60*time.Millisecond, true)[0])   // 5: an event, after a gap of one
	feed(a, st.packet(18, false, st.ts, make([]byte, 20))) // G.729: dropped
	feed(a, audio[2])                                      // 65532, nine places late
	got := s.Stats()
	// 65530 … 5 is 12 packets; received 65530, 65531, 65532 (late), 65533,
	// 65534, 65535, 0, 2, 3, 5: 4 and 1 lost.
	if got.Expected != 12 || got.Lost != 2 || got.Late != 1 || got.Duplicates != 1 {
		t.Errorf("expected %d lost %d late %d duplicates %d, want 12 2 1 1", got.Expected, got.Lost, got.Late, got.Duplicates)
	}
	if got.PacketsIn != 11 || got.Foreign != 1 || got.WrongType != 1 {
		t.Errorf("in %d foreign %d wrong type %d, want 11 1 1", got.PacketsIn, got.Foreign, got.WrongType)
	}

	// The caller's stream moves to a new SSRC (a transfer): counting
	// restarts there, and what the first one lost stays lost.
	st2 := &stream{ssrc: 8, seq: 100}
	p2 := st2.audio(ULaw, make([]int16, 4*FrameSamples))
	feed(a, p2[0])
	feed(a, p2[3])
	got = s.Stats()
	if got.Expected != 12+4 || got.Lost != 2+2 {
		t.Errorf("after a new SSRC: expected %d lost %d, want 16 4", got.Expected, got.Lost)
	}
}

// TestSeqStatsAgainstReference: random loss, reordering (less than
// MAX_MISORDER) and duplication across several wraps, checked against a
// count of the distinct numbers actually delivered.
func TestSeqStatsAgainstReference(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		start := uint64(rng.IntN(1 << 16))
		n := 50_000 + rng.IntN(150_000)
		lossP, dupP := rng.Float64()*0.2, rng.Float64()*0.05
		// Sent in order, then some lost, some duplicated, then shuffled
		// locally (swaps of up to 20 places).
		var wire []uint64
		for i := 0; i < n; i++ {
			if rng.Float64() < lossP {
				continue
			}
			wire = append(wire, start+uint64(i))
			if rng.Float64() < dupP {
				wire = append(wire, start+uint64(i))
			}
		}
		for i := 0; i+1 < len(wire); i++ {
			if rng.IntN(10) == 0 {
				j := i + 1 + rng.IntN(min(20, len(wire)-i-1))
				wire[i], wire[j] = wire[j], wire[i]
			}
		}
		var q seqStats
		distinct := make(map[uint64]bool)
		lo, hi := wire[0], wire[0]
		for _, ext := range wire {
			q.update(9, uint16(ext))
			distinct[ext] = true
			lo, hi = min(lo, ext), max(hi, ext)
		}
		want := hi - lo + 1
		if q.expected() != want || q.lost() != want-uint64(len(distinct)) {
			t.Errorf("seed %d: expected %d lost %d, want %d %d", seed, q.expected(), q.lost(), want, want-uint64(len(distinct)))
		}
	}
}
