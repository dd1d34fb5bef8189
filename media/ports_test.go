package media

import (
	"errors"
	"net"
	"sync"
	"testing"
)

func TestNewPortPoolValidates(t *testing.T) {
	tests := []struct {
		min, max int
		ok       bool
	}{
		{10000, 20000, true},
		{10001, 10003, true}, // odd start: RTP at 10002, RTCP at 10003
		{10000, 10001, true},
		{0, 100, false},
		{-2, 100, false},
		{1000, 70000, false},
		{2000, 1000, false},
		{10000, 10000, false}, // no room for RTCP
		{10001, 10002, false}, // 10002's RTCP would be 10003
		{65534, 65535, true},
	}
	for _, tt := range tests {
		p, err := NewPortPool(tt.min, tt.max)
		if (err == nil) != tt.ok {
			t.Errorf("NewPortPool(%d, %d) = %v, %v; want ok=%v", tt.min, tt.max, p, err, tt.ok)
		}
		if err != nil && p != nil {
			t.Errorf("NewPortPool(%d, %d) returned a pool with an error", tt.min, tt.max)
		}
	}
}

// listenAll takes ports until the pool is exhausted.
func listenAll(t *testing.T, p *PortPool) (ports []int, conns []*net.UDPConn) {
	t.Helper()
	for {
		c, port, err := p.Listen(loopback)
		if err != nil {
			if !errors.Is(err, ErrNoPorts) {
				t.Fatalf("Listen: %v, want ErrNoPorts at the end", err)
			}
			if c != nil || port != 0 {
				t.Fatalf("Listen returned %v, %d with an error", c, port)
			}
			return ports, conns
		}
		t.Cleanup(func() { c.Close() })
		if got := c.LocalAddr().(*net.UDPAddr).Port; got != port {
			t.Fatalf("Listen says port %d, socket is on %d", port, got)
		}
		ports = append(ports, port)
		conns = append(conns, c)
		if len(ports) > 1000 {
			t.Fatal("the pool never runs out")
		}
	}
}

// TestPortPoolEvenPairs: every port handed out is even, with its RTCP
// neighbour inside the range too, each once; then ErrNoPorts.
func TestPortPoolEvenPairs(t *testing.T) {
	for _, odd := range []struct {
		name       string
		loAdd, hiN int
	}{
		{"even..odd", 0, 0},
		{"odd..even", 1, 1},
		{"even..even", 0, 1},
		{"odd..odd", 1, 0},
	} {
		t.Run(odd.name, func(t *testing.T) {
			base, top := freePortRange(t, 5) // base even, top odd
			lo, hi := base+odd.loAdd, top+odd.hiN-2
			p, err := NewPortPool(lo, hi)
			if err != nil {
				t.Fatal(err)
			}
			ports, _ := listenAll(t, p)
			seen := map[int]bool{}
			for _, port := range ports {
				if port%2 != 0 {
					t.Errorf("odd RTP port %d", port)
				}
				if port < lo || port+1 > hi {
					t.Errorf("port pair %d/%d outside %d-%d", port, port+1, lo, hi)
				}
				if seen[port] {
					t.Errorf("port %d handed out twice", port)
				}
				seen[port] = true
			}
			// Every pair that fits is used.
			want := 0
			for q := lo + lo%2; q+1 <= hi; q += 2 {
				want++
			}
			if len(ports) != want {
				t.Errorf("%d ports from %d-%d, want %d", len(ports), lo, hi, want)
			}
			if p.InUse() != len(ports) {
				t.Errorf("InUse() = %d, want %d", p.InUse(), len(ports))
			}
		})
	}
}

func TestPortPoolRelease(t *testing.T) {
	p := newTestPool(t, 3)
	ports, conns := listenAll(t, p)
	if len(ports) != 3 {
		t.Fatalf("%d ports", len(ports))
	}
	// Close the socket and release the middle port: it is the only one
	// to be had.
	conns[1].Close()
	p.Release(ports[1])
	if p.InUse() != 2 {
		t.Errorf("InUse() = %d after a release, want 2", p.InUse())
	}
	c, port, err := p.Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if port != ports[1] {
		t.Errorf("got port %d, want the released %d", port, ports[1])
	}
	if _, _, err := p.Listen(loopback); !errors.Is(err, ErrNoPorts) {
		t.Errorf("Listen = %v, want ErrNoPorts", err)
	}
	// Releasing a port never handed out changes nothing.
	p.Release(1)
	if p.InUse() != 3 {
		t.Errorf("InUse() = %d, want 3", p.InUse())
	}
}

// TestPortPoolSkipsBusyPorts: a port another program holds is passed over,
// and is tried again on the next round once it is free.
func TestPortPoolSkipsBusyPorts(t *testing.T) {
	lo, hi := freePortRange(t, 3)
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback, Port: lo + 2})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPortPool(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	ports, conns := listenAll(t, p)
	if len(ports) != 2 || ports[0] != lo || ports[1] != lo+4 {
		t.Fatalf("ports %v, want [%d %d] around the busy %d", ports, lo, lo+4, lo+2)
	}
	if p.InUse() != 2 {
		t.Errorf("InUse() = %d: the busy port was counted", p.InUse())
	}
	busy.Close()
	c, port, err := p.Listen(loopback)
	if err != nil {
		t.Fatalf("after the other program let go: %v", err)
	}
	c.Close()
	if port != lo+2 {
		t.Errorf("got %d, want the freed %d", port, lo+2)
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestPortPoolConcurrent: many calls at once never share a port.
func TestPortPoolConcurrent(t *testing.T) {
	p := newTestPool(t, 16)
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				c, port, err := p.Listen(loopback)
				if err != nil {
					continue // all taken at this moment
				}
				mu.Lock()
				got[port]++
				if got[port] > 1 {
					t.Errorf("port %d handed out while in use", port)
				}
				mu.Unlock()
				c.Close()
				mu.Lock()
				got[port]--
				mu.Unlock()
				p.Release(port)
			}
		}()
	}
	wg.Wait()
	if p.InUse() != 0 {
		t.Errorf("InUse() = %d after every port was released", p.InUse())
	}
}
