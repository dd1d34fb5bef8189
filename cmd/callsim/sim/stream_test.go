package sim

import (
	"testing"
	"time"
)

// A stream paced exactly every 20 ms has no jitter, no loss and 20 ms
// gaps; the meter must see a lost packet, a late one (jitter) and a long
// gap, across a sequence number and a timestamp wrap.
func TestStreamMeter(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var paced streamMeter
	seq, ts := uint16(65530), uint32(1<<32-800)
	for i := range 100 {
		paced.add(7, seq, ts, t0.Add(time.Duration(i)*20*time.Millisecond))
		seq++
		ts += 160
	}
	if paced.expected() != 100 || paced.lost() != 0 || paced.jitterDuration() > time.Microsecond || paced.maxGap != 20*time.Millisecond {
		t.Fatalf("paced: expected %d lost %d jitter %v gap %v", paced.expected(), paced.lost(), paced.jitterDuration(), paced.maxGap)
	}

	var rough streamMeter
	seq, ts = 65530, 1<<32-800
	at := t0
	for i := range 100 {
		switch i {
		case 10: // lost
		case 50: // 15 ms late, then the next on time
			rough.add(7, seq, ts, at.Add(15*time.Millisecond))
		default:
			rough.add(7, seq, ts, at)
		}
		if i == 70 {
			at = at.Add(200 * time.Millisecond) // the server stalled
		}
		rough.add(9, 1, 1, at) // another source: counted apart
		seq++
		ts += 160
		at = at.Add(20 * time.Millisecond)
	}
	if rough.expected() != 100 || rough.lost() != 1 {
		t.Errorf("rough: expected %d, lost %d; want 100, 1", rough.expected(), rough.lost())
	}
	if rough.others != 100 {
		t.Errorf("other SSRC: %d, want 100", rough.others)
	}
	if j := rough.jitterDuration(); j < time.Millisecond || j > 20*time.Millisecond {
		t.Errorf("rough jitter %v: want a few ms after a late packet and a stall", j)
	}
	if rough.maxGap != 220*time.Millisecond {
		t.Errorf("longest gap %v, want 220ms", rough.maxGap)
	}

	var sum streamSum
	sum.add(&paced)
	sum.add(&rough)
	sum.add(&streamMeter{}) // a call that heard nothing
	r := sum.result()
	if r.Calls != 2 || r.Packets != 199 || r.Lost != 1 || r.LossPct < 0.49 || r.LossPct > 0.51 || r.MaxGap.Max < 219 {
		t.Errorf("sum %+v", r)
	}
}
