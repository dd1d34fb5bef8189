package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// SessionConfig configures one call's RTP endpoint.
type SessionConfig struct {
	Ports    *PortPool
	LocalIP  net.IP       // address to bind
	Law      Law          // negotiated codec
	DTMFType uint8        // negotiated telephone-event payload type; 0: detect DTMF in-band
	Remote   *net.UDPAddr // address from the SDP offer, used until a packet arrives
	Logger   *slog.Logger // carries call_id
}

// SessionStats counts what a session did.
type SessionStats struct {
	PacketsIn, PacketsOut   uint64
	BytesIn, BytesOut       uint64
	Malformed, WrongType    uint64 // dropped: not RTP; payload type not negotiated
	Foreign                 uint64 // dropped: from an address other than the latched one
	DigitsRFC4733, DigitsIn uint64 // digits by RFC 4733 and in-band
	DigitsDropped           uint64 // digits lost because nobody read them

	// From the caller's sequence numbers (RFC 3550 A.3), over every SSRC
	// the call had: Expected is what the caller sent (highest extended
	// sequence number minus the first plus one, per SSRC), Lost what of
	// that never arrived (a late packet is not lost; a duplicate is not
	// received twice). Late packets came after a higher-numbered one.
	Expected, Lost   uint64
	Late, Duplicates uint64
}

// ErrSessionClosed is returned by Play on a closed session.
var ErrSessionClosed = errors.New("media session closed")

// errPreempted ends a Play replaced by a newer one.
var errPreempted = errors.New("playback replaced by a newer one")

// relatchAfter is how long the latched source must be silent before another
// source may take over (a NAT that rebinds the caller's port).
const relatchAfter = 2 * time.Second

// Session is the RTP endpoint of one call. Its receive path reads packets,
// latches to the caller's address and turns DTMF into digits; on Linux the
// process's receive pollers serve every session (socket_linux.go), not a
// goroutine per call.
// Toward the caller it sends one continuous stream — one SSRC, continuous
// sequence numbers and timestamps — paced every 20 ms on absolute
// deadlines, carrying prompt frames or silence — or, while a Relay is
// active, another party's packets as they arrive (relay.go). The paced
// frames are sent by the process's pacer (pacer.go), which serves every
// call from one goroutine per CPU rather than one per call.
//
// Lifecycle: NewSession binds the port, Start begins receiving and joins
// the pacer, Play and Digits serve the IVR, Close stops
// everything and releases the port.
type Session struct {
	cfg   SessionConfig
	log   *slog.Logger
	sock  *socket
	port  int
	start time.Time

	remote  atomic.Pointer[net.UDPAddr] // where we send
	sending atomic.Bool
	relatch atomic.Bool // set by SetRemote: the next valid source latches
	lastRx  atomic.Int64

	rx      receiver // owned by the receive path
	pacer   *pacer
	pace    pace                     // owned by the pacer
	pending atomic.Pointer[playback] // handed over by Play, taken at the next frame
	digits  chan Digit

	// out is the stream toward the caller, shared by the pacer and a relay
	// (Relay.Write runs on the relay owner's goroutine).
	out struct {
		sync.Mutex
		stream *SendStream
		relay  *Relay // the active relay: the paced frames are not sent
		closed bool   // Close has begun: the pacer sends nothing more
		buf    [12 + maxRelayPayload]byte
	}
	sink atomic.Pointer[AudioSink]
	tap  atomic.Pointer[tapBox]

	startOnce, closeOnce sync.Once
	done                 chan struct{}

	packetsIn, packetsOut, bytesIn, bytesOut atomic.Uint64
	malformed, wrongType, foreign            atomic.Uint64
	digitsRFC, digitsInband, digitsDropped   atomic.Uint64
	expected, lost, late, duplicates         atomic.Uint64
}

// NewSession binds a port from the pool. Nothing runs until Start.
func NewSession(cfg SessionConfig) (*Session, error) {
	if cfg.Ports == nil {
		return nil, errors.New("media session: no port pool")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	sock, port, err := openSocket(cfg.Ports, cfg.LocalIP)
	if err != nil {
		return nil, fmt.Errorf("media session: %w", err)
	}
	if err := sock.enableStamps(); err != nil {
		cfg.Logger.Debug("no kernel receive stamps: relay latency not measured", "error", err)
	}
	s := &Session{
		cfg:    cfg,
		log:    cfg.Logger,
		sock:   sock,
		port:   port,
		pacer:  sharedPacer(),
		digits: make(chan Digit, 32),
		done:   make(chan struct{}),
	}
	s.rx = receiver{s: s}
	if cfg.DTMFType == 0 {
		s.rx.tones = NewToneDetector() // only without telephone-event: 1.7 KB a call
	}
	s.out.stream = NewSendStream(time.Now())
	if cfg.Remote != nil && !cfg.Remote.IP.IsUnspecified() {
		s.remote.Store(cfg.Remote)
	}
	s.sending.Store(true)
	s.relatch.Store(true)
	return s, nil
}

// LocalPort is the bound RTP port.
func (s *Session) LocalPort() int { return s.port }

// Start begins receiving and starts the paced stream, its first frame
// 20 ms from now. Calling it twice does nothing.
func (s *Session) Start() {
	s.startOnce.Do(func() {
		s.start = time.Now()
		s.lastRx.Store(0)
		if err := s.sock.startReceive(s); err != nil {
			// Only when the kernel refuses an epoll entry (out of memory
			// or fs.epoll.max_user_watches): the call goes on, deaf.
			s.log.Error("media session receives nothing", "port", s.port, "error", err)
		}
		s.pace = pace{epoch: s.start, n: 1, deadline: s.start.Add(FrameDuration)}
		s.pacer.add(s)
	})
}

// SetRemote points the stream at a new address (a re-INVITE moved the
// caller) and lets the next valid packet latch afresh.
func (s *Session) SetRemote(addr *net.UDPAddr) {
	if addr != nil && !addr.IP.IsUnspecified() {
		s.remote.Store(addr)
	}
	s.relatch.Store(true)
}

// SetSending turns transmission off while the caller holds the call and on
// again; the timestamps keep running so the stream stays continuous.
func (s *Session) SetSending(on bool) { s.sending.Store(on) }

// Digits delivers the caller's key presses. It is buffered: presses made
// before anyone reads (type-ahead) are kept.
func (s *Session) Digits() <-chan Digit { return s.digits }

// InjectDigit delivers a digit that came another way (SIP INFO).
func (s *Session) InjectDigit(d Digit) { s.pushDigit(d) }

func (s *Session) pushDigit(d Digit) {
	select {
	case s.digits <- d:
	default:
		s.digitsDropped.Add(1)
		s.log.Warn("digit dropped: nobody is reading", "key", string(d.Key))
	}
}

// LastReceived is when the last valid RTP packet arrived (Start time before
// the first).
func (s *Session) LastReceived() time.Time {
	ns := s.lastRx.Load()
	return s.start.Add(time.Duration(ns))
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	return SessionStats{
		PacketsIn: s.packetsIn.Load(), PacketsOut: s.packetsOut.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		Malformed: s.malformed.Load(), WrongType: s.wrongType.Load(), Foreign: s.foreign.Load(),
		DigitsRFC4733: s.digitsRFC.Load(), DigitsIn: s.digitsInband.Load(), DigitsDropped: s.digitsDropped.Load(),
		Expected: s.expected.Load(), Lost: s.lost.Load(), Late: s.late.Load(), Duplicates: s.duplicates.Load(),
	}
}

// Close stops receiving, closes the socket and releases the port; no
// packet is handled and no paced frame is sent once it returns. It is safe to call more than once.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		s.out.Lock()
		s.out.closed = true // the pacer drops the session at its next deadline
		s.out.Unlock()
		if pb := s.pending.Swap(nil); pb != nil {
			pb.result(ErrSessionClosed) // never taken: the pacer may have dropped the session already
		}
		err = s.sock.close()
		s.cfg.Ports.Release(s.port)
	})
	return err
}

// playback is one Play: the frames of its prompts, in order.
type playback struct {
	prompts []*Prompt
	p, f    int
	stopped atomic.Pointer[error] // Stop's error: the pacer ends the playback with it at the next frame
	done    chan error            // the result, sent exactly once (buffered)
	release func() bool           // unregisters the context's AfterFunc; set before the pacer sees it
}

// result ends the playback with err: whoever ends it calls this once.
func (pb *playback) result(err error) {
	if pb.release != nil {
		pb.release()
	}
	pb.done <- err
}

// next returns the next frame in law l, or nil at the end.
func (pb *playback) next(l Law) []byte {
	for pb.p < len(pb.prompts) {
		frames := pb.prompts[pb.p].Frames(l)
		if pb.f < len(frames) {
			pb.f++
			return frames[pb.f-1]
		}
		pb.p, pb.f = pb.p+1, 0
	}
	return nil
}

// Playback is prompts playing on a session while its caller goes on: the
// result arrives on Done. It needs no goroutine of its own — the pacer
// plays it — so a call that waits for keys or queue events while prompts
// play costs nothing extra.
type Playback struct {
	s  *Session
	pb *playback
}

// StartPlay starts sending the prompts' frames in order, replacing what
// plays now, from the next frame on. Done delivers the result exactly
// once: nil after the last frame has gone out, or the reason it ended
// early — Stop's error, ctx.Err() when ctx ends first, ErrSessionClosed,
// or errPreempted when a newer StartPlay or Play replaced it.
func (s *Session) StartPlay(ctx context.Context, prompts ...*Prompt) *Playback {
	pb := &playback{prompts: prompts, done: make(chan error, 1)}
	h := &Playback{s: s, pb: pb}
	if err := ctx.Err(); err != nil {
		// A playback whose context is already over must not reach the
		// pacer: handing it over would cut off the prompt that is playing.
		pb.done <- err
		return h
	}
	// Registered before the pacer can see the playback; if ctx ends
	// before the handover, end leaves the error for the pacer to find.
	pb.release = context.AfterFunc(ctx, func() { h.end(ctx.Err()) })
	if old := s.pending.Swap(pb); old != nil {
		old.result(errPreempted) // replaced before its first frame
	}
	select {
	case <-s.done:
		// Closed meanwhile: if the pacer did not take it (and end it with
		// ErrSessionClosed), nobody will.
		if s.pending.CompareAndSwap(pb, nil) {
			pb.result(ErrSessionClosed)
		}
	default:
	}
	return h
}

// Done delivers the playback's result, once.
func (h *Playback) Done() <-chan error { return h.pb.done }

// Stop ends the playback at the next frame boundary; Done then delivers
// context.Canceled (or the result, if it had ended already). It does not
// wait.
func (h *Playback) Stop() { h.end(context.Canceled) }

// end stops the playback with err: at once if the pacer has not taken it
// yet (the prompt playing before it goes on), else at its next frame.
func (h *Playback) end(err error) {
	if h.s.pending.CompareAndSwap(h.pb, nil) {
		h.pb.result(err)
		return
	}
	h.pb.stopped.CompareAndSwap(nil, &err)
}

// Play sends the prompts' frames in order and returns when the last one has
// gone out, or when ctx is done (then at the next frame boundary, with
// ctx.Err()). A Play started while another runs replaces it.
func (s *Session) Play(ctx context.Context, prompts ...*Prompt) error {
	select {
	case <-s.done:
		return ErrSessionClosed
	default:
	}
	return <-s.StartPlay(ctx, prompts...).Done()
}

// silenceFrames are a frame of silence in each law, shared read-only.
var silenceFrames = [2][]byte{
	ULaw: bytes.Repeat([]byte{ULaw.Silence()}, FrameSamples),
	ALaw: bytes.Repeat([]byte{ALaw.Silence()}, FrameSamples),
}

// pace is a session's place on its paced clock and what it is playing,
// owned by the pacer once Start has handed the session over.
type pace struct {
	epoch    time.Time
	n        int64     // the number of the next frame
	deadline time.Time // when it is due: epoch + n·FrameDuration
	cur      *playback
	marker   bool // the next frame sent starts cur
}

// finish ends the current playback, if any, with err.
func (p *pace) finish(err error) {
	if p.cur != nil {
		p.cur.result(err)
		p.cur = nil
	}
}

// sendFrame sends the frame due at s.pace.deadline — the next frame of the
// playback or silence — and moves the deadline on by one frame; now is
// about the deadline (at most a pacer slot before it). It reports false once
// the session is closed: the pacer then drops it.
//
// Deadlines are absolute, so lateness in one frame never accumulates into
// drift; if the session falls more than a few frames behind (a stalled
// machine) it skips ahead, the timestamp moving with the clock over the
// time skipped, instead of bursting. While a relay is active nothing is
// sent: playback runs on, unheard.
func (s *Session) sendFrame(now time.Time) bool {
	p := &s.pace
	late := now.Sub(p.deadline)
	var skip int64
	if late > 3*FrameDuration {
		skip = int64(late / FrameDuration)
		p.n += skip
		p.deadline = p.epoch.Add(time.Duration(p.n) * FrameDuration)
	}
	if pb := s.pending.Swap(nil); pb != nil {
		p.finish(errPreempted)
		p.cur, p.marker = pb, true
	}
	law := s.cfg.Law
	payload := silenceFrames[law]
	if p.cur != nil {
		if err := p.cur.stopped.Load(); err != nil {
			p.finish(*err)
		} else if f := p.cur.next(law); f != nil {
			payload = f
		} else {
			p.finish(nil)
		}
	}
	s.out.Lock()
	if s.out.closed {
		s.out.Unlock()
		p.finish(ErrSessionClosed)
		return false
	}
	pacing.frames.Add(1)
	if late > LateFrame {
		pacing.late.Add(1)
	}
	pacing.skipped.Add(uint64(skip))
	if remote := s.remote.Load(); remote != nil && s.sending.Load() && s.out.relay == nil {
		seq, ts, m := s.out.stream.Frame(p.deadline, len(payload), p.marker && p.cur != nil)
		if p.cur != nil {
			p.marker = false
		}
		_ = s.writeLocked(remote, seq, ts, m, payload, time.Time{}) // a frame the socket refused is not counted as sent
	}
	s.out.Unlock()
	p.n++
	p.deadline = p.epoch.Add(time.Duration(p.n) * FrameDuration)
	return true
}

// LateFrame is how far past its deadline a paced frame may go before it
// counts as late in PacingStats: half a frame.
const LateFrame = FrameDuration / 2

// pacing counts every session's paced frames, process-wide.
var pacing struct{ frames, late, skipped atomic.Uint64 }

// PacingStats are the paced frames of every session so far: how many were
// due, how many went out more than LateFrame after their deadline (the
// machine was too busy to send them on time), and how many were skipped
// because the sender fell more than three frames behind.
type PacingStats struct{ Frames, Late, Skipped uint64 }

// Pacing returns the process-wide PacingStats.
func Pacing() PacingStats {
	return PacingStats{Frames: pacing.frames.Load(), Late: pacing.late.Load(), Skipped: pacing.skipped.Load()}
}

// rtpHeader is what the receive path needs from a packet.
type rtpHeader struct {
	pt      uint8
	marker  bool
	seq     uint16
	ts      uint32
	ssrc    uint32
	payload []byte
}

// parseRTP validates an RTP packet (RFC 3550 §5.1) without allocating.
func parseRTP(b []byte) (rtpHeader, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return rtpHeader{}, false
	}
	h := rtpHeader{
		pt:     b[1] & 0x7f,
		marker: b[1]&0x80 != 0,
		seq:    binary.BigEndian.Uint16(b[2:4]),
		ts:     binary.BigEndian.Uint32(b[4:8]),
		ssrc:   binary.BigEndian.Uint32(b[8:12]),
	}
	off := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // header extension
		if len(b) < off+4 {
			return rtpHeader{}, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:off+4]))
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding
		pad := int(b[len(b)-1])
		if pad == 0 || pad > end-off {
			return rtpHeader{}, false
		}
		end -= pad
	}
	if off > end {
		return rtpHeader{}, false
	}
	h.payload = b[off:end]
	return h, true
}

// receiver is the state of the receive path, used by one goroutine at a
// time (a poller holding the socket's lock, or the socket's goroutine).
type receiver struct {
	s         *Session
	latched   *net.UDPAddr
	lastOK    time.Time // last packet from the latched source
	events    EventDetector
	eventSSRC uint32        // source of the events the detector has seen
	tones     *ToneDetector // nil with telephone-event negotiated
	seq       seqStats
	pcm       [FrameSamples]int16
}

// packet handles one datagram: validate, latch, count, detect DTMF.
// rx is the kernel's receive stamp, zero without one.
func (r *receiver) packet(b []byte, from *net.UDPAddr, now, rx time.Time) {
	s := r.s
	h, ok := parseRTP(b)
	if !ok {
		s.malformed.Add(1)
		return
	}
	law := s.cfg.Law
	isEvent := s.cfg.DTMFType != 0 && h.pt == s.cfg.DTMFType
	if h.pt != law.PayloadType() && !isEvent {
		s.wrongType.Add(1)
		return
	}
	// Symmetric RTP: latch to where valid packets come from and send there.
	switch {
	case r.latched == nil || s.relatch.Load():
		r.latch(from, now)
	case !sameAddr(r.latched, from):
		if now.Sub(r.lastOK) < relatchAfter {
			s.foreign.Add(1)
			return
		}
		s.log.Info("RTP source changed", "from", r.latched.String(), "to", from.String())
		r.latch(from, now)
	}
	r.lastOK = now
	s.lastRx.Store(int64(now.Sub(s.start)))
	s.packetsIn.Add(1)
	s.bytesIn.Add(uint64(len(b)))
	order := r.seq.update(h.ssrc, h.seq)
	switch order {
	case seqLate:
		s.late.Add(1)
		fallthrough
	case seqInOrder:
		// Stored per packet so Stats is current during the call; only
		// this goroutine writes them.
		s.expected.Store(r.seq.expected())
		s.lost.Store(r.seq.lost())
	case seqDuplicate:
		s.duplicates.Add(1)
	}

	if !isEvent && order != seqDuplicate {
		pkt := AudioPacket{SSRC: h.ssrc, Sequence: h.seq, Timestamp: h.ts, Marker: h.marker, Payload: h.payload, Received: rx}
		if sink := s.sink.Load(); sink != nil {
			(*sink)(pkt)
		}
		if tap := s.tap.Load(); tap != nil {
			tap.t.FromCaller(pkt, now)
		}
	}
	if isEvent {
		// Timestamps belong to one source: a new SSRC (the caller's media
		// moved after a transfer or re-INVITE) starts anywhere, possibly
		// "before" the last event, which would read as a stale retransmit.
		if h.ssrc != r.eventSSRC {
			r.events, r.eventSSRC = EventDetector{}, h.ssrc
		}
		if d, ok := r.events.Feed(h.ts, h.payload); ok {
			s.digitsRFC.Add(1)
			s.pushDigit(d)
		}
		return
	}
	if s.cfg.DTMFType != 0 {
		return // with telephone-event negotiated, in-band tones are ignored (or a press counts twice)
	}
	for p := h.payload; len(p) > 0; {
		chunk := p[:min(len(p), FrameSamples)]
		p = p[len(chunk):]
		DecodeFrame(law, r.pcm[:len(chunk)], chunk)
		if key, ok := r.tones.Feed(r.pcm[:len(chunk)]); ok {
			s.digitsInband.Add(1)
			s.pushDigit(Digit{Key: key, Source: DigitInband})
		}
	}
}

func (r *receiver) latch(from *net.UDPAddr, now time.Time) {
	addr := &net.UDPAddr{IP: append(net.IP(nil), from.IP...), Port: from.Port}
	r.latched = addr
	r.lastOK = now
	r.s.relatch.Store(false)
	if old := r.s.remote.Load(); old == nil || !sameAddr(old, addr) {
		r.s.remote.Store(addr)
	}
}

func sameAddr(a, b *net.UDPAddr) bool { return a.Port == b.Port && a.IP.Equal(b.IP) }
