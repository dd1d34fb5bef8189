package media

import (
	"encoding/binary"
	"errors"
	"net"
	"time"
)

// AudioPacket is one RTP packet of G.711 audio, as much of it as a relay
// needs. Payload belongs to whoever hands the packet over and is valid only
// during that call.
type AudioPacket struct {
	SSRC      uint32
	Sequence  uint16
	Timestamp uint32
	Marker    bool
	Payload   []byte
	Received  time.Time // the kernel's receive stamp (EnableRxStamps); zero without one
}

// AudioSink receives the caller's audio as it arrives. It runs on the
// session's receive path, which serves other calls too: it must not block,
// must not keep the payload, should not allocate, and must not close a
// session.
type AudioSink func(AudioPacket)

// maxRelayPayload is the largest payload a relayed packet may carry: what
// fits in a 1500-byte Ethernet frame after IP, UDP and RTP headers.
const maxRelayPayload = 1500 - 20 - 8 - 12

// Errors from Relay.Write that the relay's owner counts as drops.
var (
	ErrRelayStopped   = errors.New("media relay stopped")
	ErrLatePacket     = errors.New("relayed packet repeats or precedes what was sent")
	ErrPayloadTooLong = errors.New("relayed payload too long")
)

// Law is the codec negotiated with the caller.
func (s *Session) Law() Law { return s.cfg.Law }

// SetAudioSink hands every valid audio packet from the caller (not
// telephone-events, not duplicates) to sink as it arrives, until it is
// replaced; nil stops it. A sink being replaced may still be running when
// SetAudioSink returns.
func (s *Session) SetAudioSink(sink AudioSink) {
	if sink == nil {
		s.sink.Store(nil)
		return
	}
	s.sink.Store(&sink)
}

// Relay is another party's audio sent to the caller in place of the
// session's own: while it is active the pacer sends no prompt or silence
// frames (a Play still runs its course, unheard), and each packet
// written goes out at once, in the session's stream (see SendStream).
type Relay struct {
	s *Session
}

// StartRelay makes a relay the session's source toward the caller until
// its Stop; one started later replaces it. The first packet it sends
// carries the marker bit.
func (s *Session) StartRelay() *Relay {
	r := &Relay{s: s}
	s.out.Lock()
	s.out.relay = r
	s.out.stream.Switch()
	s.out.Unlock()
	return r
}

// Write sends one packet of audio in the session's law to the caller now.
// Its SSRC, timestamp and marker bit are the source's: the stream follows
// the source's timing (SendStream.Relay). ErrRelayStopped: the relay is no
// longer the session's source; ErrLatePacket: a duplicate or a reordered
// packet, not sent. While the caller holds the call, or before the caller's
// address is known, nothing is sent and Write returns nil.
func (r *Relay) Write(p AudioPacket) error {
	s := r.s
	if len(p.Payload) > maxRelayPayload {
		return ErrPayloadTooLong
	}
	s.out.Lock()
	defer s.out.Unlock()
	if s.out.relay != r {
		return ErrRelayStopped
	}
	remote := s.remote.Load()
	if remote == nil || !s.sending.Load() {
		return nil
	}
	now := time.Now()
	seq, ts, m, ok := s.out.stream.Relay(now, p.SSRC, p.Timestamp, len(p.Payload), p.Marker)
	if !ok {
		return ErrLatePacket
	}
	return s.writeLocked(remote, seq, ts, m, p.Payload, now)
}

// Stop gives the stream back to the session's prompts and silence, which
// resume with the marker bit and continue the sequence numbers and
// timestamps. It is safe to call more than once.
func (r *Relay) Stop() {
	s := r.s
	s.out.Lock()
	if s.out.relay == r {
		s.out.relay = nil
		s.out.stream.Switch()
	}
	s.out.Unlock()
}

// writeLocked sends one packet of the session's stream; s.out is locked.
// A packet sent is handed to the tap, stamped with now (the zero time:
// read the clock only when there is a tap).
func (s *Session) writeLocked(remote *net.UDPAddr, seq uint16, ts uint32, marker bool, payload []byte, now time.Time) error {
	b := s.out.buf[:12+len(payload)]
	b[0] = 0x80
	b[1] = s.cfg.Law.PayloadType()
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], seq)
	binary.BigEndian.PutUint32(b[4:8], ts)
	binary.BigEndian.PutUint32(b[8:12], s.out.stream.SSRC())
	copy(b[12:], payload)
	if err := s.sock.writeTo(b, remote); err != nil {
		return err
	}
	s.packetsOut.Add(1)
	s.bytesOut.Add(uint64(len(b)))
	if tap := s.tap.Load(); tap != nil {
		if now.IsZero() {
			now = time.Now()
		}
		tap.t.ToCaller(AudioPacket{SSRC: s.out.stream.SSRC(), Sequence: seq, Timestamp: ts, Marker: marker, Payload: payload}, now)
	}
	return nil
}
