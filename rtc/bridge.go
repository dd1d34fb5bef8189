package rtc

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"ivrd/media"
)

// Bridge is one call on an agent's Peer: the caller's audio relayed to the
// agent and the agent's to the caller, each packet forwarded as it
// arrives (no re-pacing, no buffering), its payload untouched when both
// legs use the same law and converted sample by sample when they do not.
// Each leg is one continuous stream (media.SendStream): the caller's
// across prompts, hold music and agent audio; the agent's across calls.
type Bridge struct {
	p         *Peer
	sess      *media.Session
	callerLaw media.Law // the caller's codec
	agentLaw  media.Law // what we send the agent: the caller's when the agent accepts it
	started   time.Time

	mu      sync.Mutex // serialises Hold and Stop
	held    atomic.Bool
	stopped atomic.Bool
	relay   atomic.Pointer[media.Relay] // toward the caller; nil on hold

	first     chan struct{}
	firstDone atomic.Bool
	firstAt   atomic.Int64 // ns from Bridge to the first packet written to the agent

	toAgentBuf [1500]byte // converted caller audio; used on the caller's receive goroutine

	toAgent, toCaller                     atomic.Uint64
	transcodedToAgent, transcodedToCaller atomic.Uint64
	droppedToAgent, droppedToCaller       atomic.Uint64
}

// BridgeStats counts what a bridge relayed.
type BridgeStats struct {
	CallerLaw, AgentLaw media.Law // the caller's codec; the one sent to the agent

	ToAgent, ToCaller                     uint64 // packets relayed
	TranscodedToAgent, TranscodedToCaller uint64 // of those, converted between laws
	// Not relayed: duplicates and reordered packets, payload types other
	// than PCMU and PCMA, send errors. Audio not relayed on hold does not
	// count.
	DroppedToAgent, DroppedToCaller uint64
}

// Bridge starts relaying between the caller's session and the agent, at
// once: from now on the caller hears the agent instead of the session's
// prompts (a Play in progress runs on unheard; cancel it), and the agent
// hears the caller. The Peer must be Ready and not bridged already.
func (p *Peer) Bridge(sess *media.Session) (*Bridge, error) {
	select {
	case <-p.done:
		return nil, ErrPeerClosed
	default:
	}
	select {
	case <-p.ready:
	default:
		return nil, ErrNotReady
	}
	p.mu.Lock()
	l := p.laws
	p.mu.Unlock()
	callerLaw := sess.Law()
	agentLaw := callerLaw
	if !l.accepts[callerLaw] {
		agentLaw = l.preferred
	}
	b := &Bridge{
		p:         p,
		sess:      sess,
		callerLaw: callerLaw,
		agentLaw:  agentLaw,
		started:   time.Now(),
		first:     make(chan struct{}),
	}
	if !p.bridge.CompareAndSwap(nil, b) {
		return nil, ErrBusy
	}
	p.switchAgentStream()
	b.relay.Store(sess.StartRelay())
	sess.SetAudioSink(b.fromCaller)
	p.log.Info("agent bridged", "caller_codec", callerLaw.String(), "agent_codec", agentLaw.String(), "agent_sends", l.preferred.String())
	// The Peer may have gone between the check and now: undo.
	select {
	case <-p.done:
		b.Stop()
		return nil, ErrPeerClosed
	default:
	}
	return b, nil
}

// FirstAudio is closed when the first packet of the caller's audio was
// written to the agent's track.
func (b *Bridge) FirstAudio() <-chan struct{} { return b.first }

// FirstAudioDelay is the time from Bridge to the first packet of the
// caller's audio written to the agent; 0 before.
func (b *Bridge) FirstAudioDelay() time.Duration { return time.Duration(b.firstAt.Load()) }

// Hold stops both directions (on) or resumes them. On hold the session is
// the caller's source again — play hold music on it; the agent hears
// nothing. Resuming takes the caller's stream back at once, marked.
func (b *Bridge) Hold(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped.Load() || b.held.Load() == on {
		return
	}
	if on {
		b.held.Store(true)
		if r := b.relay.Swap(nil); r != nil {
			r.Stop()
		}
		return
	}
	b.p.switchAgentStream()
	b.relay.Store(b.sess.StartRelay())
	b.held.Store(false)
}

// Stop ends the bridge: the session goes back to its own prompts and
// silence (and loses its audio sink), the agent hears nothing, and the
// Peer stays open for the next call. It is safe to call more than once.
func (b *Bridge) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped.Swap(true) {
		return
	}
	b.sess.SetAudioSink(nil)
	if r := b.relay.Swap(nil); r != nil {
		r.Stop()
	}
	b.p.bridge.CompareAndSwap(b, nil)
	st := b.Stats()
	b.p.log.Info("agent unbridged", "to_agent", st.ToAgent, "to_caller", st.ToCaller,
		"transcoded_to_agent", st.TranscodedToAgent, "transcoded_to_caller", st.TranscodedToCaller,
		"dropped_to_agent", st.DroppedToAgent, "dropped_to_caller", st.DroppedToCaller,
		"first_audio_ms", float64(b.FirstAudioDelay().Microseconds())/1000)
}

// Stats returns the bridge's counters.
func (b *Bridge) Stats() BridgeStats {
	return BridgeStats{
		CallerLaw: b.callerLaw, AgentLaw: b.agentLaw,
		ToAgent: b.toAgent.Load(), ToCaller: b.toCaller.Load(),
		TranscodedToAgent: b.transcodedToAgent.Load(), TranscodedToCaller: b.transcodedToCaller.Load(),
		DroppedToAgent: b.droppedToAgent.Load(), DroppedToCaller: b.droppedToCaller.Load(),
	}
}

// fromCaller is the session's audio sink: one caller packet, on the
// session's receive goroutine, to the agent now.
func (b *Bridge) fromCaller(pkt media.AudioPacket) {
	if b.held.Load() || b.stopped.Load() {
		return
	}
	payload := pkt.Payload
	transcoded := false
	if b.agentLaw != b.callerLaw {
		if len(payload) > len(b.toAgentBuf) {
			b.droppedToAgent.Add(1)
			return
		}
		out := b.toAgentBuf[:len(payload)]
		media.Transcode(b.callerLaw, b.agentLaw, out, payload)
		payload, transcoded = out, true
	}
	if err := b.p.writeAgent(pkt, b.agentLaw, payload); err != nil {
		b.droppedToAgent.Add(1)
		return
	}
	media.ObserveRelay(media.ToAgent, pkt.Received)
	b.toAgent.Add(1)
	if transcoded {
		b.transcodedToAgent.Add(1)
	}
	if !b.firstDone.Load() && b.firstDone.CompareAndSwap(false, true) {
		b.firstAt.Store(int64(time.Since(b.started)))
		close(b.first)
	}
}

// fromAgent is one packet from the agent (its header, already read when
// it was decrypted, and its payload; nil when the packet was malformed),
// on the Peer's reader goroutine, to the caller now. conv is the reader's
// scratch space; rx is the packet's kernel receive stamp, zero when
// unknown.
func (b *Bridge) fromAgent(hdr *rtp.Header, payload, conv []byte, rx time.Time) {
	if b.held.Load() {
		return
	}
	r := b.relay.Load()
	if r == nil {
		return
	}
	if payload == nil {
		b.droppedToCaller.Add(1)
		return
	}
	var law media.Law
	switch hdr.PayloadType {
	case 0:
		law = media.ULaw
	case 8:
		law = media.ALaw
	default:
		b.droppedToCaller.Add(1)
		return
	}
	transcoded := law != b.callerLaw
	if transcoded {
		out := conv[:len(payload)]
		media.Transcode(law, b.callerLaw, out, payload)
		payload = out
	}
	err := r.Write(media.AudioPacket{SSRC: hdr.SSRC, Sequence: hdr.SequenceNumber, Timestamp: hdr.Timestamp, Marker: hdr.Marker, Payload: payload})
	switch {
	case err == nil:
		media.ObserveRelay(media.ToCaller, rx)
		b.toCaller.Add(1)
		if transcoded {
			b.transcodedToCaller.Add(1)
		}
	case errors.Is(err, media.ErrRelayStopped):
		// put on hold or stopped meanwhile
	default:
		b.droppedToCaller.Add(1)
	}
}
