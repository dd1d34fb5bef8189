package media

import (
	"net"
	"testing"
	"time"
)

// TestRxStamp: with stamps enabled, a datagram read with ReadMsgUDP
// carries the kernel's receive time, which RxStamp finds; without them,
// and in control data that holds something else, it finds none.
func TestRxStamp(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func() {
		c, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	read := func() []byte {
		buf := make([]byte, 64)
		oob := make([]byte, StampOOB)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, oobn, _, _, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		return oob[:oobn]
	}
	send()
	if _, ok := RxStamp(read()); ok {
		t.Error("a stamp on a socket that did not ask for one")
	}
	if err := EnableRxStamps(conn); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	send()
	time.Sleep(30 * time.Millisecond)
	oob := read()
	rx, ok := RxStamp(oob)
	if !ok {
		t.Fatalf("no stamp in %d bytes of control data", len(oob))
	}
	if d := rx.Sub(sent); d < -time.Millisecond || d > 25*time.Millisecond {
		t.Errorf("stamped %v after the send, want it at the send (the read came 30 ms later)", d)
	}
	if _, ok := RxStamp(oob[:len(oob)-1]); ok {
		t.Error("a stamp in cut-short control data")
	}
}

// TestObserveRelay: each latency lands in its bucket, the sum adds up,
// and a packet without a stamp is not counted.
func TestObserveRelay(t *testing.T) {
	before, beforeSum := RelayLatency(ToCaller)
	ObserveRelay(ToCaller, time.Now().Add(-3*time.Millisecond))
	ObserveRelay(ToCaller, time.Time{})
	after, sum := RelayLatency(ToCaller)
	var got []int
	for i := range after {
		for range after[i] - before[i] {
			got = append(got, i)
		}
	}
	if len(got) != 1 || RelayBuckets[got[0]] != 5*time.Millisecond {
		t.Errorf("buckets %v, want one count in the 5 ms bucket (index 6)", got)
	}
	if d := sum - beforeSum; d < 3*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("sum grew by %v, want about 3 ms", d)
	}
}
