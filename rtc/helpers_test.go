package rtc

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"ivrd/media"
)

// Tests run real PeerConnections on loopback: the server's Peer and, as the
// agent's browser, another pion PeerConnection from an API of its own
// (full ICE, its own codecs, default interceptors — RTCP reports and NACK,
// as a browser sends them). The caller is a media.Session with a UDP
// socket as the phone.

var loopback = net.IPv4(127, 0, 0, 1)

// testLog shows errors (pion's included) on stderr. (pion warns about
// every PeerConnection closed before the agent's first packet.)
var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// checkGoroutines fails the test if it leaves more goroutines running than
// it found. Call it first, so its cleanup runs after every other one.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before the test, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// newEngine returns an engine with short ICE timeouts (longer than pion's
// 2 s between keepalives), closed at the end.
func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLog
	}
	if cfg.DisconnectedTimeout == 0 {
		cfg.DisconnectedTimeout = 2 * time.Second
		cfg.FailedTimeout = time.Second
	}
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("engine Close: %v", err)
		}
	})
	return e
}

func newTestPeer(t testing.TB, e *Engine, agent string) *Peer {
	t.Helper()
	p, err := e.NewPeer(agent, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// browser is the agent's side: a pion PeerConnection as a browser runs it.
type browser struct {
	t     testing.TB
	pc    *webrtc.PeerConnection
	mic   *webrtc.TrackLocalStaticRTP // what the agent says
	heard chan *rtp.Packet            // what the agent hears
	net   *cuttable                   // its network, which a test may cut
	up    chan struct{}               // closed when its side is connected
	seq   uint16
	ts    uint32

	mu       sync.Mutex
	overflow int
}

// codecs are the browser's G.711 codecs, by media.Law.
var codecs = []webrtc.RTPCodecParameters{
	media.ULaw: {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, PayloadType: 0},
	media.ALaw: {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000, Channels: 1}, PayloadType: 8},
}

// newBrowser makes a browser that accepts the given codecs (media.ULaw,
// media.ALaw) in that order of preference and sends with the first.
func newBrowser(t testing.TB, laws ...media.Law) *browser {
	t.Helper()
	return newBrowserWith(t, browserOpts{}, laws...)
}

// browserOpts change a test's browser.
type browserOpts struct {
	settings func(*webrtc.SettingEngine) // nil: pion's defaults
	noRTCP   bool                        // no interceptors: it sends no RTCP
}

// newBrowserWith is newBrowser with options.
func newBrowserWith(t testing.TB, o browserOpts, laws ...media.Law) *browser {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for _, l := range laws {
		if err := me.RegisterCodec(codecs[l], webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	reg := &interceptor.Registry{}
	if !o.noRTCP {
		if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	cut := &cuttable{UDPConn: conn}
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLogs{log: slog.New(slog.DiscardHandler)}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	mux := webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("udpmux"), cut)
	se.SetICEUDPMux(mux)
	if o.settings != nil {
		o.settings(&se)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(reg))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	mic, err := webrtc.NewTrackLocalStaticRTP(codecs[laws[0]].RTPCodecCapability, "mic", "browser")
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, pc: pc, mic: mic, heard: make(chan *rtp.Packet, 4096), net: cut, up: make(chan struct{}), seq: uint16(rand.Uint32()), ts: rand.Uint32()}
	var upOnce sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			upOnce.Do(func() { close(b.up) })
		}
	})
	var wg sync.WaitGroup
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Add(1)
		defer wg.Done()
		for {
			pkt, _, err := track.ReadRTP()
			if err != nil {
				return
			}
			select {
			case b.heard <- pkt:
			default:
				b.mu.Lock()
				b.overflow++
				b.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		b.pc.Close()
		mux.Close()
		wg.Wait()
	})
	return b
}

// answer answers the server's offer with the microphone track added.
func (b *browser) answer(offer string) string {
	b.t.Helper()
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		b.t.Fatal(err)
	}
	if len(b.pc.GetSenders()) == 0 {
		sender, err := b.pc.AddTrack(b.mic)
		if err != nil {
			b.t.Fatal(err)
		}
		go func() { // RTCP for the sender, as browsers read it
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	ans, err := b.pc.CreateAnswer(nil)
	if err != nil {
		b.t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(ans); err != nil {
		b.t.Fatal(err)
	}
	<-gathered
	return b.pc.LocalDescription().SDP
}

// say sends one packet of the agent's voice (the track rewrites the
// payload type to the negotiated one and the SSRC to its own).
func (b *browser) say(payload []byte) {
	b.t.Helper()
	err := b.mic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: b.seq, Timestamp: b.ts}, Payload: payload})
	if err != nil {
		b.t.Fatal(err)
	}
	b.seq++
	b.ts += uint32(len(payload))
}

// hear waits for the next packet the agent hears.
func (b *browser) hear(timeout time.Duration) *rtp.Packet {
	b.t.Helper()
	select {
	case pkt := <-b.heard:
		return pkt
	case <-time.After(timeout):
		b.t.Fatalf("the agent heard nothing within %v", timeout)
		return nil
	}
}

func (b *browser) drain() {
	for {
		select {
		case <-b.heard:
		default:
			return
		}
	}
}

// connect runs offer and answer between the Peer and a new browser and
// waits for Ready.
func connect(t testing.TB, p *Peer, laws ...media.Law) *browser {
	t.Helper()
	b := newBrowser(t, laws...)
	connectBrowser(t, p, b, nil)
	return b
}

// connectBrowser runs offer and answer between the Peer and b — the offer
// rewritten by edit first, when edit is not nil — and waits until both
// sides are connected.
func connectBrowser(t testing.TB, p *Peer, b *browser, edit func(offer string) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offer, err := p.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		offer = edit(offer)
	}
	if err := p.SetAnswer(b.answer(offer)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		ch   <-chan struct{}
	}{{"Peer Ready", p.Ready()}, {"browser connected", b.up}} {
		select {
		case <-c.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not within 5 s", c.what)
		}
	}
}

// bridged bridges a new µ-law caller to the Peer; the bridge stops at the
// end of the test if it was not stopped before.
func bridged(t testing.TB, p *Peer) (*caller, *Bridge) {
	t.Helper()
	c := newCaller(t, media.ULaw)
	br, err := p.Bridge(c.sess)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Stop)
	return c, br
}

// forgeFingerprint rewrites the last byte of an answer's certificate
// fingerprint: the answer names a certificate the browser does not hold.
func forgeFingerprint(t testing.TB, answer string) string {
	t.Helper()
	fp := sdpLines(answer, "a=fingerprint:sha-256 ")
	if len(fp) == 0 {
		t.Fatalf("no fingerprint in the answer:\n%s", answer)
	}
	last := "00"
	if strings.HasSuffix(fp[0], "00") {
		last = "01"
	}
	return strings.Replace(answer, fp[0], fp[0][:len(fp[0])-2]+last, 1)
}

// cuttable is the browser's UDP socket; cut, it drops everything both ways
// like a pulled cable (pion sees no error and no close).
type cuttable struct {
	*net.UDPConn
	cut atomic.Bool
}

func (c *cuttable) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if c.cut.Load() {
			// Without allocating, so benchmarks count only the server.
			if _, _, err := c.UDPConn.ReadFromUDPAddrPort(p); err != nil {
				return 0, nil, err
			}
			continue
		}
		n, addr, err := c.UDPConn.ReadFrom(p)
		if err != nil || !c.cut.Load() {
			return n, addr, err
		}
	}
}

func (c *cuttable) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		return len(p), nil
	}
	return c.UDPConn.WriteTo(p, addr)
}

// caller is the phone: a UDP socket talking to a media.Session.
type caller struct {
	t     testing.TB
	sess  *media.Session
	conn  *net.UDPConn
	law   media.Law
	heard chan rtp.Packet
	to    netip.AddrPort

	ssrc uint32
	seq  uint16
	ts   uint32
}

// portPool returns a pool on free ports below the ephemeral range (pion's
// sockets come from there).
func portPool(t testing.TB, pairs int) *media.PortPool {
	t.Helper()
	for range 500 {
		base := 20000 + 2*rand.IntN(6000)
		ok := true
		for port := base; port < base+2*pairs && ok; port++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback, Port: port})
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			pool, err := media.NewPortPool(base, base+2*pairs-1)
			if err != nil {
				t.Fatal(err)
			}
			return pool
		}
	}
	t.Fatal("no free ports")
	return nil
}

func newCaller(t testing.TB, law media.Law) *caller {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := media.NewSession(media.SessionConfig{
		Ports: portPool(t, 1), LocalIP: loopback, Law: law,
		Remote: conn.LocalAddr().(*net.UDPAddr), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	sess.Start()
	c := &caller{
		t: t, sess: sess, conn: conn, law: law, heard: make(chan rtp.Packet, 4096),
		to:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sess.LocalPort())),
		ssrc: rand.Uint32(), seq: uint16(rand.Uint32()), ts: rand.Uint32(),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(append([]byte(nil), buf[:n]...)) == nil {
				select {
				case c.heard <- pkt:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		sess.Close()
		conn.Close()
		<-done
	})
	return c
}

// say sends one packet of the caller's voice.
func (c *caller) say(payload []byte) {
	c.t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: c.law.PayloadType(), SequenceNumber: c.seq, Timestamp: c.ts, SSRC: c.ssrc}, Payload: payload}).Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.WriteToUDPAddrPort(b, c.to); err != nil {
		c.t.Fatal(err)
	}
	c.seq++
	c.ts += uint32(len(payload))
}

// hearAgent skips the session's own frames (silence) and returns the next
// packet that is not silence.
func (c *caller) hearSound(timeout time.Duration) rtp.Packet {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case pkt := <-c.heard:
			if !isSilence(c.law, pkt.Payload) {
				return pkt
			}
		case <-deadline:
			c.t.Fatalf("the caller heard only silence for %v", timeout)
			return rtp.Packet{}
		}
	}
}

func (c *caller) drain() {
	for {
		select {
		case <-c.heard:
		default:
			return
		}
	}
}

func isSilence(l media.Law, p []byte) bool {
	for _, b := range p {
		if b != l.Silence() {
			return false
		}
	}
	return true
}

// marked returns a distinct, recognisable payload of n bytes: a two-byte
// signature, number i, then a pattern that is never silence in either law.
func marked(i, n int) []byte {
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(0x20 + (i+j)%0x40)
	}
	p[0], p[1] = 0x5A, 0xA5
	binary.BigEndian.PutUint16(p[2:], uint16(i))
	return p
}

// number reads the number marked put in a payload; -1 if it has none.
func number(p []byte) int {
	if len(p) < 4 || p[0] != 0x5A || p[1] != 0xA5 {
		return -1
	}
	return int(binary.BigEndian.Uint16(p[2:]))
}

// tone returns n samples of a sine at freq Hz, amplitude a of full scale.
func tone(freq float64, n int, a float64, phase int) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(a * 32767 * math.Sin(2*math.Pi*freq*float64(i+phase)/8000))
	}
	return pcm
}

func encode(l media.Law, pcm []int16) []byte {
	b := make([]byte, len(pcm))
	media.EncodeFrame(l, b, pcm)
	return b
}

func decode(l media.Law, b []byte) []int16 {
	pcm := make([]int16, len(b))
	media.DecodeFrame(l, pcm, b)
	return pcm
}

// closeTo compares decoded audio with what was sent: G.711's quantisation
// through two laws stays within a few percent of the sample.
func closeTo(t testing.TB, what string, got, want []int16) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d samples, want %d", what, len(got), len(want))
	}
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > 64+0.07*math.Abs(float64(want[i])) {
			t.Fatalf("%s: sample %d is %d, sent %d", what, i, got[i], want[i])
		}
	}
}

func sdpLines(sdp, prefix string) []string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}
