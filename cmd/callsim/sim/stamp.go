package sim

import (
	"math"
	"sync/atomic"
	"time"

	"ivrd/media"
)

// Kind says which side of a call sent a stamped packet.
type Kind uint8

// The two senders.
const (
	KindCaller Kind = 1
	KindAgent  Kind = 2
)

// Stamp is what every packet of callsim's audio carries at the start of its
// PCMU payload, so the other side can measure loss, jitter and relay latency
// exactly rather than estimate them: ivrd relays G.711 packet by packet
// without transcoding when both legs use the same law, so the bytes arrive
// as they were sent.
type Stamp struct {
	Kind   Kind
	Stream uint16 // the call's index (caller) or the agent's (agent)
	Seq    uint32 // the stream's packet counter, from 0
	Sent   int64  // when the packet was made, Unix nanoseconds
}

// StampBytes is how many payload bytes a Stamp takes: 4 magic bytes, then
// 30 nibbles (kind 1, stream 4, seq 8, sent 16, check 1), one per byte.
const StampBytes = 4 + stampNibbles

const stampNibbles = 30

// magic opens every stamp. Neither these nor the nibble codes are 0x7F,
// the one µ-law code that does not survive a decode and re-encode (it is
// −0 and comes back as 0xFF), so a stamp also survives receivers that hand
// over decoded PCM (the agent bot does).
var magic = [4]byte{0x55, 0xAA, 0x5A, 0xA5}

// nibbleBase is the µ-law code of nibble 0; nibble n is nibbleBase+n. These
// decode to ±1000…2000, loud enough to count as sound.
const nibbleBase = 0x20

// Put writes the stamp into payload[:StampBytes].
func (s Stamp) Put(payload []byte) {
	copy(payload, magic[:])
	var n [stampNibbles]byte
	n[0] = byte(s.Kind) & 0xF
	putNibbles(n[1:5], uint64(s.Stream))
	putNibbles(n[5:13], uint64(s.Seq))
	putNibbles(n[13:29], uint64(s.Sent))
	var check byte
	for _, v := range n[:29] {
		check ^= v
	}
	n[29] = check
	for i, v := range n {
		payload[4+i] = nibbleBase + v
	}
}

func putNibbles(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte(v & 0xF)
		v >>= 4
	}
}

// ReadStamp reads the stamp at the start of payload; ok is false when the
// payload carries none (a prompt, hold music, another program's audio).
func ReadStamp(payload []byte) (s Stamp, ok bool) {
	if len(payload) < StampBytes || [4]byte(payload[:4]) != magic {
		return Stamp{}, false
	}
	var n [stampNibbles]byte
	var check byte
	for i := range n {
		v := payload[4+i] - nibbleBase
		if v > 0xF {
			return Stamp{}, false
		}
		n[i] = v
		if i < 29 {
			check ^= v
		}
	}
	if check != n[29] || (Kind(n[0]) != KindCaller && Kind(n[0]) != KindAgent) {
		return Stamp{}, false
	}
	return Stamp{
		Kind:   Kind(n[0]),
		Stream: uint16(getNibbles(n[1:5])),
		Seq:    uint32(getNibbles(n[5:13])),
		Sent:   int64(getNibbles(n[13:29])),
	}, true
}

func getNibbles(src []byte) uint64 {
	var v uint64
	for _, b := range src {
		v = v<<4 | uint64(b)
	}
	return v
}

// Speaker makes one stream's audio: every 20 ms packet stamped, the rest
// of the payload a tone (400 Hz for callers, 1000 Hz for agents, both a
// whole number of periods per packet so the tone is a fixed table).
type Speaker struct {
	kind   Kind
	stream uint16
	seq    atomic.Uint32 // the agent bot may briefly run two senders across a renegotiation
	tone   [media.FrameSamples]byte
	now    func() time.Time
	pcm    [media.FrameSamples]byte // Next's scratch (one caller, one goroutine)
}

// NewSpeaker returns the speaker of one stream.
func NewSpeaker(kind Kind, stream uint16, now func() time.Time) *Speaker {
	if now == nil {
		now = time.Now
	}
	s := &Speaker{kind: kind, stream: stream, now: now}
	freq := 400.0
	if kind == KindAgent {
		freq = 1000
	}
	pcm := make([]int16, media.FrameSamples)
	for i := range pcm {
		pcm[i] = int16(0.3 * 32767 * math.Sin(2*math.Pi*freq*float64(i)/media.SampleRate))
	}
	media.EncodeFrame(media.ULaw, s.tone[:], pcm)
	return s
}

// Fill writes the next packet's PCMU payload (len(payload) >= StampBytes).
func (s *Speaker) Fill(payload []byte) {
	copy(payload, s.tone[:])
	Stamp{Kind: s.kind, Stream: s.stream, Seq: s.seq.Add(1) - 1, Sent: s.now().UnixNano()}.Put(payload)
}

// Next fills pcm with the next packet as PCM whose µ-law encoding is
// exactly Fill's payload: the test caller's Source interface.
func (s *Speaker) Next(pcm []int16) {
	s.Fill(s.pcm[:])
	media.DecodeFrame(media.ULaw, pcm, s.pcm[:len(pcm)])
}
