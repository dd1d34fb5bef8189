package rtc

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"ivrd/media"
)

// goroutinesIn counts the goroutines with a frame whose function name
// contains fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// talk has the caller and the agent talk n packets each and checks that
// each heard the other (a packet may be in flight still).
func talk(t *testing.T, c *caller, b *browser, first, n int) {
	t.Helper()
	agentHeard, callerHeard := exchange(t, c, b, first, n, markedBoth)
	if a, c := len(agentHeard), len(fromAgent(t, callerHeard)); a < n-1 || c < n-1 {
		t.Errorf("the agent heard %d packets of the caller, the caller %d of the agent; want %d each", a, c, n)
	}
}

// TestPathGoroutines: an agent's path costs no goroutine of its own once
// the browser's audio arrives — the shared port's one reader serves every
// agent, and each handshake's goroutines end (its DTLS connection is put
// away without a close_notify, so the browser stays connected and the
// audio flows on). With a port per agent, its reader is the one goroutine.
func TestPathGoroutines(t *testing.T) {
	checkGoroutines(t)
	const agents = 3
	for _, shared := range []bool{true, false} {
		t.Run(map[bool]string{true: "shared port", false: "port per agent"}[shared], func(t *testing.T) {
			cfg := Config{}
			wantReaders := agents
			if shared {
				cfg.UDPPort = freeUDPPort(t)
				wantReaders = 1
			}
			e := newEngine(t, cfg)
			var peers []*Peer
			var browsers []*browser
			for range agents {
				p := newTestPeer(t, e, "agent")
				peers = append(peers, p)
				browsers = append(browsers, connect(t, p, media.ULaw))
			}
			eventually(t, 2*time.Second, "a handshake reading for each agent before the agents spoke", func() bool {
				return goroutinesIn("rtc.(*dtlsLeg).ReadFrom") == agents
			})
			for i, p := range peers {
				c, br := bridged(t, p)
				talk(t, c, browsers[i], 0, 5)
				br.Stop()
			}
			eventually(t, 2*time.Second, "the handshakes to be put away", func() bool {
				return goroutinesIn("rtc.(*dtlsLeg).ReadFrom") == 0
			})
			if n := goroutinesIn("rtc.(*socket).serve"); n != wantReaders {
				t.Errorf("shared %v: %d socket readers for %d agents, want %d", shared, n, agents, wantReaders)
			}
			for i, p := range peers {
				if !p.retired.Load() {
					t.Errorf("shared %v: agent %d: handshake not put away", shared, i+1)
				}
				select {
				case <-p.Done():
					t.Errorf("shared %v: agent %d: Done after the handshake was put away", shared, i+1)
				default:
				}
				// The browser still talks to us: the next call has audio.
				c, br := bridged(t, p)
				talk(t, c, browsers[i], 100, 5)
				br.Stop()
			}
		})
	}
}

// TestWeStartDTLS: a browser that answers setup:passive waits for us to
// start the handshake; the path connects and audio flows both ways.
func TestWeStartDTLS(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	b := newBrowserWith(t, browserOpts{settings: func(se *webrtc.SettingEngine) {
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
			t.Fatal(err)
		}
	}}, media.ULaw)
	connectBrowser(t, p, b, nil)
	if answer := b.pc.LocalDescription().SDP; len(sdpLines(answer, "a=setup:passive")) == 0 {
		t.Fatalf("the browser's answer is not passive:\n%s", answer)
	}
	c, _ := bridged(t, p)
	talk(t, c, b, 0, 10)
}

// TestWrongCertificate: a browser whose certificate is not the one its
// answer's fingerprint names is refused: the path never becomes Ready
// and is Done.
func TestWrongCertificate(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	offer, err := p.Offer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetAnswer(forgeFingerprint(t, newBrowser(t, media.ULaw).answer(offer))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-p.Ready():
		t.Fatal("Ready with a certificate the answer did not name")
	case <-time.After(10 * time.Second):
		t.Fatal("not Done within 10 s of a forged fingerprint")
	}
	select {
	case <-p.Ready():
		t.Error("Ready after the handshake was refused")
	default:
	}
}

// TestStrangersIgnored: STUN checks without the Peer's password, and
// anything from an address no valid check came from, get no answer and
// change nothing; the agent then connects as usual and audio flows.
func TestStrangersIgnored(t *testing.T) {
	checkGoroutines(t)
	port := freeUDPPort(t)
	e := newEngine(t, Config{UDPPort: port})
	p := newTestPeer(t, e, "agent1")
	offer, err := p.Offer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ufrag := strings.TrimPrefix(sdpLines(offer, "a=ice-ufrag:")[0], "a=ice-ufrag:")
	stranger, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: loopback, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	send := func(b []byte) {
		if _, err := stranger.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	check := func(pwd string) []byte {
		m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":them"),
			ice.UseCandidate(), stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	send(check("not the password at all"))
	send([]byte{0, 1, 0, 8})                                          // a truncated STUN header
	send([]byte{22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3}) // DTLS
	send(append([]byte{0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, make([]byte, 160)...))
	send([]byte{0x81, 200, 0, 1})
	_ = stranger.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := stranger.Read(make([]byte, 1500)); err == nil {
		t.Fatalf("a stranger got %d bytes back", n)
	}
	if remote := p.remoteAddr(); remote.IsValid() {
		t.Errorf("a check without the password set the agent's address to %v", remote)
	}
	b := newBrowser(t, media.ULaw)
	connectBrowser(t, p, b, nil)
	c, _ := bridged(t, p)
	talk(t, c, b, 0, 5)
	// A check with the password but another ufrag pair after the answer
	// is not the agent's either.
	send(check(strings.TrimPrefix(sdpLines(offer, "a=ice-pwd:")[0], "a=ice-pwd:")))
	_ = stranger.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := stranger.Read(make([]byte, 1500)); err == nil {
		t.Fatalf("a check naming another browser's ufrag got %d bytes back", n)
	}
}

// TestConsentKeepsAlive: a connected agent who sends no audio stays
// connected on the browser's consent checks alone (no RTCP either), past
// the ICE timeouts.
func TestConsentKeepsAlive(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{DisconnectedTimeout: 2 * time.Second, FailedTimeout: time.Second})
	p := newTestPeer(t, e, "agent1")
	connectBrowser(t, p, newBrowserWith(t, browserOpts{noRTCP: true}, media.ULaw), nil)
	select {
	case <-p.Done():
		t.Fatal("Done while the browser's consent checks came")
	case <-time.After(7 * time.Second):
	}
}

// TestEveryInterface: listening on 0.0.0.0 the offer names each
// interface's IPv4 address (not loopback), and a browser connects to them.
func TestEveryInterface(t *testing.T) {
	checkGoroutines(t)
	var want []string
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			want = append(want, ipn.IP.String())
		}
	}
	if len(want) == 0 {
		t.Skip("no interface with an IPv4 address but loopback")
	}
	e := newEngine(t, Config{ListenIP: net.IPv4zero})
	p := newTestPeer(t, e, "agent1")
	offer, err := p.Offer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range sdpLines(offer, "a=candidate:") {
		got = append(got, strings.Fields(c)[4])
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("candidates on %v, want the interfaces' %v:\n%s", got, want, offer)
	}
	b := newBrowser(t, media.ULaw)
	connectBrowser(t, p, b, nil)
	c, _ := bridged(t, p)
	talk(t, c, b, 0, 5)
}

// nat stands for the agent's NAT: the browser sends to its front port, and
// it forwards to the server from an outer socket; rebind swaps the outer
// socket for a new one, as a NAT whose mapping timed out does, and what
// the server still sends to the old one is lost.
type nat struct {
	t      *testing.T
	front  *net.UDPConn
	server *net.UDPAddr
	wg     sync.WaitGroup

	mu      sync.Mutex
	outer   *net.UDPConn
	browser net.Addr // learned from its first packet
}

func newNAT(t *testing.T, server *net.UDPAddr) *nat {
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	n := &nat{t: t, front: front, server: server}
	n.rebind()
	n.wg.Add(1)
	go func() { // browser → server, from the outer socket of the moment
		defer n.wg.Done()
		buf := make([]byte, 1500)
		for {
			k, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.browser = from
			outer := n.outer
			n.mu.Unlock()
			_, _ = outer.WriteTo(buf[:k], n.server)
		}
	}()
	t.Cleanup(func() {
		front.Close()
		n.mu.Lock()
		n.outer.Close()
		n.mu.Unlock()
		n.wg.Wait()
	})
	return n
}

// rebind gives the browser's traffic a new outer port.
func (n *nat) rebind() {
	outer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		n.t.Fatal(err)
	}
	n.mu.Lock()
	old := n.outer
	n.outer = outer
	n.mu.Unlock()
	if old != nil {
		old.Close()
	}
	n.wg.Add(1)
	go func() { // server → browser, while this mapping lives
		defer n.wg.Done()
		buf := make([]byte, 1500)
		for {
			k, _, err := outer.ReadFrom(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			to := n.browser
			n.mu.Unlock()
			if to != nil {
				_, _ = n.front.WriteTo(buf[:k], to)
			}
		}
	}()
}

// TestNATRebinding: mid-call the agent's NAT gives its traffic a new
// port. The agent's SRTP from the new address is authentic, so ivrd sends
// the caller's audio there at once; the agent does not go deaf waiting
// for a check that would move it.
func TestNATRebinding(t *testing.T) {
	checkGoroutines(t)
	port := freeUDPPort(t)
	e := newEngine(t, Config{UDPPort: port})
	n := newNAT(t, &net.UDPAddr{IP: loopback, Port: port})
	p := newTestPeer(t, e, "agent1")
	b := newBrowser(t, media.ULaw)
	// The browser sees the NAT's front port as the server's.
	front := strconv.Itoa(n.front.LocalAddr().(*net.UDPAddr).Port)
	connectBrowser(t, p, b, func(offer string) string {
		offer = strings.ReplaceAll(offer, " "+strconv.Itoa(port)+" typ host", " "+front+" typ host")
		return strings.Replace(offer, "m=audio "+strconv.Itoa(port)+" ", "m=audio "+front+" ", 1)
	})
	c, _ := bridged(t, p)
	talk(t, c, b, 0, 5)

	n.rebind()
	// Well within the browser's 2 s between keepalives: only its audio
	// tells ivrd where it is now.
	agentHeard, callerHeard := exchange(t, c, b, 100, 10, markedBoth)
	if len(fromAgent(t, callerHeard)) < 9 {
		t.Errorf("after the rebinding the caller heard %d of the agent's 10 packets", len(fromAgent(t, callerHeard)))
	}
	if len(agentHeard) < 5 {
		t.Errorf("after the rebinding the agent heard %d of the caller's 10 packets: ivrd kept sending to the old port", len(agentHeard))
	}
	if m := e.Stats().Moved; m != 1 {
		t.Errorf("Stats().Moved = %d after one rebinding", m)
	}
}

// TestStats counts paths open, handshakes done, and each way a path
// ends: the browser closing it, its network going silent, a refused
// certificate, ivrd closing it.
func TestStats(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p1, p2, p4 := newTestPeer(t, e, "agent1"), newTestPeer(t, e, "agent2"), newTestPeer(t, e, "agent4")
	b1, b4 := connect(t, p1, media.ULaw), connect(t, p4, media.ULaw)
	connect(t, p2, media.ULaw)
	p3 := newTestPeer(t, e, "agent3")
	offer, err := p3.Offer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := p3.SetAnswer(forgeFingerprint(t, newBrowser(t, media.ULaw).answer(offer))); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Open != 4 || st.Connected != 3 {
		t.Errorf("open %d, connected %d; want 4 and 3", st.Open, st.Connected)
	}
	b1.pc.Close()
	if err := p2.Close(); err != nil {
		t.Fatal(err)
	}
	b4.net.cut.Store(true)
	want := [endReasons]uint64{EndClosed: 1, EndAgentClosed: 1, EndSilent: 1, EndDTLSFailed: 1}
	eventually(t, 10*time.Second, "one path ended each way", func() bool { return e.Stats().Ended == want })
	if st := e.Stats(); st.Open != 3 {
		t.Errorf("open %d after one Close, want 3 (the others end, and stay open until closed)", st.Open)
	}
	for _, p := range []*Peer{p1, p3, p4} {
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Closing a path that had ended already counts nothing more.
	if st := e.Stats(); st.Open != 0 || st.Ended != want {
		t.Errorf("after closing: open %d, ended %v; want 0 and %v", st.Open, st.Ended, want)
	}
}

// TestRTPPayload finds the payload as pion's full parse does, past CSRCs
// and a header extension and without padding, and refuses packets
// shorter than their header says.
func TestRTPPayload(t *testing.T) {
	payload := []byte{1, 2, 3, 4, 5}
	ext := rtp.Header{Version: 2}
	if err := ext.SetExtension(1, []byte{0x30}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pkt  rtp.Packet
	}{
		{"plain", rtp.Packet{Header: rtp.Header{Version: 2}, Payload: payload}},
		{"CSRCs", rtp.Packet{Header: rtp.Header{Version: 2, CSRC: []uint32{7, 8}}, Payload: payload}},
		{"extension", rtp.Packet{Header: ext, Payload: payload}},
		{"padding", rtp.Packet{Header: rtp.Header{Version: 2, Padding: true}, Payload: payload, PaddingSize: 3}},
	} {
		b, err := c.pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var want rtp.Packet
		if err := want.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if got := rtpPayload(b); !bytes.Equal(got, want.Payload) || !bytes.Equal(got, payload) {
			t.Errorf("%s: payload %v, pion's %v", c.name, got, want.Payload)
		}
	}
	short := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, b := range map[string][]byte{
		"under 12 bytes":       make([]byte, 11),
		"CSRCs cut":            short((&rtp.Packet{Header: rtp.Header{Version: 2, CSRC: []uint32{7, 8}}}).Marshal())[:16],
		"extension cut":        short((&rtp.Packet{Header: ext}).Marshal())[:14],
		"more padding than it": append(short((&rtp.Packet{Header: rtp.Header{Version: 2, Padding: true}, Payload: payload, PaddingSize: 3}).Marshal())[:19], 200),
	} {
		if got := rtpPayload(b); got != nil {
			t.Errorf("%s: payload %v, want nil", name, got)
		}
	}
}
