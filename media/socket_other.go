//go:build !linux

package media

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Off Linux a session's socket is a net.UDPConn read by a goroutine of its
// own (socket_linux.go has the pollers that serve every call on Linux).
type socket struct {
	conn *net.UDPConn
	wg   sync.WaitGroup
}

// openSocket binds a socket on ip at a free port of pool.
func openSocket(pool *PortPool, ip net.IP) (*socket, int, error) {
	conn, port, err := pool.Listen(ip)
	if err != nil {
		return nil, 0, err
	}
	return &socket{conn: conn}, port, nil
}

func (so *socket) enableStamps() error { return EnableRxStamps(so.conn) }

func (so *socket) writeTo(b []byte, to *net.UDPAddr) error {
	_, err := so.conn.WriteToUDP(b, to)
	return err
}

// startReceive runs the goroutine that passes every datagram to s's
// receiver.
func (so *socket) startReceive(s *Session) error {
	so.wg.Add(1)
	go so.receive(s)
	return nil
}

// close closes the socket and waits for the receive goroutine: no packet
// is handled once it returns.
func (so *socket) close() error {
	err := so.conn.Close()
	so.wg.Wait()
	return err
}

func (so *socket) receive(s *Session) {
	defer so.wg.Done()
	buf := make([]byte, 1500)
	var oob [StampOOB]byte
	// ReadFromUDP allocates the sender's IP on every packet;
	// ReadMsgUDPAddrPort does not, and from is rebuilt in place (packet
	// does not keep it: latch copies).
	var (
		from net.UDPAddr
		ip   [16]byte
	)
	for {
		n, oobn, _, ap, err := so.conn.ReadMsgUDPAddrPort(buf, oob[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors surface here on some systems
		}
		addr := ap.Addr().Unmap()
		if addr.Is4() {
			v4 := addr.As4()
			from.IP = append(ip[:0], v4[:]...)
		} else {
			v6 := addr.As16()
			from.IP = append(ip[:0], v6[:]...)
		}
		from.Port, from.Zone = int(ap.Port()), addr.Zone()
		rx, _ := RxStamp(oob[:oobn])
		s.rx.packet(buf[:n], &from, time.Now(), rx)
	}
}
