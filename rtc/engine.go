// Package rtc is the server's side of the agents' WebRTC audio: one audio
// path per logged-in agent, kept open across calls so audio flows the
// moment an agent accepts, and the Bridge that relays a caller's G.711 to
// and from it — untouched when both legs use the same law.
//
// The server's side is not a full PeerConnection. It is what one audio
// track needs, built from pion's parts (docs/agent-media.md):
//
//   - ICE-lite (RFC 8445 §2.5): the server has a reachable address and only
//     answers the browser's connectivity and consent checks (pion/stun);
//   - DTLS (pion/dtls) for the handshake that proves the browser holds the
//     certificate of its answer and yields the SRTP keys, and then is put
//     away;
//   - SRTP (pion/srtp) on every packet, encrypted and decrypted where it is
//     sent and read, with no goroutine, buffer or copy in between.
//
// An Engine holds what every agent's path shares: the certificate, the
// addresses and ports (a port per agent from a range, or one UDP port for
// every agent), the timeouts and logging. A Peer is one agent's path; a
// Bridge is one call on it.
package rtc

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
)

// Config configures an Engine.
type Config struct {
	// ListenIP is the address the agents' UDP sockets bind to (default
	// 127.0.0.1; 0.0.0.0 or :: for every interface).
	ListenIP net.IP
	// PublicIP is written into the candidates instead of the local address
	// (a 1:1 NAT: IVRD_PUBLIC_IP); nil: none.
	PublicIP net.IP
	// UDPPort > 0: one UDP port for every agent. 0: each Peer binds its
	// own port from PortMin..PortMax (both 0: any).
	UDPPort          int
	PortMin, PortMax uint16

	// How long the agent's side may send nothing (no audio, no consent
	// checks) before its path counts as lost (Peer.Done): the sum of the
	// two. Zero: 10 s and 5 s. Browsers send consent checks every 5 s or
	// so even when they send no audio.
	DisconnectedTimeout, FailedTimeout time.Duration

	// Logger gets the paths' state changes and pion's warnings and errors.
	Logger *slog.Logger
}

// Engine holds what every agent's audio path shares. It is safe for
// concurrent use.
type Engine struct {
	log     *slog.Logger
	logs    pionLogs
	network string   // udp4 or udp6
	binds   []net.IP // each agent's path has a socket on each (one port each)
	public  net.IP   // written into the candidates instead; nil: the bound address
	portMin uint16
	portMax uint16
	silence time.Duration // nothing from the agent this long: lost
	base    time.Time     // the Peers' activity clocks count from here

	cert        tls.Certificate
	fingerprint string // of cert: "sha-256 AB:CD:…"

	mux []*socket // the shared port on each bind address; nil unless Config.UDPPort

	count counters

	mu     sync.Mutex
	peers  map[*Peer]struct{}
	closed bool
}

// ErrEngineClosed is returned by NewPeer after Close.
var ErrEngineClosed = errors.New("rtc engine closed")

// NewEngine checks cfg, makes the certificate, binds the shared port if
// there is one, and returns an Engine; Close releases it.
func NewEngine(cfg Config) (*Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	listen := cfg.ListenIP
	if listen == nil {
		listen = net.IPv4(127, 0, 0, 1)
	}
	if cfg.UDPPort < 0 || cfg.UDPPort > 65535 {
		return nil, fmt.Errorf("rtc: UDP port %d out of range", cfg.UDPPort)
	}
	if cfg.PortMin > cfg.PortMax {
		return nil, fmt.Errorf("rtc: port range %d-%d is empty", cfg.PortMin, cfg.PortMax)
	}
	if cfg.PublicIP != nil && (cfg.PublicIP.IsUnspecified() || cfg.PublicIP.To16() == nil) {
		return nil, fmt.Errorf("rtc: public IP %v is not an address", cfg.PublicIP)
	}
	disconnected, failed := cfg.DisconnectedTimeout, cfg.FailedTimeout
	if disconnected <= 0 {
		disconnected = 10 * time.Second
	}
	if failed <= 0 {
		failed = 5 * time.Second
	}
	network := "udp4"
	if listen.To4() == nil {
		network = "udp6"
	}
	binds, err := bindAddrs(listen, cfg.PublicIP, network)
	if err != nil {
		return nil, err
	}
	// One certificate for every agent: the browser checks it against the
	// fingerprint in our offer, not against any authority.
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return nil, fmt.Errorf("rtc: make the DTLS certificate: %w", err)
	}
	e := &Engine{
		log:         log,
		logs:        pionLogs{log: log},
		network:     network,
		binds:       binds,
		public:      cfg.PublicIP,
		portMin:     cfg.PortMin,
		portMax:     cfg.PortMax,
		silence:     disconnected + failed,
		base:        time.Now(),
		cert:        cert,
		fingerprint: "sha-256 " + colonHex(sha256.Sum256(cert.Certificate[0])),
		peers:       make(map[*Peer]struct{}),
	}
	if cfg.UDPPort > 0 {
		for _, ip := range binds {
			conn, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: cfg.UDPPort})
			if err != nil {
				e.closeMux()
				return nil, fmt.Errorf("rtc: agents' UDP port %d on %v: %w", cfg.UDPPort, ip, err)
			}
			e.mux = append(e.mux, newSocket(conn, sharedBatch, e.log))
		}
	}
	return e, nil
}

// bindAddrs are the addresses an agent's sockets bind to: the one
// listened on; or, listening on every interface, each interface's address
// of the family (loopback and link-local left out), a socket on each, so
// that every reply leaves from the address the browser sent to (a socket
// on the wildcard address answers from whichever address the route
// picks, and the browser drops answers from an address it did not check).
// Behind a 1:1 NAT (public set) the wildcard stays one socket: the
// candidates name the public address, and the host has one route out.
func bindAddrs(listen, public net.IP, network string) ([]net.IP, error) {
	if public != nil || !listen.IsUnspecified() {
		return []net.IP{listen}, nil
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("rtc: list the interfaces' addresses: %w", err)
	}
	var out []net.IP
	for _, a := range ifaddrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		if (ipn.IP.To4() != nil) == (network == "udp4") {
			out = append(out, ipn.IP)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("rtc: listening on %v, but no interface has an address to offer the agents (set the public IP)", listen)
	}
	return out, nil
}

// colonHex writes a digest as SDP fingerprints do: AB:CD:…
func colonHex(sum [32]byte) string {
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// MuxAddr is the shared UDP port's (first) address, or nil without one.
func (e *Engine) MuxAddr() net.Addr {
	if e.mux == nil {
		return nil
	}
	return e.mux[0].conn.LocalAddr()
}

// closeMux closes the shared port's sockets.
func (e *Engine) closeMux() error {
	var errs []error
	for _, s := range e.mux {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// socketsFor returns the sockets a new Peer uses, one per bind address:
// the shared port's, or its own, each on a port from the range.
func (e *Engine) socketsFor() (socks []*socket, own bool, err error) {
	if e.mux != nil {
		return e.mux, false, nil
	}
	for _, ip := range e.binds {
		s, err := e.bindOwn(ip)
		if err != nil {
			for _, s := range socks {
				_ = s.close()
			}
			return nil, false, err
		}
		socks = append(socks, s)
	}
	return socks, true, nil
}

// bindOwn binds a socket on ip at a port from the range (any port without
// one).
func (e *Engine) bindOwn(ip net.IP) (*socket, error) {
	if e.portMax == 0 {
		conn, err := net.ListenUDP(e.network, &net.UDPAddr{IP: ip})
		if err != nil {
			return nil, fmt.Errorf("rtc: bind an agent's UDP port on %v: %w", ip, err)
		}
		return newSocket(conn, ownBatch, e.log), nil
	}
	// From a random place in the range on, so ports just released (and
	// the browsers' last packets to them) are not taken again at once.
	n := int(e.portMax) - int(e.portMin) + 1
	start := rand.IntN(n)
	for i := range n {
		port := int(e.portMin) + (start+i)%n
		conn, err := net.ListenUDP(e.network, &net.UDPAddr{IP: ip, Port: port})
		if err == nil {
			return newSocket(conn, ownBatch, e.log), nil
		}
	}
	return nil, fmt.Errorf("rtc: no free UDP port in %d-%d on %v for an agent", e.portMin, e.portMax, ip)
}

// advertised is the address a candidate names for a socket bound to ip.
func (e *Engine) advertised(ip net.IP) net.IP {
	if e.public != nil {
		return e.public
	}
	return ip
}

// Close closes every Peer still open and the shared port.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	peers := make([]*Peer, 0, len(e.peers))
	for p := range e.peers {
		peers = append(peers, p)
	}
	e.mu.Unlock()
	for _, p := range peers {
		_ = p.Close()
	}
	return e.closeMux()
}

func (e *Engine) add(p *Peer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrEngineClosed
	}
	e.peers[p] = struct{}{}
	return nil
}

func (e *Engine) remove(p *Peer) {
	e.mu.Lock()
	delete(e.peers, p)
	e.mu.Unlock()
}

// now is the Engine's monotonic clock, for the Peers' activity.
func (e *Engine) now() int64 { return int64(time.Since(e.base)) }
