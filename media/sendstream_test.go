package media

import (
	"math/rand/v2"
	"testing"
	"time"
)

// stamped is one packet a SendStream numbered.
type stamped struct {
	seq     uint16
	ts      uint32
	marker  bool
	samples int
}

// streamLog checks every packet of a SendStream against the one before:
// sequence numbers up by one, timestamps never repeating or going back.
type streamLog struct {
	t    *testing.T
	st   *SendStream
	last *stamped
}

func (l *streamLog) add(seq uint16, ts uint32, m bool, samples int) stamped {
	l.t.Helper()
	p := stamped{seq, ts, m, samples}
	if l.last != nil {
		if seq != l.last.seq+1 {
			l.t.Fatalf("sequence %d after %d", seq, l.last.seq)
		}
		if d := int32(ts - (l.last.ts + uint32(l.last.samples))); d < 0 {
			l.t.Fatalf("timestamp %d overlaps the packet before (%d + %d samples)", ts, l.last.ts, l.last.samples)
		}
	}
	l.last = &p
	return p
}

func (l *streamLog) frame(at time.Time, samples int, marker bool) stamped {
	l.t.Helper()
	seq, ts, m := l.st.Frame(at, samples, marker)
	return l.add(seq, ts, m, samples)
}

func (l *streamLog) relay(now time.Time, ssrc, ts uint32, samples int) stamped {
	l.t.Helper()
	seq, ots, m, ok := l.st.Relay(now, ssrc, ts, samples, false)
	if !ok {
		l.t.Fatalf("relayed packet (ssrc %d ts %d) refused", ssrc, ts)
	}
	return l.add(seq, ots, m, samples)
}

func (l *streamLog) refused(now time.Time, ssrc, ts uint32, samples int) {
	l.t.Helper()
	if _, _, _, ok := l.st.Relay(now, ssrc, ts, samples, false); ok {
		l.t.Fatalf("relayed packet (ssrc %d ts %d) sent, want refused", ssrc, ts)
	}
}

// TestSendStream walks one stream through prompts, a relayed source with
// jitter, loss, duplicates, reordering, odd packet sizes, a pause its
// timestamps do not count, a jump, a new source, and prompts again — over
// the wrap of both counters.
func TestSendStream(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	var ts0 uint32 = 0xFFFFFE00 // wraps after 512 samples
	st := &SendStream{ssrc: 7, seq: 0xFFFD, epoch: t0, ts0: ts0}
	l := &streamLog{t: t, st: st}
	want := func(p stamped, ts uint32, marker bool) {
		t.Helper()
		if p.ts != ts || p.marker != marker {
			t.Fatalf("got ts %d marker %v, want ts %d marker %v", p.ts, p.marker, ts, marker)
		}
	}

	// Prompt frames on the 20 ms clock, the first with the marker.
	for i := range 5 {
		p := l.frame(at(float64(20*(i+1))), FrameSamples, i == 0)
		want(p, ts0+uint32(160*(i+1)), i == 0)
	}
	next := ts0 + 6*160 // after the last frame

	// The relay starts between two ticks: the first packet continues the
	// stream (the clock is behind the end of the last frame), marked.
	st.Switch()
	const a = 100
	want(l.relay(at(103), a, 5000, 160), next, true)
	// Arrival jitter does not move the timestamps: they follow the source.
	want(l.relay(at(131), a, 5160, 160), next+160, false)
	want(l.relay(at(139), a, 5320, 160), next+320, false)
	// A duplicate and a reordered packet are refused.
	l.refused(at(140), a, 5320, 160)
	l.refused(at(141), a, 5160, 160)
	// A lost packet leaves a gap of its length.
	want(l.relay(at(181), a, 5640, 160), next+640, false)
	// 10 ms and 30 ms packets.
	want(l.relay(at(190), a, 5800, 80), next+800, false)
	want(l.relay(at(200), a, 5880, 240), next+880, false)
	// The source pauses 1 s without counting it in its timestamps: the
	// stream continues from the clock, marked.
	p := l.relay(at(1230), a, 6120, 160)
	want(p, st.clock(at(1230)), true)
	want(l.relay(at(1250), a, 6280, 160), p.ts+160, false)
	// The source's numbering jumps ahead: the stream does not follow it
	// beyond the clock, it just continues.
	want(l.relay(at(1270), a, 900000, 160), p.ts+320, false)
	want(l.relay(at(1290), a, 900160, 160), p.ts+480, false)
	// And back, far: followed afresh, not refused as late.
	want(l.relay(at(1295), a, 10, 160), p.ts+640, false)
	want(l.relay(at(1298), a, 170, 160), p.ts+800, false)
	// Another source without a Switch: marked, continuing.
	q := l.relay(at(1300), 200, 77, 160)
	want(q, p.ts+960, true)
	// Prompts again: marked, after the relayed audio even though that ran
	// ahead of the clock, then on the 20 ms pace.
	st.Switch()
	r := l.frame(at(1300), FrameSamples, false)
	want(r, q.ts+160, true)
	want(l.frame(at(1320), FrameSamples, false), r.ts+160, false)
	// The prompts fell silent for a while (the caller's hold): the clock
	// moved on, and so does the timestamp.
	want(l.frame(at(2000), FrameSamples, false), st.clock(at(2000)), false)
}

// TestSendStreamRandom: whatever the sources do, the stream's sequence
// numbers go up by one, its timestamps never repeat or go back, and it
// stays within the skew allowance of its clock.
func TestSendStreamRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 50 {
		now := time.Unix(2000, 0)
		st := NewSendStream(now)
		l := &streamLog{t: t, st: st}
		var srcTS uint32
		ssrc := uint32(1)
		relaying, fresh := false, true
		tick, arrived := now, now
		for range 2000 {
			switch rng.IntN(20) {
			case 0:
				st.Switch()
				relaying, fresh = !relaying, true
			case 1:
				ssrc++
				srcTS = rng.Uint32()
				fresh = true
			}
			if !relaying {
				tick = tick.Add(FrameDuration)
				if tick.Before(arrived) {
					tick = arrived.Truncate(FrameDuration).Add(FrameDuration)
				}
				now, arrived = tick, tick
				l.frame(tick, FrameSamples, false)
			} else {
				samples := []int{80, 160, 160, 160, 240}[rng.IntN(5)]
				now = now.Add(time.Duration(samples) * time.Second / SampleRate)
				switch rng.IntN(30) {
				case 0: // a pause not counted in the timestamps
					now = now.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
				case 1: // a jump of the source's numbering
					srcTS += rng.Uint32()
				case 2: // a duplicate or reordered packet
					if !fresh {
						if _, _, _, ok := st.Relay(arrived, ssrc, srcTS-uint32(samples), samples, false); ok {
							t.Fatalf("run %d: a packet before the last one was sent", run)
						}
					}
				}
				// Arrival with up to 60 ms of network jitter, in order.
				if a := now.Add(time.Duration(rng.IntN(60)) * time.Millisecond); a.After(arrived) {
					arrived = a
				}
				l.relay(arrived, ssrc, srcTS, samples)
				srcTS += uint32(samples)
				fresh = false
			}
			d := int32(l.last.ts - st.clock(arrived))
			if d > relayMaxSkewSamples+2*240 || d < -relayMaxSkewSamples-240 {
				t.Fatalf("run %d: timestamp %d samples away from the clock", run, d)
			}
		}
	}
}
