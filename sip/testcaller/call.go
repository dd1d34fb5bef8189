package testcaller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"ivrd/media"
)

// Source produces the audio we send: 160 samples of 8 kHz PCM per call.
type Source interface {
	Next(pcm []int16)
}

// Silence is a Source of zeros.
type Silence struct{}

// Next fills pcm with silence.
func (Silence) Next(pcm []int16) { clear(pcm) }

// Tone is a Source of a sine wave.
type Tone struct {
	Freq      float64
	Amplitude float64 // 0..1
	n         int
}

// Next fills pcm with the next 20 ms of the tone.
func (t *Tone) Next(pcm []int16) {
	for i := range pcm {
		pcm[i] = int16(t.Amplitude * 32767 * math.Sin(2*math.Pi*t.Freq*float64(t.n)/media.SampleRate))
		t.n++
	}
}

// Frame is one received RTP packet, as heard.
type Frame struct {
	At      time.Time
	Seq     uint16
	TS      uint32
	SSRC    uint32
	Marker  bool
	PT      uint8
	RMS     float64 // of the decoded audio, 0..32767; with DialOptions.Discard only until the first sound
	PCM     []int16 // only with DialOptions.KeepFrames
	Payload []byte  // the G.711 payload, only with DialOptions.KeepFrames
}

// LoudRMS is the level above which a frame counts as sound, not silence
// (about -40 dBFS; G.711 silence decodes to 0 or ±8).
const LoudRMS = 300

type outFrame struct {
	payload []byte
	pt      uint8
	marker  bool
	ts      uint32 // 0: use the running clock
	fixedTS bool
}

type direction string

const (
	sendRecv direction = "sendrecv"
	sendOnly direction = "sendonly"
)

// Call is one call placed by a Phone.
type Call struct {
	ID         string
	InviteAt   time.Time
	AnsweredAt time.Time

	phone *Phone
	opts  DialOptions
	sess  *sipgo.DialogClientSession
	rtp   *net.UDPConn
	// shared is the phone's shared socket the call's RTP is on (nil: its
	// own socket, rtp).
	shared *sharedRTP

	law      media.Law
	dtmfType uint8
	remote   *net.UDPAddr

	// The send state, the sender's (sender.go) once the call is answered.
	ssrc   uint32
	seq    uint16
	ts     uint32
	src    Source
	sendTo netip.AddrPort
	queue  []outFrame    // the digit being sent
	skip   atomic.Uint32 // sequence numbers to leave out before the next packet

	digitsQ  chan []outFrame
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	bye     chan struct{}
	byeOnce sync.Once
	byeAt   time.Time

	mu           sync.Mutex
	frames       []Frame
	received     int
	notify       chan struct{}
	firstSoundAt time.Time
	heard        atomic.Bool   // firstSoundAt is set (read without the lock per packet)
	sound        chan struct{} // closed at firstSoundAt
	closed       bool
	onPacket     func(f Frame, payload []byte)
}

// OnPacket sets a function called on the receive goroutine with every RTP
// packet that arrives from now on: the frame as heard and the raw payload,
// valid only until fn returns. It lets a load generator read what it needs
// from each packet without the call keeping them (DialOptions.Discard). fn
// must return quickly and must not call the Call's methods.
func (c *Call) OnPacket(fn func(f Frame, payload []byte)) {
	c.mu.Lock()
	c.onPacket = fn
	c.mu.Unlock()
}

// Law is the codec the server answered with.
func (c *Call) Law() media.Law { return c.law }

// DTMFType is the telephone-event payload type the server accepted (0: none).
func (c *Call) DTMFType() uint8 { return c.dtmfType }

// Response is the server's 200 OK.
func (c *Call) Response() *sip.Response { return c.sess.InviteResponse }

func (c *Call) localSDP(dir direction) []byte {
	port := c.conn().LocalAddr().(*net.UDPAddr).Port
	ip := c.phone.cfg.LocalIP
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=caller 1 1 IN IP4 %s\r\ns=call\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP", ip, ip, port)
	for _, l := range c.opts.Laws {
		fmt.Fprintf(&b, " %d", l.PayloadType())
	}
	if c.opts.DTMFType != 0 {
		fmt.Fprintf(&b, " %d", c.opts.DTMFType)
	}
	b.WriteString("\r\n")
	for _, l := range c.opts.Laws {
		fmt.Fprintf(&b, "a=rtpmap:%d %s/8000\r\n", l.PayloadType(), l)
	}
	if c.opts.DTMFType != 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", c.opts.DTMFType, c.opts.DTMFType)
	}
	fmt.Fprintf(&b, "a=ptime:20\r\na=%s\r\n", dir)
	return []byte(b.String())
}

// readAnswer takes codec, event type and address from the server's SDP.
func (c *Call) readAnswer(res *sip.Response) error {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(res.Body()); err != nil {
		return fmt.Errorf("testcaller: answer SDP: %w", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return errors.New("testcaller: answer SDP has no media")
	}
	md := sd.MediaDescriptions[0]
	if len(md.MediaName.Formats) == 0 {
		return errors.New("testcaller: answer SDP has no formats")
	}
	switch md.MediaName.Formats[0] {
	case "0":
		c.law = media.ULaw
	case "8":
		c.law = media.ALaw
	default:
		return fmt.Errorf("testcaller: answer codec %q is not G.711", md.MediaName.Formats[0])
	}
	for _, f := range md.MediaName.Formats[1:] {
		var pt int
		if _, err := fmt.Sscan(f, &pt); err == nil && pt >= 96 {
			c.dtmfType = uint8(pt)
		}
	}
	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return errors.New("testcaller: answer SDP has no address")
	}
	c.remote = &net.UDPAddr{IP: net.ParseIP(ci.Address.Address), Port: md.MediaName.Port.Value}
	return nil
}

func (c *Call) start() {
	if sh := c.shared; sh != nil {
		c.wg.Add(1)
		c.startSending()
		sh.add(c)
		return
	}
	c.wg.Add(2)
	c.startSending()
	go c.recvLoop(c.rtp)
}

func (c *Call) conn() *net.UDPConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rtp
}

// rxScratch is a receiving goroutine's room to read a packet in: the
// packet's Payload points into the bytes read.
type rxScratch struct {
	pkt rtp.Packet
	pcm [media.FrameSamples]int16
}

// recvLoop reads the packets that arrive on the call's own socket conn
// until it is closed.
func (c *Call) recvLoop(conn *net.UDPConn) {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	sc := new(rxScratch)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		c.handleRTP(buf[:n], time.Now(), sc)
	}
}

// handleRTP takes one packet that arrived at at. With DialOptions.Discard
// it allocates nothing and measures the level only until the first sound.
// One goroutine at a time calls it for a call.
func (c *Call) handleRTP(b []byte, at time.Time, sc *rxScratch) {
	pkt := &sc.pkt
	if err := pkt.Unmarshal(b); err != nil {
		return
	}
	f := Frame{At: at, Seq: pkt.SequenceNumber, TS: pkt.Timestamp, SSRC: pkt.SSRC, Marker: pkt.Marker, PT: pkt.PayloadType}
	if pkt.PayloadType == c.law.PayloadType() && len(pkt.Payload) > 0 && !(c.opts.Discard && c.heard.Load()) {
		samples := sc.pcm[:min(len(pkt.Payload), len(sc.pcm))]
		media.DecodeFrame(c.law, samples, pkt.Payload[:len(samples)])
		f.RMS = rms(samples)
		if c.opts.KeepFrames && !c.opts.Discard {
			f.PCM = append([]int16(nil), samples...)
			f.Payload = append([]byte(nil), pkt.Payload...)
		}
	}
	c.mu.Lock()
	if !c.opts.Discard {
		c.frames = append(c.frames, f)
	}
	c.received++
	if f.RMS > LoudRMS && c.firstSoundAt.IsZero() {
		c.firstSoundAt = f.At
		c.heard.Store(true)
		close(c.sound)
	}
	if c.notify != nil {
		close(c.notify)
		c.notify = nil
	}
	hook := c.onPacket
	c.mu.Unlock()
	if hook != nil {
		hook(f, pkt.Payload)
	}
}

// rms is the root mean square of samples.
func rms(samples []int16) float64 {
	var sum float64
	for _, s := range samples {
		sum += float64(s) * float64(s)
	}
	return math.Sqrt(sum / float64(len(samples)))
}

// FirstSoundAt is when the first packet louder than LoudRMS arrived (zero:
// none yet). It is known with DialOptions.Discard too.
func (c *Call) FirstSoundAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstSoundAt
}

// Sound returns a channel closed when the first packet louder than
// LoudRMS arrives (FirstSoundAt).
func (c *Call) Sound() <-chan struct{} { return c.sound }

// SkipSequence leaves n sequence numbers out before the next packet, as if
// n packets had been lost on the way (before the first packet, it only
// moves where the numbering starts).
func (c *Call) SkipSequence(n int) { c.skip.Add(uint32(n)) }

// Frames returns a copy of every frame heard so far (none with
// DialOptions.Discard).
func (c *Call) Frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.frames...)
}

// Mark returns a position in the received stream for the Since methods.
func (c *Call) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// FramesSince returns the frames heard after mark.
func (c *Call) FramesSince(mark int) []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	if mark > len(c.frames) {
		mark = len(c.frames)
	}
	return append([]Frame(nil), c.frames[mark:]...)
}

// wait blocks until a new frame arrives, the server hangs up or ctx ends.
func (c *Call) wait(ctx context.Context) error {
	c.mu.Lock()
	if c.notify == nil {
		c.notify = make(chan struct{})
	}
	ch := c.notify
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-c.bye:
		return ErrHungUp
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrHungUp means the server ended the call while we waited for something.
var ErrHungUp = errors.New("testcaller: the server hung up")

// ErrDiscarding means a wait needs the frames a call dialled with
// DialOptions.Discard does not keep.
var ErrDiscarding = errors.New("testcaller: the call keeps no frames (DialOptions.Discard)")

// WaitSound waits until at least d of sound (frames above LoudRMS, not
// necessarily contiguous) has arrived after mark.
func (c *Call) WaitSound(ctx context.Context, mark int, d time.Duration) error {
	if c.opts.Discard {
		return ErrDiscarding
	}
	need := int(d / media.FrameDuration)
	for {
		loud := 0
		for _, f := range c.FramesSince(mark) {
			if f.RMS > LoudRMS {
				loud++
			}
		}
		if loud >= need {
			return nil
		}
		if err := c.wait(ctx); err != nil {
			return fmt.Errorf("heard %d of %d loud frames: %w", loud, need, err)
		}
	}
}

// WaitSilence waits until d of continuous silence has arrived after mark
// (a prompt has ended).
func (c *Call) WaitSilence(ctx context.Context, mark int, d time.Duration) error {
	if c.opts.Discard {
		return ErrDiscarding
	}
	need := int(d / media.FrameDuration)
	for {
		run := 0
		for _, f := range c.FramesSince(mark) {
			if f.RMS > LoudRMS {
				run = 0
			} else {
				run++
			}
		}
		if run >= need {
			return nil
		}
		if err := c.wait(ctx); err != nil {
			return err
		}
	}
}

// SendDigit presses key as an RFC 4733 event lasting d: one packet per
// 20 ms with the same timestamp, the marker on the first, then the end
// packet three times (RFC 4733 §2.5.1.4).
func (c *Call) SendDigit(key byte, d time.Duration) error {
	if c.dtmfType == 0 {
		return errors.New("testcaller: telephone-event was not negotiated")
	}
	ev, ok := media.KeyEvent(key)
	if !ok {
		return fmt.Errorf("testcaller: %q is not a DTMF key", key)
	}
	frames := DigitFrames(c.dtmfType, ev, d, true)
	c.digitsQ <- frames
	return nil
}

// DigitFrames builds the packets of one RFC 4733 event. The timestamp is
// filled in when sent; marker says whether the first packet carries the
// marker bit (some phones never set it).
func DigitFrames(pt uint8, event uint8, d time.Duration, marker bool) []outFrame {
	n := max(int(d/media.FrameDuration), 1)
	var frames []outFrame
	for i := 1; i <= n+2; i++ {
		dur := uint16(min(i, n) * media.FrameSamples)
		te := media.TelephoneEvent{Event: event, End: i >= n, Volume: 10, Duration: dur}
		b := make([]byte, 4)
		if _, err := te.MarshalTo(b); err != nil {
			continue
		}
		frames = append(frames, outFrame{payload: b, pt: pt, marker: marker && i == 1})
	}
	return frames
}

// SendDigitNoMarker presses key as an RFC 4733 event without the marker
// bit on its first packet, as some gateways do.
func (c *Call) SendDigitNoMarker(key byte, d time.Duration) error {
	ev, ok := media.KeyEvent(key)
	if !ok || c.dtmfType == 0 {
		return fmt.Errorf("testcaller: cannot send %q as an event", key)
	}
	c.digitsQ <- DigitFrames(c.dtmfType, ev, d, false)
	return nil
}

// SendTone presses key as in-band DTMF audio lasting d, followed by 60 ms
// of silence.
func (c *Call) SendTone(key byte, d time.Duration) error {
	pcm := media.GenerateDTMF(key, d, 0.4)
	if len(pcm) == 0 {
		return fmt.Errorf("testcaller: %q is not a DTMF key", key)
	}
	pcm = append(pcm, make([]int16, 3*media.FrameSamples)...)
	var frames []outFrame
	for i := 0; i+media.FrameSamples <= len(pcm); i += media.FrameSamples {
		p := make([]byte, media.FrameSamples)
		media.EncodeFrame(c.law, p, pcm[i:i+media.FrameSamples])
		frames = append(frames, outFrame{payload: p, pt: c.law.PayloadType()})
	}
	c.digitsQ <- frames
	return nil
}

// SendInfo presses key by SIP INFO with an application/dtmf-relay body and
// returns the server's status code.
func (c *Call) SendInfo(ctx context.Context, key byte) (int, error) {
	return c.SendRequest(ctx, sip.INFO, "application/dtmf-relay", []byte(fmt.Sprintf("Signal=%c\r\nDuration=160\r\n", key)))
}

// SendRequest sends a request inside the dialog and returns the final status.
func (c *Call) SendRequest(ctx context.Context, method sip.RequestMethod, contentType string, body []byte) (int, error) {
	req := sip.NewRequest(method, c.sess.InviteResponse.Contact().Address)
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body)
	res, err := c.sess.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// ReInvite sends a re-INVITE with our SDP in the given direction ("sendonly"
// puts the server on hold, "sendrecv" resumes) and, when moveRTP is set, a
// new RTP port. It returns the status and the server's SDP.
func (c *Call) ReInvite(ctx context.Context, hold bool, moveRTP bool) (int, []byte, error) {
	if moveRTP && c.shared != nil {
		return 0, nil, errors.New("testcaller: a call on the phone's shared RTP socket cannot move its RTP")
	}
	if moveRTP {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(c.phone.cfg.LocalIP)})
		if err != nil {
			return 0, nil, err
		}
		old := c.rtp
		c.mu.Lock()
		c.rtp = conn
		c.mu.Unlock()
		c.wg.Add(1)
		go c.recvLoop(conn)
		defer old.Close()
	}
	dir := sendRecv
	if hold {
		dir = sendOnly
	}
	req := sip.NewRequest(sip.INVITE, c.sess.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(c.localSDP(dir))
	res, err := c.sess.Do(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	if res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, c.sess.InviteResponse.Contact().Address)
		ack.AppendHeader(sip.HeaderClone(res.From()))
		ack.AppendHeader(sip.HeaderClone(res.To()))
		ack.AppendHeader(sip.HeaderClone(res.CallID()))
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: res.CSeq().SeqNo, MethodName: sip.ACK})
		if err := c.sess.WriteRequest(ack); err != nil {
			return res.StatusCode, res.Body(), fmt.Errorf("testcaller: ACK re-INVITE: %w", err)
		}
	}
	return res.StatusCode, res.Body(), nil
}

// Bye returns a channel closed when the server sends BYE.
func (c *Call) Bye() <-chan struct{} { return c.bye }

// ByeAt is when the server's BYE arrived (zero if it did not).
func (c *Call) ByeAt() time.Time {
	select {
	case <-c.bye:
		return c.byeAt
	default:
		return time.Time{}
	}
}

// WaitBye waits for the server's BYE.
func (c *Call) WaitBye(ctx context.Context) error {
	select {
	case <-c.bye:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("testcaller: no BYE from the server: %w", ctx.Err())
	}
}

// Hangup sends BYE (unless the server already did) and releases the call.
func (c *Call) Hangup(ctx context.Context) error {
	var err error
	select {
	case <-c.bye:
	default:
		err = c.sess.Bye(ctx)
	}
	c.Close()
	return err
}

// Close stops RTP and forgets the call without signalling: the caller
// vanishes (for RTP-timeout tests). Safe to call twice.
func (c *Call) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.stopRTP()
	c.forget()
	_ = c.sess.Close()
}

// StopRTP stops sending and receiving RTP but keeps the dialog.
func (c *Call) StopRTP() { c.stopRTP() }

func (c *Call) stopRTP() {
	c.stopOnce.Do(func() { close(c.stop) })
	if sh := c.shared; sh != nil {
		sh.remove(c)
	} else {
		c.conn().Close()
	}
	c.wg.Wait()
}

func (c *Call) forget() {
	c.phone.mu.Lock()
	delete(c.phone.calls, c.ID)
	c.phone.mu.Unlock()
}

// Received returns how many RTP packets arrived.
func (c *Call) Received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}
