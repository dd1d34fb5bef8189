package rtc

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"ivrd/media"
)

// TestBatchReader: a burst of datagrams larger than a batch is read
// whole, in order, each with its bytes, its sender and (on Linux) the
// kernel's receive stamp.
func TestBatchReader(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stamps := media.EnableRxStamps(conn) == nil && runtime.GOOS == "linux"
	_ = conn.SetReadBuffer(1 << 20)
	rd, err := newBatchReader(conn, sharedBatch)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	want := sender.LocalAddr().(*net.UDPAddr).AddrPort()
	const n = 3*sharedBatch + 5
	before := time.Now()
	for i := range n {
		if _, err := fmt.Fprintf(sender, "datagram %03d", i); err != nil {
			t.Fatal(err)
		}
	}
	got, reads := 0, 0
	for got < n {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := rd.read()
		if err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
		reads++
		for i := range k {
			b, from, rx := rd.packet(i)
			if string(b) != fmt.Sprintf("datagram %03d", got) {
				t.Fatalf("datagram %d reads %q", got, b)
			}
			if from != netip.AddrPortFrom(want.Addr().Unmap(), want.Port()) {
				t.Fatalf("datagram %d from %v, want %v", got, from, want)
			}
			if stamps && (rx.Before(before.Add(-time.Second)) || rx.After(time.Now().Add(time.Second))) {
				t.Fatalf("datagram %d stamped %v, sent after %v", got, rx, before)
			}
			got++
		}
	}
	if raceEnabled {
		t.Log("allocations not counted: the race detector's instrumentation allocates")
	} else if a := testing.AllocsPerRun(10, func() {
		if _, err := sender.Write([]byte("one more")); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.read(); err != nil {
			t.Fatal(err)
		}
		rd.packet(0)
	}); a > 0 {
		t.Errorf("%v allocations a read", a)
	}
	if runtime.GOOS == "linux" && reads > n/2 {
		t.Errorf("%d datagrams took %d reads: not batched", n, reads)
	}
	t.Logf("%d datagrams in %d reads", n, reads)
}
