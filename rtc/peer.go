package rtc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

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

// Peer is the server's side of one agent's PeerConnection, kept open across
// calls: offered when the agent goes available, answered once, and bridged
// to one call after another. Between calls nothing is sent to the agent
// and what the agent sends is read and dropped.
type Peer struct {
	e     *Engine
	agent string
	log   *slog.Logger
	pc    *webrtc.PeerConnection

	ready, done         chan struct{}
	readyOnce, doneOnce sync.Once

	mu        sync.Mutex
	connected bool // ICE and DTLS up
	bound     bool // the track to the agent has a writer
	laws      laws // from the agent's answer
	closed    bool
	wg        sync.WaitGroup // goroutines reading from pion

	bridge atomic.Pointer[Bridge] // the call bridged now, if any

	// out is the stream toward the agent: one SSRC (pion's, announced in
	// the SDP), one numbering across every call. Bridges write it from the
	// caller's receive goroutine.
	out struct {
		sync.Mutex
		stream *media.SendStream
		w      webrtc.TrackLocalWriter // nil until pion binds the track
		ssrc   uint32
		hdr    rtp.Header
	}
}

// laws is what the agent's answer accepts.
type laws struct {
	ok        bool
	preferred media.Law // the first in the answer: what the agent sends
	accepts   [2]bool   // by media.Law
}

// NewPeer creates an agent's PeerConnection with one audio transceiver,
// sendrecv. log should carry what identifies the agent; the Peer adds
// agent=agentID.
func (e *Engine) NewPeer(agentID string, log *slog.Logger) (*Peer, error) {
	if log == nil {
		log = e.log
	}
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
	if err != nil {
		return nil, fmt.Errorf("agent %s: new PeerConnection: %w", agentID, err)
	}
	p := &Peer{
		e:     e,
		agent: agentID,
		log:   log.With("agent", agentID),
		pc:    pc,
		ready: make(chan struct{}),
		done:  make(chan struct{}),
	}
	p.out.stream = media.NewSendStream(time.Now())
	_, err = pc.AddTransceiverFromTrack(&agentTrack{p: p}, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("agent %s: add audio transceiver: %w", agentID, err)
	}
	if err := e.add(p); err != nil {
		_ = pc.Close()
		return nil, err
	}
	pc.OnConnectionStateChange(p.stateChanged)
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		// pion runs this on a goroutine of its own; it reads the agent's
		// audio until the PeerConnection closes.
		if !p.enter() {
			return
		}
		defer p.wg.Done()
		p.readAgent(track)
	})
	// RTCP (the browser's reports) is dropped as it arrives
	// (newStreamBuffer): nobody reads it.
	return p, nil
}

// enter registers a goroutine that Close waits for; false after Close.
func (p *Peer) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// isOver tells whether a read error means the PeerConnection is gone.
func (p *Peer) isOver(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Offer returns a complete SDP offer (every ICE candidate gathered, so no
// trickle is needed): one audio transceiver, sendrecv, PCMU then PCMA. An
// offer still unanswered (the agent reconnected before answering) is
// returned again.
func (p *Peer) Offer(ctx context.Context) (string, error) {
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if p.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		offer, err := p.pc.CreateOffer(nil)
		if err != nil {
			return "", fmt.Errorf("agent %s: create offer: %w", p.agent, err)
		}
		if err := p.pc.SetLocalDescription(offer); err != nil {
			return "", fmt.Errorf("agent %s: set offer: %w", p.agent, err)
		}
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("agent %s: gather ICE candidates: %w", p.agent, ctx.Err())
	case <-p.done:
		return "", ErrPeerClosed
	}
	return p.pc.LocalDescription().SDP, nil
}

// SetAnswer applies the agent's answer to the last offer.
func (p *Peer) SetAnswer(answer string) error {
	l, err := answerLaws(answer)
	if err != nil {
		return fmt.Errorf("agent %s: answer: %w", p.agent, err)
	}
	// Known before pion can bind the track and the Peer become Ready.
	p.mu.Lock()
	old := p.laws
	p.laws = l
	p.mu.Unlock()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		p.mu.Lock()
		p.laws = old
		p.mu.Unlock()
		return fmt.Errorf("agent %s: set answer: %w", p.agent, err)
	}
	p.log.Info("agent audio answered", "codec", l.preferred.String(), "pcmu", l.accepts[media.ULaw], "pcma", l.accepts[media.ALaw])
	return nil
}

// answerLaws reads which of our codecs the answer accepts, in its order of
// preference. Our offer uses the static payload types 0 and 8, which an
// answer must keep (RFC 3264 §6.1).
func answerLaws(answer string) (laws, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(answer); err != nil {
		return laws{}, err
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		if m.MediaName.Port.Value == 0 {
			return laws{}, errors.New("the agent rejected the audio")
		}
		var l laws
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
			if !l.ok {
				l.ok, l.preferred = true, law
			}
			l.accepts[law] = true
		}
		if !l.ok {
			return laws{}, ErrNoCommonCodec
		}
		return l, nil
	}
	return laws{}, errors.New("no audio in the answer")
}

// Ready is closed when ICE and DTLS are connected and the track toward the
// agent is bound: audio can flow.
func (p *Peer) Ready() <-chan struct{} { return p.ready }

// Done is closed when the PeerConnection failed or closed: the agent's
// audio is gone. A bridged call is stopped then (the caller hears the
// session's own prompts or silence again).
func (p *Peer) Done() <-chan struct{} { return p.done }

// Law is the codec the agent's answer lists first, its preference; false
// before an answer. The agent may send with any codec its answer accepts:
// the bridge takes each packet by its payload type.
func (p *Peer) Law() (media.Law, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.laws.preferred, p.laws.ok
}

// Close ends the PeerConnection and waits for its goroutines. It is safe to
// call more than once.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	if b := p.bridge.Load(); b != nil {
		b.Stop()
	}
	err := p.pc.GracefulClose()
	p.wg.Wait()
	p.finish()
	p.e.remove(p)
	if err != nil {
		return fmt.Errorf("agent %s: close PeerConnection: %w", p.agent, err)
	}
	return nil
}

func (p *Peer) stateChanged(s webrtc.PeerConnectionState) {
	p.log.Info("agent audio", "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.mu.Lock()
		p.connected = true
		p.checkReady()
		p.mu.Unlock()
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		p.finish()
	}
}

// checkReady closes Ready once both halves are there; p.mu is held.
func (p *Peer) checkReady() {
	if p.connected && p.bound {
		p.readyOnce.Do(func() { close(p.ready) })
	}
}

func (p *Peer) finish() {
	p.doneOnce.Do(func() { close(p.done) })
	if b := p.bridge.Load(); b != nil {
		b.Stop()
	}
}

// readAgent reads the agent's audio for as long as the PeerConnection
// lives, relaying it to the bridged call, if any.
func (p *Peer) readAgent(track *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	conv := make([]byte, 1500)
	var pkt rtp.Packet
	var stamp *lastStamp
	if st := p.e.stamps; st != nil {
		var unwatch func()
		stamp, unwatch = st.watchSSRC(uint32(track.SSRC()))
		defer unwatch()
	}
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			if p.isOver(err) {
				return
			}
			continue // a packet pion could not take (an unknown payload type)
		}
		if b := p.bridge.Load(); b != nil {
			var rx time.Time
			if stamp != nil && n >= 4 {
				rx = p.e.stamps.received(stamp, uint16(buf[2])<<8|uint16(buf[3]))
			}
			b.fromAgent(buf[:n], conv, &pkt, rx)
		}
	}
}

// writeAgent sends one packet of the caller's audio (its source fields,
// payload already in law) to the agent, numbered in the agent's stream.
func (p *Peer) writeAgent(src media.AudioPacket, law media.Law, payload []byte) error {
	p.out.Lock()
	defer p.out.Unlock()
	if p.out.w == nil {
		return errNotBound
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
	_, err := p.out.w.WriteRTP(h, payload)
	return err
}

// switchAgentStream marks the next packet to the agent as new content.
func (p *Peer) switchAgentStream() {
	p.out.Lock()
	p.out.stream.Switch()
	p.out.Unlock()
}

var errNotBound = errors.New("track to the agent not bound")

// agentTrack is the audio track toward the agent. pion's static tracks
// bind to one codec and rewrite every packet's payload type to it; this
// one writes packets numbered by the Peer with the payload type of the law
// each call needs (any law the answer accepts may be sent, RFC 3264 §5.1).
type agentTrack struct{ p *Peer }

func (t *agentTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if c.PayloadType != 0 && c.PayloadType != 8 {
			continue
		}
		p := t.p
		p.out.Lock()
		p.out.w = ctx.WriteStream()
		p.out.ssrc = uint32(ctx.SSRC())
		p.out.Unlock()
		p.mu.Lock()
		p.bound = true
		p.checkReady()
		p.mu.Unlock()
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (t *agentTrack) Unbind(webrtc.TrackLocalContext) error {
	t.p.out.Lock()
	t.p.out.w = nil
	t.p.out.Unlock()
	return nil
}

func (t *agentTrack) ID() string                { return "audio" }
func (t *agentTrack) RID() string               { return "" }
func (t *agentTrack) StreamID() string          { return "ivrd" }
func (t *agentTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }
