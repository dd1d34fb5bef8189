package testcaller

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"ivrd/media"
)

// sharedSockets is how many shared RTP sockets a phone spreads its calls
// over: each has its own buffer and reader, so one held-up reader does not
// overflow the buffer every call's packets go into.
const sharedSockets = 4

// rtpBatch is how many datagrams the shared socket reads with one system
// call: at 2,000 calls 100,000 packets a second arrive, about 100 a
// millisecond.
const rtpBatch = 64

// sharedRTP is the one RTP socket of a phone made with
// PhoneConfig.SharedRTP. Every call sends from it and is sent to it; one
// goroutine reads it in batches and hands each packet to the call whose
// server address (its own port on the server) sent it. The sender sends
// each millisecond's packets on it in batches too (sendmmsg).
type sharedRTP struct {
	conn *net.UDPConn
	rd   *media.BatchReader
	out  *media.BatchWriter // the sender's goroutine's (sender.go)
	done chan struct{}

	mu      sync.Mutex // held while a batch is handed out: remove waits for it
	calls   map[netip.AddrPort]*Call
	strays  int // packets from no call's address (before its answer was read, say)
	scratch rxScratch
}

func newSharedRTP(ip string) (*sharedRTP, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		return nil, fmt.Errorf("testcaller: shared rtp socket: %w", err)
	}
	// Room for a few frames of every call while the reader is held up.
	_ = conn.SetReadBuffer(8 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	_ = media.EnableRxStamps(conn) // arrival from the kernel's stamp where the system has them
	rd, err := media.NewBatchReader(conn, rtpBatch)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("testcaller: shared rtp socket: %w", err)
	}
	out, err := media.NewBatchWriter(conn, rtpBatch)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("testcaller: shared rtp socket: %w", err)
	}
	s := &sharedRTP{conn: conn, rd: rd, out: out, done: make(chan struct{}), calls: make(map[netip.AddrPort]*Call)}
	go s.run()
	return s, nil
}

// add hands the packets from c's server address to c.
func (s *sharedRTP) add(c *Call) {
	s.mu.Lock()
	s.calls[c.sendTo] = c
	s.mu.Unlock()
}

// remove stops handing packets to c; none is being handed to it once it
// returns.
func (s *sharedRTP) remove(c *Call) {
	s.mu.Lock()
	if s.calls[c.sendTo] == c { // the server may have given the port to a newer call
		delete(s.calls, c.sendTo)
	}
	s.mu.Unlock()
}

// Strays is how many packets came from an address no call knew.
func (s *sharedRTP) Strays() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.strays
}

func (s *sharedRTP) close() {
	s.conn.Close()
	<-s.done
}

func (s *sharedRTP) run() {
	defer close(s.done)
	for {
		n, err := s.rd.Read()
		if err != nil {
			var errno syscall.Errno
			if errors.As(err, &errno) {
				continue // an ICMP error queued on the socket: a call's server port is gone
			}
			return // closed
		}
		now := time.Now()
		s.mu.Lock()
		for i := range n {
			b, from, at := s.rd.Packet(i)
			if at.IsZero() {
				at = now
			}
			if c := s.calls[from]; c != nil {
				c.handleRTP(b, at, &s.scratch)
			} else {
				s.strays++
			}
		}
		s.mu.Unlock()
	}
}
