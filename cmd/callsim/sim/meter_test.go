package sim

import (
	"testing"
	"time"
)

func TestMeterLoss(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		seqs                     []uint32
		received, expected, lost int
	}{
		{"none", nil, 0, 0, 0},
		{"in order", []uint32{5, 6, 7, 8}, 4, 4, 0},
		{"gaps", []uint32{0, 1, 4, 5, 9}, 5, 10, 5},
		{"reordered", []uint32{10, 12, 11, 13}, 4, 4, 0},
		{"late first", []uint32{3, 2, 1, 4}, 4, 4, 0},
		{"duplicate is no negative loss", []uint32{1, 2, 2, 3}, 4, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Meter
			at := time.Unix(100, 0)
			for _, s := range tc.seqs {
				m.Add(Stamp{Seq: s, Sent: at.UnixNano()}, at)
			}
			if m.Received() != tc.received || m.Expected() != tc.expected || m.Lost() != tc.lost {
				t.Fatalf("received %d expected %d lost %d, want %d %d %d", m.Received(), m.Expected(), m.Lost(), tc.received, tc.expected, tc.lost)
			}
		})
	}
}

func TestMeterJitterAndLatency(t *testing.T) {
	base := time.Unix(1000, 0)
	send := func(i int) time.Time { return base.Add(time.Duration(i) * 20 * time.Millisecond) }

	// A constant 5 ms transit: no jitter, every latency 5 ms.
	var steady Meter
	for i := range 50 {
		steady.Add(Stamp{Seq: uint32(i), Sent: send(i).UnixNano()}, send(i).Add(5*time.Millisecond))
	}
	if steady.Jitter() != 0 {
		t.Errorf("steady jitter %v", steady.Jitter())
	}
	if l := steady.Latency(); l.Count() != 50 || l.Min() != 5*time.Millisecond || l.Max() != 5*time.Millisecond {
		t.Fatalf("latency: %d packets from %v to %v, want 50 of 5 ms", l.Count(), l.Min(), l.Max())
	}
	if !steady.FirstAt().Equal(send(0).Add(5 * time.Millisecond)) {
		t.Errorf("first at %v", steady.FirstAt())
	}

	// Transit alternating 0 and 4 ms: |D| is 4 ms every packet, so the
	// RFC 3550 estimate J += (|D|−J)/16 climbs toward 4 ms:
	// J_n = 4·(1 − (15/16)^n).
	var alt Meter
	n := 200
	for i := range n {
		d := time.Duration(i%2) * 4 * time.Millisecond
		alt.Add(Stamp{Seq: uint32(i), Sent: send(i).UnixNano()}, send(i).Add(d))
	}
	want := 4.0
	f := 1.0
	for range n - 1 {
		f *= 15.0 / 16
	}
	want *= 1 - f
	if got := float64(alt.Jitter()) / 1e6; got < want-0.001 || got > want+0.001 {
		t.Errorf("jitter %.4f ms, want %.4f", got, want)
	}
}
