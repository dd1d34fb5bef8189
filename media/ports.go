package media

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// ErrNoPorts means every port of the range is taken.
var ErrNoPorts = errors.New("no free RTP port in the configured range")

// PortPool hands out RTP ports from a configured range. RTP takes the even
// port (RFC 3550 §11); the odd one above it is left for RTCP.
type PortPool struct {
	min, max int

	mu    sync.Mutex
	next  int
	inUse map[int]bool
}

// NewPortPool checks and returns a pool for the inclusive range [min, max].
func NewPortPool(min, max int) (*PortPool, error) {
	if min < 1 || max > 65535 || min > max {
		return nil, fmt.Errorf("RTP port range %d-%d is not a valid range", min, max)
	}
	lo, hi := min, max
	if lo%2 == 1 {
		lo++
	}
	if hi%2 == 0 { // an even last port's RTCP port would fall outside the range
		hi--
	}
	if hi-lo < 1 {
		return nil, fmt.Errorf("RTP port range %d-%d holds no RTP/RTCP pair", min, max)
	}
	return &PortPool{min: lo, max: hi, next: lo, inUse: make(map[int]bool)}, nil
}

// Listen binds a UDP socket on ip at a free even port of the range, trying
// ports in turn and skipping those the system reports busy.
func (p *PortPool) Listen(ip net.IP) (*net.UDPConn, int, error) {
	var conn *net.UDPConn
	port, err := p.take(func(port int) error {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		conn = c
		return err
	})
	return conn, port, err
}

// take marks the first free even port that bind succeeds on as in use and
// returns it, trying the ports of the range in turn from where the last
// search ended; ErrNoPorts when bind fails on every free one.
func (p *PortPool) take(bind func(port int) error) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	count := (p.max-p.min)/2 + 1
	for i := 0; i < count; i++ {
		port := p.next
		p.next += 2
		if p.next > p.max {
			p.next = p.min
		}
		if p.inUse[port] {
			continue
		}
		if err := bind(port); err != nil {
			continue
		}
		p.inUse[port] = true
		return port, nil
	}
	return 0, ErrNoPorts
}

// Release returns a port to the pool.
func (p *PortPool) Release(port int) {
	p.mu.Lock()
	delete(p.inUse, port)
	p.mu.Unlock()
}

// InUse counts ports handed out and not released.
func (p *PortPool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inUse)
}
