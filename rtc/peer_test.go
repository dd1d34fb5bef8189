package rtc

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"ivrd/media"
)

// TestOffer: the offer is complete (candidates gathered, no trickle), ICE-lite,
// one audio section, sendrecv, PCMU then PCMA and nothing else, DTLS-SRTP,
// host candidates on the listen address only, no mDNS names.
func TestOffer(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offer, err := p.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := sdpLines(offer, "m=")
	if len(m) != 1 || !strings.HasPrefix(m[0], "m=audio ") || !strings.HasSuffix(m[0], " UDP/TLS/RTP/SAVPF 0 8") {
		t.Errorf("media sections %q, want one audio section offering 0 8", m)
	}
	for _, want := range []string{"a=ice-lite", "a=sendrecv", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=fingerprint:sha-256 ", "a=setup:actpass", "a=end-of-candidates", "a=rtcp-mux"} {
		if len(sdpLines(offer, want)) == 0 {
			t.Errorf("offer has no %q:\n%s", want, offer)
		}
	}
	cands := sdpLines(offer, "a=candidate:")
	if len(cands) == 0 {
		t.Fatalf("no candidates in the offer:\n%s", offer)
	}
	for _, c := range cands {
		f := strings.Fields(c)
		if len(f) < 8 || f[2] != "udp" || f[4] != "127.0.0.1" || f[7] != "host" {
			t.Errorf("candidate %q: want UDP host on 127.0.0.1", c)
		}
	}
	if _, ok := p.Law(); ok {
		t.Error("Law before the answer")
	}
}

// TestPublicIP: with a public address (1:1 NAT) the candidates carry it
// instead of the local one.
func TestPublicIP(t *testing.T) {
	checkGoroutines(t)
	for _, mux := range []bool{false, true} {
		cfg := Config{PublicIP: net.ParseIP("203.0.113.7")}
		if mux {
			cfg.UDPPort = freeUDPPort(t)
		}
		e := newEngine(t, cfg)
		p := newTestPeer(t, e, "agent1")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		offer, err := p.Offer(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		cands := sdpLines(offer, "a=candidate:")
		if len(cands) == 0 {
			t.Fatalf("mux %v: no candidates", mux)
		}
		for _, c := range cands {
			if f := strings.Fields(c); len(f) < 8 || f[4] != "203.0.113.7" || (mux && f[5] != strconv.Itoa(cfg.UDPPort)) {
				t.Errorf("mux %v: candidate %q, want 203.0.113.7", mux, c)
			}
		}
	}
}

// freeUDPPort finds a UDP port free on loopback, below the ephemeral range.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	pool := portPool(t, 1)
	conn, port, err := pool.Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	return port
}

// TestConnect: a browser answers, the Peer becomes Ready, Law is the
// browser's first codec.
func TestConnect(t *testing.T) {
	checkGoroutines(t)
	for _, c := range []struct {
		name string
		laws []media.Law
	}{
		{"PCMU", []media.Law{media.ULaw}},
		{"PCMA", []media.Law{media.ALaw}},
		{"PCMA first", []media.Law{media.ALaw, media.ULaw}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, Config{})
			p := newTestPeer(t, e, "agent1")
			b := connect(t, p, c.laws...)
			// pion, as answerer, lists the codecs in the offer's order.
			want := media.ULaw
			if f := strings.Fields(sdpLines(b.pc.LocalDescription().SDP, "m=audio")[0]); f[len(f)-len(c.laws)] == "8" {
				want = media.ALaw
			}
			if l, ok := p.Law(); !ok || l != want {
				t.Errorf("Law = %v %v, want %v", l, ok, want)
			}
			select {
			case <-p.Done():
				t.Error("Done while connected")
			default:
			}
		})
	}
}

// TestOfferAgain: an offer that was never answered is offered again (the
// agent reconnected before answering); the answer to it connects.
func TestOfferAgain(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.Offer(ctx); err != nil {
		t.Fatal(err)
	}
	connect(t, p, media.ULaw)
}

// TestAnswerRejected: answers that cannot work are refused with an error
// that says why, and the Peer can still be answered properly.
func TestAnswerRejected(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offer, err := p.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, media.ULaw)
	answer := b.answer(offer)
	mline := sdpLines(answer, "m=audio")[0]
	for _, c := range []struct {
		name, sdp string
		want      error
	}{
		{"garbage", "hello", nil},
		{"no common codec", strings.Replace(answer, mline, strings.TrimSuffix(mline, " 0")+" 9", 1), ErrNoCommonCodec},
		{"audio rejected", strings.Replace(answer, mline, strings.Replace(mline, "m=audio 9 ", "m=audio 0 ", 1), 1), nil},
	} {
		err := p.SetAnswer(c.sdp)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), "agent1") {
			t.Errorf("%s: SetAnswer = %v", c.name, err)
		}
	}
	if err := p.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not Ready")
	}
}

// TestParseAnswer reads the codecs an answer accepts, in its order, and
// what ICE and DTLS need, from the audio section or the session; answers
// without them are refused, naming what is missing.
func TestParseAnswer(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	const fp = "a=fingerprint:sha-256 " +
		"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n"
	const ice = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
	for _, c := range []struct {
		formats   string
		preferred media.Law
		u, a      bool
	}{
		{"0", media.ULaw, true, false},
		{"8", media.ALaw, false, true},
		{"0 8", media.ULaw, true, true},
		{"8 0", media.ALaw, true, true},
		{"9 8 101", media.ALaw, false, true},
	} {
		a, err := parseAnswer(head + "m=audio 9 UDP/TLS/RTP/SAVPF " + c.formats + "\r\n" + ice + fp + "a=setup:active\r\n")
		l := a.laws
		if err != nil || !l.ok || l.preferred != c.preferred || l.accepts[media.ULaw] != c.u || l.accepts[media.ALaw] != c.a {
			t.Errorf("%q: %+v %v", c.formats, l, err)
		}
		if a.ufrag != "abcd" || a.passive || len(a.fingerprint.sum) != 32 || a.fingerprint.sum[1] != 0x11 {
			t.Errorf("%q: ufrag %q passive %v fingerprint %x", c.formats, a.ufrag, a.passive, a.fingerprint.sum)
		}
	}
	// Session-level attributes, and the answerer waiting for our handshake.
	a, err := parseAnswer(head + ice + fp + "a=setup:passive\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n")
	if err != nil || a.ufrag != "abcd" || !a.passive {
		t.Errorf("session-level attributes: %+v %v", a, err)
	}
	for _, c := range []struct{ sdp, want string }{
		{head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "no audio"},
		{head + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" + fp, "ice-ufrag"},
		{head + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" + ice, "fingerprint"},
		{head + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" + ice + "a=fingerprint:md5 00:11\r\n", "md5"},
		{head + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" + ice + "a=fingerprint:sha-256 00:11\r\n", "digest"},
		{head + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" + ice + fp + "a=setup:actpass\r\n", "actpass"},
	} {
		if _, err := parseAnswer(c.sdp); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("answer %q: %v, want an error naming %s", c.sdp, err, c.want)
		}
	}
}

// TestDoneWhenBrowserCloses: the browser closes its PeerConnection (the
// tab closes: DTLS close_notify): Done fires at once, a bridged call is
// stopped (the caller hears the session again), and Bridge refuses.
func TestDoneWhenBrowserCloses(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{DisconnectedTimeout: time.Minute, FailedTimeout: time.Minute})
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw)
	c := newCaller(t, media.ULaw)
	br, err := p.Bridge(c.sess)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b.pc.Close()
	select {
	case <-p.Done():
		t.Logf("Done %v after the browser closed", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not fire within 5 s of the browser closing")
	}
	eventually(t, time.Second, "the bridge to stop", func() bool { return br.stopped.Load() })
	c.drain()
	if pkt := <-c.heard; !isSilence(media.ULaw, pkt.Payload) {
		t.Error("the caller does not hear the session's silence after the agent left")
	}
	if _, err := p.Bridge(c.sess); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("Bridge after Done = %v, want ErrPeerClosed", err)
	}
}

// TestDoneWhenNetworkDies: the browser's network goes silent (no close):
// Done fires after the ICE timeouts (here 2 s + 1 s).
func TestDoneWhenNetworkDies(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	b := connect(t, p, media.ULaw)
	start := time.Now()
	b.net.cut.Store(true)
	select {
	case <-p.Done():
		t.Logf("Done %v after the network died", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not fire within 10 s of the network dying")
	}
}

// TestBridgeRefused: not before Ready, not twice at once.
func TestBridgeRefused(t *testing.T) {
	checkGoroutines(t)
	e := newEngine(t, Config{})
	p := newTestPeer(t, e, "agent1")
	c := newCaller(t, media.ULaw)
	if _, err := p.Bridge(c.sess); !errors.Is(err, ErrNotReady) {
		t.Errorf("Bridge before Ready = %v, want ErrNotReady", err)
	}
	connect(t, p, media.ULaw)
	br, err := p.Bridge(c.sess)
	if err != nil {
		t.Fatal(err)
	}
	c2 := newCaller(t, media.ULaw)
	if _, err := p.Bridge(c2.sess); !errors.Is(err, ErrBusy) {
		t.Errorf("second Bridge = %v, want ErrBusy", err)
	}
	br.Stop()
	br2, err := p.Bridge(c2.sess)
	if err != nil {
		t.Fatalf("Bridge after Stop = %v", err)
	}
	br2.Stop()
}

// TestEngineClose closes the Peers still open; NewPeer is refused after.
func TestEngineClose(t *testing.T) {
	checkGoroutines(t)
	e, err := NewEngine(Config{Logger: testLog, UDPPort: freeUDPPort(t)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.NewPeer("agent1", nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, p, media.ULaw)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Peer not Done after the engine closed")
	}
	if _, err := e.NewPeer("agent2", nil); !errors.Is(err, ErrEngineClosed) {
		t.Errorf("NewPeer after Close = %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
}

// TestConfigErrors: bad configuration is refused with the value named.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{UDPPort: 70000}, "70000"},
		{Config{PortMin: 40010, PortMax: 40000}, "40010-40000"},
		{Config{PublicIP: net.IPv4zero}, "0.0.0.0"},
	} {
		if _, err := NewEngine(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	port := freeUDPPort(t)
	hold, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := NewEngine(Config{UDPPort: port}); err == nil {
		t.Error("NewEngine on a port in use succeeded")
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
