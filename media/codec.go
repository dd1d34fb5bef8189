// Package media is ivrd's audio path for one call: the RTP endpoint with
// symmetric latching, G.711 µ-law and A-law, DTMF from RFC 4733 events and
// from in-band tones, prompts decoded once at start and played on a paced,
// drift-free clock.
package media

import (
	"time"

	"github.com/zaf/g711"
)

// Law is a G.711 companding law.
type Law uint8

// The two G.711 laws.
const (
	ULaw Law = iota // PCMU, RTP payload type 0
	ALaw            // PCMA, RTP payload type 8
)

// Audio framing used everywhere in ivrd.
const (
	SampleRate    = 8000
	FrameSamples  = 160
	FrameDuration = 20 * time.Millisecond
)

// PayloadType is the static RTP payload type of the law (RFC 3551).
func (l Law) PayloadType() uint8 {
	if l == ALaw {
		return 8
	}
	return 0
}

// String is the SDP encoding name.
func (l Law) String() string {
	if l == ALaw {
		return "PCMA"
	}
	return "PCMU"
}

// Silence is the byte that encodes zero.
func (l Law) Silence() byte {
	if l == ALaw {
		return 0xD5
	}
	return 0xFF
}

// Tables built once from zaf/g711's per-sample functions: the per-packet
// path is a table lookup per sample and allocates nothing.
var (
	ulawEncode [1 << 16]byte
	alawEncode [1 << 16]byte
	ulawDecode [256]int16
	alawDecode [256]int16
	ulawToAlaw [256]byte
	alawToUlaw [256]byte
)

func init() {
	for i := 0; i < 1<<16; i++ {
		s := int16(uint16(i))
		ulawEncode[i] = g711.EncodeUlawFrame(s)
		alawEncode[i] = g711.EncodeAlawFrame(s)
	}
	for i := 0; i < 256; i++ {
		ulawDecode[i] = g711.DecodeUlawFrame(uint8(i))
		alawDecode[i] = g711.DecodeAlawFrame(uint8(i))
		ulawToAlaw[i] = g711.Ulaw2AlawFrame(uint8(i))
		alawToUlaw[i] = g711.Alaw2UlawFrame(uint8(i))
	}
}

// EncodeFrame encodes pcm into dst (len(dst) >= len(pcm)).
func EncodeFrame(l Law, dst []byte, pcm []int16) {
	t := &ulawEncode
	if l == ALaw {
		t = &alawEncode
	}
	dst = dst[:len(pcm)]
	for i, s := range pcm {
		dst[i] = t[uint16(s)]
	}
}

// DecodeFrame decodes payload into dst (len(dst) >= len(payload)).
func DecodeFrame(l Law, dst []int16, payload []byte) {
	t := &ulawDecode
	if l == ALaw {
		t = &alawDecode
	}
	dst = dst[:len(payload)]
	for i, b := range payload {
		dst[i] = t[b]
	}
}

// Transcode converts G.711 bytes from one law to the other (or copies).
func Transcode(from, to Law, dst, src []byte) {
	dst = dst[:len(src)]
	switch {
	case from == to:
		copy(dst, src)
	case from == ULaw:
		for i, b := range src {
			dst[i] = ulawToAlaw[b]
		}
	default:
		for i, b := range src {
			dst[i] = alawToUlaw[b]
		}
	}
}
