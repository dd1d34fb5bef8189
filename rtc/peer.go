package rtc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"

	"ivrd/media"
)

// Errors from Peer.Bridge that the hub branches on.
var (
	ErrNotReady   = errors.New("agent audio not connected yet")
	ErrPeerClosed = errors.New("agent audio closed or failed")
	ErrBusy       = errors.New("agent audio already bridged to a call")
)

// ErrNoCommonCodec is returned by SetAnswer when the agent accepts neither
// PCMU nor PCMA.
var ErrNoCommonCodec = errors.New("agent's answer has neither PCMU nor PCMA")

// Peer is the server's side of one agent's audio, kept open across calls:
// offered when the agent goes available, answered once, and bridged to
// one call after another. Between calls nothing is sent to the agent and
// what the agent sends is read and dropped.
type Peer struct {
	e     *Engine
	agent string
	log   *slog.Logger
	socks []*socket // one per bound address: the shared port's, or its own
	own   bool      // socks are the Peer's own, closed with it

	ufrag, pwd string
	integrity  stun.MessageIntegrity // of pwd: checks the browser's requests, signs our responses
	offer      string

	ready, done         chan struct{}
	readyOnce, doneOnce sync.Once
	answered            chan struct{} // closed by SetAnswer

	lastSeen atomic.Int64  // Engine.now of the agent's last packet
	inSSRC   atomic.Uint64 // the agent's SSRC | 1<<32 once known
	retired  atomic.Bool   // DTLS put away: the agent's SRTP proved it complete

	// ctx ends with the path (finish): it bounds the handshake.
	ctx    context.Context
	cancel context.CancelFunc

	mu          sync.Mutex
	laws        laws   // from the agent's answer
	remoteUfrag string // from the answer
	fingerprint remoteFingerprint
	weClient    bool     // the answer said setup:passive: we start DTLS
	handshake   *dtlsLeg // nil before DTLS starts and after it is put away
	closed      bool
	alive       *time.Timer // checks lastSeen

	rx     atomic.Pointer[srtp.Context] // the agent's SRTP; the socket's reader only
	bridge atomic.Pointer[Bridge]       // the call bridged now, if any

	// out is the stream toward the agent: one SSRC (announced in the
	// offer), one numbering across every call. Bridges write it from the
	// caller's receive goroutine.
	out struct {
		sync.Mutex
		stream *media.SendStream
		tx     *srtp.Context  // nil until DTLS is done
		to     netip.AddrPort // the agent's nominated address
		sock   *socket        // the socket its checks came to
		ssrc   uint32
		hdr    rtp.Header
		plain  [1500]byte
		enc    [1600]byte
	}
}

// laws is what the agent's answer accepts.
type laws struct {
	ok        bool
	preferred media.Law // the first in the answer: what the agent sends
	accepts   [2]bool   // by media.Law
}

// NewPeer makes an agent's audio path: its ICE credentials and offer, on
// the shared port or a port of its own. log should carry what identifies
// the agent; the Peer adds agent=agentID.
func (e *Engine) NewPeer(agentID string, log *slog.Logger) (*Peer, error) {
	if log == nil {
		log = e.log
	}
	p := &Peer{
		e:        e,
		agent:    agentID,
		log:      log.With("agent", agentID),
		ufrag:    randomICE(16),
		pwd:      randomICE(32),
		ready:    make(chan struct{}),
		done:     make(chan struct{}),
		answered: make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.integrity = stun.NewShortTermIntegrity(p.pwd)
	p.out.stream = media.NewSendStream(time.Now())
	var ssrc [4]byte
	_, _ = rand.Read(ssrc[:])
	p.out.ssrc = binary.BigEndian.Uint32(ssrc[:])
	if err := e.add(p); err != nil {
		p.cancel()
		return nil, err
	}
	socks, own, err := e.socketsFor()
	if err != nil {
		e.remove(p)
		p.cancel()
		return nil, fmt.Errorf("agent %s: %w", agentID, err)
	}
	p.socks, p.own = socks, own
	p.offer = p.makeOffer()
	for _, s := range socks {
		s.addPeer(p)
	}
	return p, nil
}

// iceChars are the characters of ICE ufrags and passwords (RFC 8445 §5.3).
const iceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func randomICE(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = iceChars[int(b[i])%len(iceChars)]
	}
	return string(b)
}

// Offer returns the complete SDP offer (every candidate in it, so no
// trickle is needed): ICE-lite, one audio section, sendrecv, PCMU then
// PCMA, DTLS-SRTP with either side starting the handshake. Asked again it
// is the same offer.
func (p *Peer) Offer(context.Context) (string, error) {
	select {
	case <-p.done:
		return "", ErrPeerClosed
	default:
	}
	return p.offer, nil
}

func (p *Peer) makeOffer() string {
	local := func(s *socket) (net.IP, int) {
		a := s.conn.LocalAddr().(*net.UDPAddr)
		return p.e.advertised(a.IP), a.Port
	}
	first, port := local(p.socks[0])
	ipv := "IP4"
	if p.e.network == "udp6" {
		ipv = "IP6"
	}
	var b strings.Builder
	line := func(format string, a ...any) {
		fmt.Fprintf(&b, format, a...)
		b.WriteString("\r\n")
	}
	line("v=0")
	line("o=- %d 1 IN %s %s", p.out.ssrc, ipv, first)
	line("s=-")
	line("t=0 0")
	line("a=group:BUNDLE 0")
	line("a=msid-semantic: WMS ivrd")
	line("a=ice-lite")
	line("m=audio %d UDP/TLS/RTP/SAVPF 0 8", port)
	line("c=IN %s %s", ipv, first)
	line("a=ice-ufrag:%s", p.ufrag)
	line("a=ice-pwd:%s", p.pwd)
	line("a=fingerprint:%s", p.e.fingerprint)
	line("a=setup:actpass")
	line("a=mid:0")
	line("a=sendrecv")
	line("a=rtcp-mux")
	line("a=rtpmap:0 PCMU/8000")
	line("a=rtpmap:8 PCMA/8000")
	line("a=msid:ivrd audio")
	line("a=ssrc:%d cname:ivrd", p.out.ssrc)
	line("a=ssrc:%d msid:ivrd audio", p.out.ssrc)
	for i, s := range p.socks {
		// Host candidates, the highest priority a host can have (RFC
		// 8445 §5.1.2.1: type preference 126, local preference 65535).
		ip, port := local(s)
		line("a=candidate:%d 1 udp %d %s %d typ host", i+1, 126<<24|(65535-i)<<8|255, ip, port)
	}
	line("a=end-of-candidates")
	return b.String()
}

// SetAnswer applies the agent's answer to the offer.
func (p *Peer) SetAnswer(answer string) error {
	a, err := parseAnswer(answer)
	if err != nil {
		return fmt.Errorf("agent %s: answer: %w", p.agent, err)
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return ErrPeerClosed
	case p.laws.ok:
		p.mu.Unlock()
		return fmt.Errorf("agent %s: answer: the offer was answered already", p.agent)
	}
	p.laws, p.remoteUfrag, p.fingerprint, p.weClient = a.laws, a.ufrag, a.fingerprint, a.passive
	p.lastSeen.Store(p.e.now())
	p.alive = time.AfterFunc(p.e.silence, p.checkAlive)
	start := p.weClient && p.remoteAddr().IsValid() && p.handshake == nil
	if start {
		p.startDTLS(false)
	}
	p.checkReady()
	p.mu.Unlock()
	close(p.answered)
	p.log.Info("agent audio answered", "codec", a.laws.preferred.String(), "pcmu", a.laws.accepts[media.ULaw], "pcma", a.laws.accepts[media.ALaw], "dtls", map[bool]string{true: "client", false: "server"}[a.passive])
	return nil
}

// answer is what the Peer needs from the agent's answer.
type answer struct {
	laws        laws
	ufrag       string
	fingerprint remoteFingerprint
	passive     bool // setup:passive: the agent waits for our DTLS handshake
}

// parseAnswer reads the agent's answer: the codecs it accepts of ours (in
// its order of preference; our offer uses the static payload types 0 and
// 8, which an answer must keep, RFC 3264 §6.1), its ICE ufrag, its
// certificate's fingerprint and its DTLS role. Attributes may be in the
// audio section or at session level.
func parseAnswer(s string) (answer, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(s); err != nil {
		return answer{}, err
	}
	var m *sdp.MediaDescription
	for _, md := range d.MediaDescriptions {
		if md.MediaName.Media == "audio" {
			m = md
			break
		}
	}
	if m == nil {
		return answer{}, errors.New("no audio in the answer")
	}
	if m.MediaName.Port.Value == 0 {
		return answer{}, errors.New("the agent rejected the audio")
	}
	var a answer
	for _, f := range m.MediaName.Formats {
		var law media.Law
		switch f {
		case "0":
			law = media.ULaw
		case "8":
			law = media.ALaw
		default:
			continue
		}
		if !a.laws.ok {
			a.laws.ok, a.laws.preferred = true, law
		}
		a.laws.accepts[law] = true
	}
	if !a.laws.ok {
		return answer{}, ErrNoCommonCodec
	}
	attr := func(key string) string {
		if v, ok := m.Attribute(key); ok {
			return v
		}
		v, _ := d.Attribute(key)
		return v
	}
	if a.ufrag = attr("ice-ufrag"); a.ufrag == "" {
		return answer{}, errors.New("no ice-ufrag")
	}
	var err error
	if a.fingerprint, err = parseFingerprint(attr("fingerprint")); err != nil {
		return answer{}, err
	}
	switch setup := attr("setup"); setup {
	case "active", "":
		// RFC 8842 §5.2: an answer without it means active.
	case "passive":
		a.passive = true
	default:
		return answer{}, fmt.Errorf("a=setup:%s: an answer is active or passive", setup)
	}
	return a, nil
}

// Ready is closed when the DTLS handshake is done and the answer applied:
// audio can flow.
func (p *Peer) Ready() <-chan struct{} { return p.ready }

// Done is closed when the agent's audio is gone: the agent closed it, its
// network went silent, the handshake failed, or Close. A bridged call is
// stopped then (the caller hears the session's own prompts or silence
// again).
func (p *Peer) Done() <-chan struct{} { return p.done }

// Law is the codec the agent's answer lists first, its preference; false
// before an answer. The agent may send with any codec its answer accepts:
// the bridge takes each packet by its payload type.
func (p *Peer) Law() (media.Law, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.laws.preferred, p.laws.ok
}

// Close ends the agent's audio path. A handshake not yet put away ends
// with DTLS close_notify, so the browser knows at once. It is safe to call
// more than once.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	leg := p.handshake
	p.handshake = nil
	if p.alive != nil {
		p.alive.Stop()
	}
	p.mu.Unlock()
	p.finish(EndClosed, "closed")
	if leg != nil {
		leg.close()
	}
	var errs []error
	for _, s := range p.socks {
		if p.own {
			errs = append(errs, s.close())
		} else {
			s.removePeer(p)
		}
	}
	p.e.remove(p)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent %s: close audio socket: %w", p.agent, err)
	}
	return nil
}

// finish marks the path gone (once: the first reason counts) and stops a
// bridged call.
func (p *Peer) finish(r EndReason, why string) {
	p.doneOnce.Do(func() {
		close(p.done)
		p.cancel()
		p.e.count.ended[r].Add(1)
		p.log.Info("agent audio", "state", "closed", "reason", why)
	})
	if b := p.bridge.Load(); b != nil {
		b.Stop()
	}
}

// checkReady closes Ready once the answer is applied and the keys are
// there; p.mu is held.
func (p *Peer) checkReady() {
	if p.rx.Load() != nil && p.laws.ok && !p.closed {
		p.readyOnce.Do(func() {
			close(p.ready)
			p.log.Info("agent audio", "state", "connected")
		})
	}
}

// checkAlive ends the path when the agent sent nothing for too long, and
// otherwise looks again when it would be too long.
func (p *Peer) checkAlive() {
	idle := time.Duration(p.e.now() - p.lastSeen.Load())
	if idle >= p.e.silence {
		p.finish(EndSilent, fmt.Sprintf("nothing received for %v", idle.Round(time.Millisecond)))
		return
	}
	p.mu.Lock()
	if !p.closed {
		p.alive.Reset(p.e.silence - idle)
	}
	p.mu.Unlock()
}

// check answers a STUN Binding request for this Peer (its USERNAME is ours
// and theirs) from the socket's reader: a connectivity check while ICE
// runs, a consent check every few seconds after. A valid one routes its
// source address to the Peer; the one the browser nominates
// (USE-CANDIDATE) is where the agent's audio goes.
func (p *Peer) check(s *socket, m *stun.Message, user string, from netip.AddrPort) {
	if err := p.integrity.Check(m); err != nil {
		return // not the browser we offered to (RFC 8445 §7.3 would say 401)
	}
	p.mu.Lock()
	if p.closed || (p.remoteUfrag != "" && user != p.ufrag+":"+p.remoteUfrag) {
		p.mu.Unlock()
		return
	}
	p.lastSeen.Store(p.e.now())
	s.route(from, p)
	if m.Contains(stun.AttrUseCandidate) || !p.remoteAddr().IsValid() {
		p.sendTo(s, from)
		if p.weClient && p.handshake == nil && !p.retired.Load() && p.rx.Load() == nil {
			p.startDTLS(false)
		}
	}
	p.mu.Unlock()

	res, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
		p.integrity, stun.Fingerprint)
	if err != nil {
		p.log.Warn("agent audio: build a STUN response", "error", err)
		return
	}
	_, _ = s.conn.WriteToUDPAddrPort(res.Raw, from)
}

// packet is one datagram (not STUN) for this Peer, on the socket's
// reader: from an address a valid check routed to it, or (routed false)
// SRTP with the SSRC the agent sends with, from an address not seen
// before, which counts only if it decrypts.
func (p *Peer) packet(s *socket, b []byte, from netip.AddrPort, routed bool, rx time.Time, sc *scratch) {
	if routed {
		p.lastSeen.Store(p.e.now())
	}
	switch {
	case b[0] >= 20 && b[0] <= 63:
		if routed {
			p.dtlsRecord(b)
		}
	case b[0] >= 128 && b[0] <= 191:
		if len(b) < 12 || (b[1] >= 192 && b[1] <= 223) {
			return // RTCP (RFC 5761 §4): the browser's reports, not needed
		}
		ctx := p.rx.Load()
		if ctx == nil {
			return
		}
		plain, err := ctx.DecryptRTP(sc.plain[:], b, &sc.hdr)
		if err != nil {
			return // not authentic, replayed, or a key we do not have
		}
		if !routed {
			p.lastSeen.Store(p.e.now())
		}
		if !p.retired.Load() {
			p.retire()
		}
		p.follow(s, from, sc.hdr.SSRC)
		if br := p.bridge.Load(); br != nil {
			br.fromAgent(&sc.hdr, rtpPayload(plain), sc.conv[:], rx)
		}
	}
}

// rtpPayload is the payload of an RTP packet, past its CSRCs and header
// extension and without its padding (RFC 3550 §5.1, §5.3.1); nil when the
// packet is shorter than it says.
func rtpPayload(b []byte) []byte {
	if len(b) < 12 {
		return nil
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return nil
		}
		n += 4 + 4*(int(b[n+2])<<8|int(b[n+3]))
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		if end <= n {
			return nil
		}
		end -= int(b[end-1])
	}
	if end < n {
		return nil
	}
	return b[n:end]
}

// follow sends the agent's audio where its authentic SRTP comes from, as
// SIP's symmetric RTP does: a NAT that gives the browser a new port
// mid-call (its mapping timed out, or was rebound) would otherwise leave
// the agent hearing nothing until its next nominating check, which need
// not come. The socket learns the agent's SSRC, so SRTP from an address
// it has not seen finds this Peer (socket.handle).
func (p *Peer) follow(s *socket, from netip.AddrPort, ssrc uint32) {
	if p.inSSRC.Load() != uint64(ssrc)|1<<32 {
		p.inSSRC.Store(uint64(ssrc) | 1<<32)
		s.learnSSRC(ssrc, p)
	}
	old, moved := p.sendTo(s, from)
	if !moved {
		return
	}
	s.route(from, p)
	if old.IsValid() {
		p.e.count.moved.Add(1)
		p.log.Info("agent audio moved: following the agent's SRTP", "from", old.String(), "to", from.String())
	}
}

// sendTo sends the agent's audio to a, out of socket s from now on; old
// is the address before, moved whether anything changed.
func (p *Peer) sendTo(s *socket, a netip.AddrPort) (old netip.AddrPort, moved bool) {
	p.out.Lock()
	defer p.out.Unlock()
	old, moved = p.out.to, p.out.to != a || p.out.sock != s
	p.out.to, p.out.sock = a, s
	return old, moved
}

// remoteAddr is the agent's address: the one its checks nominated, or
// its SRTP last came from; invalid before either.
func (p *Peer) remoteAddr() netip.AddrPort {
	p.out.Lock()
	defer p.out.Unlock()
	return p.out.to
}

// writeAgent sends one packet of the caller's audio (its source fields,
// payload already in law) to the agent, numbered in the agent's stream.
func (p *Peer) writeAgent(src media.AudioPacket, law media.Law, payload []byte) error {
	p.out.Lock()
	defer p.out.Unlock()
	if p.out.tx == nil || !p.out.to.IsValid() {
		return errNotConnected
	}
	seq, ts, m, ok := p.out.stream.Relay(time.Now(), src.SSRC, src.Timestamp, len(payload), src.Marker)
	if !ok {
		return media.ErrLatePacket
	}
	h := &p.out.hdr
	h.Version = 2
	h.PayloadType = law.PayloadType()
	h.SequenceNumber = seq
	h.Timestamp = ts
	h.Marker = m
	h.SSRC = p.out.ssrc
	n, err := h.MarshalTo(p.out.plain[:])
	if err != nil {
		return err
	}
	if n+len(payload) > len(p.out.plain) {
		return errTooLarge
	}
	n += copy(p.out.plain[n:], payload)
	enc, err := p.out.tx.EncryptRTP(p.out.enc[:0], p.out.plain[:n], h)
	if err != nil {
		return err
	}
	_, err = p.out.sock.conn.WriteToUDPAddrPort(enc, p.out.to)
	return err
}

// switchAgentStream marks the next packet to the agent as new content.
func (p *Peer) switchAgentStream() {
	p.out.Lock()
	p.out.stream.Switch()
	p.out.Unlock()
}

var (
	errNotConnected = errors.New("agent audio not connected")
	errTooLarge     = errors.New("packet too large")
)
