package rtc

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/stun/v4"

	"ivrd/media"
)

// socket is a UDP socket agents' browsers send to: a Peer's own, or the
// one port every Peer shares. One goroutine reads it (the shared port a
// batch at a time, recvmmsg) and handles each packet on the spot (RFC 7983 tells them apart by the first byte): STUN
// checks are answered, DTLS goes to its Peer's handshake, SRTP is
// decrypted and relayed to the bridged caller, RTCP is dropped.
//
// A packet reaches a Peer by its source address, once a STUN check from
// that address proved it knows the Peer's ICE password; the check itself
// finds its Peer by the ufrag in its USERNAME.
type socket struct {
	conn  *net.UDPConn
	batch int // datagrams read at once
	log   *slog.Logger
	done  chan struct{} // closed when the reader returned

	mu      sync.RWMutex
	byUfrag map[string]*Peer
	byAddr  map[netip.AddrPort]*Peer
	bySSRC  map[uint32]*Peer // the SSRC each agent sends with
}

// socketBuffer is the kernel's receive and send room for the socket: the
// shared port carries every agent (50 packets a second each).
const socketBuffer = 4 << 20

// Datagrams read at once: the shared port's reader takes up to
// sharedBatch (48 KB of buffers, once); an agent's own port carries 50
// packets a second and reads them one by one.
const (
	sharedBatch = 32
	ownBatch    = 1
)

// newSocket starts reading conn, batch datagrams at a time at most. The
// kernel stamps each datagram's arrival (media.EnableRxStamps), for the
// relay latency.
func newSocket(conn *net.UDPConn, batch int, log *slog.Logger) *socket {
	_ = conn.SetReadBuffer(socketBuffer)
	_ = conn.SetWriteBuffer(socketBuffer)
	_ = media.EnableRxStamps(conn)
	s := &socket{
		conn:    conn,
		batch:   batch,
		log:     log,
		done:    make(chan struct{}),
		byUfrag: make(map[string]*Peer),
		byAddr:  make(map[netip.AddrPort]*Peer),
		bySSRC:  make(map[uint32]*Peer),
	}
	go s.serve()
	return s
}

// close closes the socket and waits for its reader.
func (s *socket) close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

func (s *socket) addPeer(p *Peer) {
	s.mu.Lock()
	s.byUfrag[p.ufrag] = p
	s.mu.Unlock()
}

// removePeer forgets p and every address routed to it.
func (s *socket) removePeer(p *Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byUfrag[p.ufrag] == p {
		delete(s.byUfrag, p.ufrag)
	}
	for a, q := range s.byAddr {
		if q == p {
			delete(s.byAddr, a)
		}
	}
	for ssrc, q := range s.bySSRC {
		if q == p {
			delete(s.bySSRC, ssrc)
		}
	}
}

// learnSSRC notes that p's agent sends with ssrc.
func (s *socket) learnSSRC(ssrc uint32, p *Peer) {
	s.mu.Lock()
	s.bySSRC[ssrc] = p
	s.mu.Unlock()
}

// route sends what comes from a to p from now on.
func (s *socket) route(a netip.AddrPort, p *Peer) {
	s.mu.RLock()
	q := s.byAddr[a]
	s.mu.RUnlock()
	if q == p {
		return
	}
	s.mu.Lock()
	s.byAddr[a] = p
	s.mu.Unlock()
}

// scratch is a reader's room for one packet at a time.
type scratch struct {
	plain [1500]byte // decrypted SRTP
	conv  [1500]byte // converted between laws
	hdr   rtp.Header
	msg   stun.Message
}

func (s *socket) serve() {
	defer close(s.done)
	rd, err := media.NewBatchReader(s.conn, s.batch)
	if err != nil {
		s.log.Error("agents' audio socket unreadable", "error", err)
		return
	}
	sc := new(scratch)
	for {
		n, err := rd.Read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors surface here on some kernels
		}
		for i := range n {
			b, from, rx := rd.Packet(i)
			if len(b) > 0 && from.IsValid() {
				s.handle(b, from, rx, sc)
			}
		}
	}
}

// handle takes one datagram from the browser at from.
func (s *socket) handle(b []byte, from netip.AddrPort, rx time.Time, sc *scratch) {
	if b[0] < 4 { // STUN
		s.stun(b, from, sc)
		return
	}
	s.mu.RLock()
	p, routed := s.byAddr[from]
	if !routed && len(b) >= 12 && b[0]>>6 == 2 && (b[1] < 192 || b[1] > 223) {
		// SRTP from an address not seen: the agent's NAT may have moved
		// it. Its SSRC (sent in the clear) names the Peer; the Peer
		// takes it only if it decrypts.
		p = s.bySSRC[uint32(b[8])<<24|uint32(b[9])<<16|uint32(b[10])<<8|uint32(b[11])]
	}
	s.mu.RUnlock()
	if p != nil {
		p.packet(s, b, from, routed, rx, sc)
	}
}

// stun answers a connectivity or consent check for the Peer its USERNAME
// names ("ourUfrag:theirUfrag"). Anything else STUN is dropped.
func (s *socket) stun(b []byte, from netip.AddrPort, sc *scratch) {
	m := &sc.msg
	m.Raw = append(m.Raw[:0], b...)
	if err := m.Decode(); err != nil || m.Type != stun.BindingRequest {
		return
	}
	var user stun.Username
	if err := user.GetFrom(m); err != nil {
		return
	}
	ours, _, ok := strings.Cut(string(user), ":")
	if !ok {
		return
	}
	s.mu.RLock()
	p := s.byUfrag[ours]
	s.mu.RUnlock()
	if p == nil {
		return
	}
	p.check(s, m, string(user), from)
}
