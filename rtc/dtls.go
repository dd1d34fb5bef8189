package rtc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v5/deadline"
)

// The DTLS handshake of an agent's path. It runs once, when ICE has
// connected: it proves the browser holds the certificate its answer's
// fingerprint names, and yields the SRTP keys (RFC 5764). Then it is put
// away — pion's two goroutines for the connection end — as soon as the
// browser's first SRTP packet shows it finished too (the last flight
// arrived; nothing will be retransmitted). After that the only DTLS the
// browser sends is an alert (close_notify when the tab closes its
// connection), which ends the path.

// handshakeTimeout bounds a handshake: the browser gave up long before.
const handshakeTimeout = 30 * time.Second

// srtpProfiles are the SRTP protection profiles offered, in order: AES-GCM
// (one pass, hardware AES) first; AES-CM with HMAC-SHA1 is what every
// WebRTC browser must take (RFC 8827 §6.5).
var srtpProfiles = []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}

// startDTLS starts the handshake: as the DTLS server when the browser's
// ClientHello came (its answer said active), as the client when its answer
// said passive and ICE nominated an address. p.mu is held.
func (p *Peer) startDTLS(server bool) {
	leg := &dtlsLeg{p: p, in: make(chan []byte, 16), closed: make(chan struct{}), rd: deadline.New()}
	opts := []dtls.Option{
		dtls.WithCertificates(p.e.cert),
		dtls.WithSRTPProtectionProfiles(srtpProfiles...),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		// The certificate is self-signed; what matters is that it is
		// the one the answer's fingerprint names.
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(p.verifyCertificate),
		dtls.WithLoggerFactory(p.e.logs),
	}
	raddr := net.UDPAddrFromAddrPort(p.remoteAddr())
	var (
		conn *dtls.Conn
		err  error
	)
	if server {
		so := []dtls.ServerOption{dtls.WithClientAuth(dtls.RequireAnyClientCert)}
		for _, o := range opts {
			so = append(so, o)
		}
		conn, err = dtls.ServerWithOptions(leg, raddr, so...)
	} else {
		co := make([]dtls.ClientOption, 0, len(opts))
		for _, o := range opts {
			co = append(co, o)
		}
		conn, err = dtls.ClientWithOptions(leg, raddr, co...)
	}
	if err != nil {
		p.log.Error("agent audio: start DTLS", "error", err)
		go p.finish(EndDTLSFailed, "DTLS could not start")
		return
	}
	leg.conn = conn
	p.handshake = leg
	go p.runHandshake(leg, server)
}

// runHandshake completes the handshake and makes the SRTP contexts.
func (p *Peer) runHandshake(leg *dtlsLeg, server bool) {
	ctx, cancel := context.WithTimeout(p.ctx, handshakeTimeout)
	defer cancel()
	fail := func(what string, err error) {
		p.log.Warn("agent audio: DTLS "+what, "error", err)
		p.finish(EndDTLSFailed, "DTLS "+what)
	}
	if err := leg.conn.HandshakeContext(ctx); err != nil {
		fail("handshake failed", err)
		return
	}
	state, ok := leg.conn.ConnectionState()
	if !ok {
		fail("state unreadable", errors.New("no state"))
		return
	}
	profile, ok := leg.conn.SelectedSRTPProtectionProfile()
	if !ok {
		fail("chose no SRTP profile", errors.New("no use_srtp extension"))
		return
	}
	keys := srtp.Config{Profile: srtp.ProtectionProfile(profile)}
	if err := keys.ExtractSessionKeysFromDTLS(&state, !server); err != nil {
		fail("keys not exported", err)
		return
	}
	tx, err := srtp.CreateContext(keys.Keys.LocalMasterKey, keys.Keys.LocalMasterSalt, keys.Profile)
	if err != nil {
		fail("SRTP context", err)
		return
	}
	rx, err := srtp.CreateContext(keys.Keys.RemoteMasterKey, keys.Keys.RemoteMasterSalt, keys.Profile,
		srtp.SRTPReplayProtection(64))
	if err != nil {
		fail("SRTP context", err)
		return
	}
	p.out.Lock()
	p.out.tx = tx
	p.out.Unlock()
	p.rx.Store(rx)
	p.e.count.connected.Add(1)
	p.mu.Lock()
	p.checkReady()
	p.mu.Unlock()
	p.log.Debug("agent audio: DTLS done", "srtp", keys.Profile.String())
}

// verifyCertificate checks the browser's certificate against the
// fingerprint in its answer, waiting for the answer if the handshake
// came first.
func (p *Peer) verifyCertificate(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return errors.New("the agent sent no certificate")
	}
	select {
	case <-p.answered:
	case <-p.done:
		return ErrPeerClosed
	case <-time.After(handshakeTimeout):
		return errors.New("no answer to check the agent's certificate against")
	}
	p.mu.Lock()
	fp := p.fingerprint
	p.mu.Unlock()
	h := fp.hash.New()
	h.Write(raw[0])
	if !bytes.Equal(h.Sum(nil), fp.sum) {
		return errors.New("the agent's certificate does not match the fingerprint in its answer")
	}
	return nil
}

// dtlsRecord takes a DTLS record from the browser, on the socket's reader.
func (p *Peer) dtlsRecord(b []byte) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	connected := p.rx.Load() != nil
	if connected && b[0] == 21 {
		// An alert after the handshake: close_notify (the browser closed
		// its connection), or something fatal. Either way the path is
		// gone; a handshake not put away yet reads it too.
		leg := p.handshake
		p.mu.Unlock()
		if leg != nil {
			leg.push(b)
		}
		p.finish(EndAgentClosed, "the agent closed its audio")
		return
	}
	if p.retired.Load() {
		p.mu.Unlock()
		return
	}
	if p.handshake == nil {
		if p.weClient || connected {
			p.mu.Unlock()
			return // we start this handshake; or a stray record
		}
		p.startDTLS(true)
	}
	leg := p.handshake
	p.mu.Unlock()
	if leg != nil {
		leg.push(b)
	}
}

// retire puts the handshake away once the browser's SRTP proved it done:
// its connection is closed without a word to the browser (no
// close_notify: the browser must keep its own).
func (p *Peer) retire() {
	p.mu.Lock()
	leg := p.handshake
	p.handshake = nil
	p.retired.Store(true)
	p.mu.Unlock()
	if leg != nil {
		leg.muted.Store(true)
		go leg.close()
	}
}

// remoteFingerprint is the agent's certificate digest from its answer.
type remoteFingerprint struct {
	hash crypto.Hash
	sum  []byte
}

// parseFingerprint reads "sha-256 AB:CD:…" (RFC 8122).
func parseFingerprint(v string) (remoteFingerprint, error) {
	alg, digest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return remoteFingerprint{}, errors.New("no certificate fingerprint")
	}
	var f remoteFingerprint
	switch strings.ToLower(alg) {
	case "sha-1":
		f.hash = crypto.SHA1
	case "sha-256":
		f.hash = crypto.SHA256
	case "sha-384":
		f.hash = crypto.SHA384
	case "sha-512":
		f.hash = crypto.SHA512
	default:
		return remoteFingerprint{}, fmt.Errorf("fingerprint hash %q not supported", alg)
	}
	sum, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(digest), ":", ""))
	if err != nil || len(sum) != f.hash.Size() {
		return remoteFingerprint{}, fmt.Errorf("fingerprint %q is not a %s digest", digest, alg)
	}
	f.sum = sum
	return f, nil
}

// dtlsLeg is the packet connection pion's DTLS runs on: records from the
// browser are pushed in by the socket's reader; what DTLS writes goes out
// of the Peer's socket to the browser's address.
type dtlsLeg struct {
	p     *Peer
	conn  *dtls.Conn
	in    chan []byte
	muted atomic.Bool // put away: writes (close_notify) are dropped
	rd    *deadline.Deadline

	closeOnce sync.Once
	closed    chan struct{}
}

// push hands the handshake a copy of a record; it is dropped if the
// handshake is that far behind (DTLS retransmits).
func (l *dtlsLeg) push(b []byte) {
	select {
	case l.in <- bytes.Clone(b):
	default:
	}
}

// close closes the DTLS connection (and so the leg).
func (l *dtlsLeg) close() {
	if err := l.conn.Close(); err != nil && !l.muted.Load() {
		l.p.log.Debug("agent audio: close DTLS", "error", err)
	}
	_ = l.Close()
}

func (l *dtlsLeg) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case r := <-l.in:
		return copy(b, r), l.addr(), nil
	case <-l.closed:
		return 0, nil, net.ErrClosed
	case <-l.rd.Done():
		return 0, nil, errTimeout
	}
}

func (l *dtlsLeg) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-l.closed:
		return 0, net.ErrClosed
	default:
	}
	if l.muted.Load() {
		return len(b), nil
	}
	l.p.out.Lock()
	to, s := l.p.out.to, l.p.out.sock
	l.p.out.Unlock()
	if !to.IsValid() {
		return 0, errNotConnected
	}
	return s.conn.WriteToUDPAddrPort(b, to)
}

func (l *dtlsLeg) addr() net.Addr {
	return net.UDPAddrFromAddrPort(l.p.remoteAddr())
}

func (l *dtlsLeg) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *dtlsLeg) LocalAddr() net.Addr { return l.p.socks[0].conn.LocalAddr() }

func (l *dtlsLeg) SetDeadline(t time.Time) error { return l.SetReadDeadline(t) }

func (l *dtlsLeg) SetReadDeadline(t time.Time) error {
	l.rd.Set(t)
	return nil
}

func (l *dtlsLeg) SetWriteDeadline(time.Time) error { return nil }

// errTimeout is a read deadline passing (a net.Error that times out).
var errTimeout net.Error = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
