package testcaller

import (
	"net"
	"testing"
	"time"
)

// TestUDPDrops: datagrams sent to a socket whose buffer is full and that
// nobody reads are counted as that socket's drops, and as no other's.
func TestUDPDrops(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(4096) // the kernel's least: a few datagrams
	port := conn.LocalAddr().(*net.UDPAddr).Port
	quiet, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	before, ok := udpDrops(map[int]bool{port: true})
	if !ok {
		t.Fatal("/proc/net/udp unreadable")
	}
	if before != 0 {
		t.Fatalf("a new socket has %d drops", before)
	}
	sender, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	for range 200 {
		if _, err := sender.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	after, _ := udpDrops(map[int]bool{port: true})
	if after < 100 {
		t.Errorf("200 datagrams into a 4 KB buffer nobody reads: %d drops counted", after)
	}
	if other, _ := udpDrops(map[int]bool{quiet.LocalAddr().(*net.UDPAddr).Port: true}); other != 0 {
		t.Errorf("a socket nothing was sent to counts %d drops: ports not told apart", other)
	}
}
