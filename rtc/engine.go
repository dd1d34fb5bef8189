// Package rtc is the server's side of the agents' WebRTC audio: one
// PeerConnection per logged-in agent, kept open across calls so audio flows
// the moment an agent accepts, and the Bridge that relays a caller's G.711
// to and from it — untouched when both legs use the same law.
//
// An Engine holds what every agent's PeerConnection shares: the codecs
// (PCMU and PCMA only), ICE settings (ICE-lite on a port range or one muxed
// UDP port, the public address for NAT) and logging. A Peer is one agent's
// PeerConnection; a Bridge is one call on it.
package rtc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// Config configures an Engine.
type Config struct {
	// ListenIP is the address ICE binds and gathers host candidates on
	// (default 127.0.0.1; 0.0.0.0 or :: for every interface).
	ListenIP net.IP
	// PublicIP is written into the candidates instead of the local address
	// (a 1:1 NAT: IVRD_PUBLIC_IP); nil: none.
	PublicIP net.IP
	// UDPPort > 0: one UDP port muxed for every agent. 0: each
	// PeerConnection binds its own port from PortMin..PortMax (both 0: any).
	UDPPort          int
	PortMin, PortMax uint16

	// ICE timeouts: how long the agent's side may send nothing (no audio,
	// no consent checks) before the connection counts as disconnected, and
	// then failed (Peer.Done). Zero: 10 s and 5 s. Chromium sends consent
	// checks every 5 s or so even when it sends no audio.
	DisconnectedTimeout, FailedTimeout time.Duration

	// Logger gets pion's warnings and errors.
	Logger *slog.Logger
}

// Engine holds what every agent's PeerConnection shares. It is safe for
// concurrent use.
type Engine struct {
	api    *webrtc.API
	log    *slog.Logger
	mux    ice.UDPMux   // nil unless Config.UDPPort
	lan    net.Addr     // the muxed port's address
	stamps *stampedConn // the mux's socket with receive stamps; nil unless one address and the kernel stamps

	mu     sync.Mutex
	peers  map[*Peer]struct{}
	closed bool
}

// ErrEngineClosed is returned by NewPeer after Close.
var ErrEngineClosed = errors.New("rtc engine closed")

// The codecs offered to agents, in order of preference: G.711 only, so a
// caller's audio passes through untouched.
var codecs = []webrtc.RTPCodecParameters{
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, PayloadType: 0},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000, Channels: 1}, PayloadType: 8},
}

// NewEngine checks cfg, binds the muxed port if there is one, and returns
// an Engine; Close releases it.
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

	media := &webrtc.MediaEngine{}
	for _, c := range codecs {
		if err := media.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("rtc: register %s: %w", c.MimeType, err)
		}
	}

	logs := pionLogs{log: log}
	var se webrtc.SettingEngine
	se.LoggerFactory = logs
	// ICE-lite: the server has a reachable address (its own or PublicIP)
	// and only answers the browser's checks; browsers always run full ICE
	// (RFC 8445 §2.5). No STUN, no candidate pairs of our own to test.
	se.SetLite(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	network, netType, iceNet := "udp4", webrtc.NetworkTypeUDP4, ice.NetworkTypeUDP4
	if listen.To4() == nil {
		network, netType, iceNet = "udp6", webrtc.NetworkTypeUDP6, ice.NetworkTypeUDP6
	}
	se.SetNetworkTypes([]webrtc.NetworkType{netType})
	if !listen.IsUnspecified() {
		se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(listen) })
	}
	se.SetIncludeLoopbackCandidate(listen.IsLoopback())
	if cfg.PublicIP != nil {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        []string{cfg.PublicIP.String()},
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("rtc: public IP %v: %w", cfg.PublicIP, err)
		}
	}
	disconnected, failed := cfg.DisconnectedTimeout, cfg.FailedTimeout
	if disconnected <= 0 {
		disconnected = 10 * time.Second
	}
	if failed <= 0 {
		failed = 5 * time.Second
	}
	se.SetICETimeouts(disconnected, failed, 2*time.Second)
	se.BufferFactory = newStreamBuffer

	e := &Engine{log: log, peers: make(map[*Peer]struct{})}
	switch {
	case cfg.UDPPort > 0 && listen.IsUnspecified():
		// Every interface: one socket per address, each on the port.
		mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort,
			ice.UDPMuxFromPortWithLogger(logs.NewLogger("udpmux")),
			ice.UDPMuxFromPortWithNetworks(iceNet))
		if err != nil {
			return nil, fmt.Errorf("rtc: ICE port %d: %w", cfg.UDPPort, err)
		}
		e.mux = mux
		e.lan = &net.UDPAddr{IP: listen, Port: cfg.UDPPort}
		se.SetICEUDPMux(e.mux)
	case cfg.UDPPort > 0:
		conn, err := net.ListenUDP(network, &net.UDPAddr{IP: listen, Port: cfg.UDPPort})
		if err != nil {
			return nil, fmt.Errorf("rtc: ICE port: %w", err)
		}
		var pc net.PacketConn = conn
		if e.stamps = newStampedConn(conn); e.stamps != nil {
			pc = e.stamps
		}
		e.mux = webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), pc)
		e.lan = conn.LocalAddr()
		se.SetICEUDPMux(e.mux)
	case cfg.PortMax > 0:
		if err := se.SetEphemeralUDPPortRange(cfg.PortMin, cfg.PortMax); err != nil {
			return nil, fmt.Errorf("rtc: port range %d-%d: %w", cfg.PortMin, cfg.PortMax, err)
		}
	}

	// No interceptors: no NACK, no RTCP reports, no congestion control —
	// G.711 at 64 kbit/s needs none of them, and each costs goroutines and
	// work per packet.
	e.api = webrtc.NewAPI(
		webrtc.WithMediaEngine(media),
		webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}),
	)
	return e, nil
}

// MuxAddr is the muxed UDP port's address, or nil without one.
func (e *Engine) MuxAddr() net.Addr { return e.lan }

// Close closes every Peer still open and the muxed port.
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
	if e.mux != nil {
		return e.mux.Close()
	}
	return nil
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
