package media

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestBatchReader: a burst of datagrams larger than a batch is read
// whole, in order, each with its bytes, its sender and (on Linux) the
// kernel's receive stamp.
func TestBatchReader(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stamps := EnableRxStamps(conn) == nil && runtime.GOOS == "linux"
	_ = conn.SetReadBuffer(1 << 20)
	const batch = 32
	rd, err := NewBatchReader(conn, batch)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	want := sender.LocalAddr().(*net.UDPAddr).AddrPort()
	const n = 3*batch + 5
	before := time.Now()
	for i := range n {
		if _, err := fmt.Fprintf(sender, "datagram %03d", i); err != nil {
			t.Fatal(err)
		}
	}
	got, reads := 0, 0
	for got < n {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := rd.Read()
		if err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
		reads++
		for i := range k {
			b, from, rx := rd.Packet(i)
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
		if _, err := rd.Read(); err != nil {
			t.Fatal(err)
		}
		rd.Packet(0)
	}); a > 0 {
		t.Errorf("%v allocations a read", a)
	}
	if runtime.GOOS == "linux" && reads > n/2 {
		t.Errorf("%d datagrams took %d reads: not batched", n, reads)
	}
	t.Logf("%d datagrams in %d reads", n, reads)
}

// TestBatchWriter: datagrams queued to several destinations, more than a
// batch, all arrive whole and in order at the right one; Flush sends a
// part batch; nothing is allocated.
func TestBatchWriter(t *testing.T) {
	const batch = 8
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w, err := NewBatchWriter(conn, batch)
	if err != nil {
		t.Fatal(err)
	}
	var sinks [2]*net.UDPConn
	for i := range sinks {
		if sinks[i], err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		defer sinks[i].Close()
	}
	const n = 2*batch + 3
	for i := range n {
		to := sinks[i%2].LocalAddr().(*net.UDPAddr).AddrPort()
		k := copy(w.Buffer(), fmt.Sprintf("datagram %03d", i))
		if err := w.Queue(k, to); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for i := range n {
		sink := sinks[i%2]
		_ = sink.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, from, err := sink.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if string(buf[:k]) != fmt.Sprintf("datagram %03d", i) {
			t.Fatalf("sink %d got %q, want datagram %03d", i%2, buf[:k], i)
		}
		if from.Port() != uint16(conn.LocalAddr().(*net.UDPAddr).Port) {
			t.Fatalf("datagram %d from %v, not the writer's socket", i, from)
		}
	}
	to := sinks[0].LocalAddr().(*net.UDPAddr).AddrPort()
	if raceEnabled {
		return
	}
	if a := testing.AllocsPerRun(20, func() {
		k := copy(w.Buffer(), "one more")
		_ = w.Queue(k, to)
		_ = w.Flush()
		_, _ = sinks[0].Read(buf)
	}); a > 0 {
		t.Errorf("%v allocations a datagram", a)
	}
}
