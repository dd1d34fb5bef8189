package sim

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/zaf/g711"

	"ivrd/media"
)

func TestStampRoundTrip(t *testing.T) {
	for _, s := range []Stamp{
		{Kind: KindCaller},
		{Kind: KindAgent, Stream: 0xFFFF, Seq: 0xFFFFFFFF, Sent: 1<<63 - 1},
		{Kind: KindCaller, Stream: 42, Seq: 123456, Sent: time.Date(2026, 11, 23, 7, 0, 0, 123456789, time.UTC).UnixNano()},
	} {
		p := make([]byte, media.FrameSamples)
		s.Put(p)
		got, ok := ReadStamp(p)
		if !ok || got != s {
			t.Errorf("ReadStamp(Put(%+v)) = %+v, %v", s, got, ok)
		}
		for i, b := range p[:StampBytes] {
			if b == 0x7F {
				t.Errorf("byte %d is 0x7F, which does not survive decoding", i)
			}
		}
	}
}

// TestStampSurvivesPCM: the caller hands PCM to the test caller, which
// encodes it; the agent bot hands over decoded PCM, which callsim encodes
// again. Both ways the stamp's bytes must come back exactly.
func TestStampSurvivesPCM(t *testing.T) {
	now := time.Unix(1_800_000_000, 987654321)
	spk := NewSpeaker(KindCaller, 7, func() time.Time { return now })
	for seq := uint32(0); seq < 3; seq++ {
		pcm := make([]int16, media.FrameSamples)
		spk.Next(pcm)
		wire := make([]byte, media.FrameSamples)
		media.EncodeFrame(media.ULaw, wire, pcm) // what the test caller sends
		got, ok := ReadStamp(wire)
		if want := (Stamp{Kind: KindCaller, Stream: 7, Seq: seq, Sent: now.UnixNano()}); !ok || got != want {
			t.Fatalf("packet %d: %+v %v, want %+v", seq, got, ok, want)
		}
		// The agent bot's decoder (zaf/g711) and our encoder again.
		dec := make([]int16, len(wire))
		for i, b := range wire {
			dec[i] = g711.DecodeUlawFrame(b)
		}
		again := make([]byte, StampBytes)
		media.EncodeFrame(media.ULaw, again, dec[:StampBytes])
		if got2, ok := ReadStamp(again); !ok || got2 != got {
			t.Fatalf("after decode and encode: %+v %v", got2, ok)
		}
	}
}

func TestSpeakerIsLoudTone(t *testing.T) {
	p := make([]byte, media.FrameSamples)
	NewSpeaker(KindAgent, 1, nil).Fill(p)
	pcm := make([]int16, len(p))
	media.DecodeFrame(media.ULaw, pcm, p)
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	if rms := sum / float64(len(pcm)); rms < 300*300 {
		t.Fatalf("RMS² %.0f: the stamped audio should count as sound", rms)
	}
}

func TestReadStampRejects(t *testing.T) {
	good := make([]byte, media.FrameSamples)
	Stamp{Kind: KindAgent, Stream: 3, Seq: 9, Sent: 99}.Put(good)
	cases := map[string]func(p []byte) []byte{
		"short":         func(p []byte) []byte { return p[:StampBytes-1] },
		"no magic":      func(p []byte) []byte { p[0]++; return p },
		"bad nibble":    func(p []byte) []byte { p[10] = 0x7F; return p },
		"bad check":     func(p []byte) []byte { p[StampBytes-1] ^= 1; return p },
		"changed digit": func(p []byte) []byte { p[20] ^= 1; return p },
		"unknown kind":  func(p []byte) []byte { p[4] = nibbleBase + 3; p[StampBytes-1] ^= 1 ^ 2; return p },
		"silence":       func(p []byte) []byte { clear(p); return p },
	}
	for name, mangle := range cases {
		p := mangle(append([]byte(nil), good...))
		if s, ok := ReadStamp(p); ok {
			t.Errorf("%s: read %+v", name, s)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	p := make([]byte, media.FrameSamples)
	for range 100000 {
		for i := range p {
			p[i] = byte(r.UintN(256))
		}
		if s, ok := ReadStamp(p); ok {
			t.Fatalf("random payload read as %+v", s)
		}
	}
}

func FuzzReadStamp(f *testing.F) {
	p := make([]byte, StampBytes)
	Stamp{Kind: KindCaller, Stream: 1, Seq: 2, Sent: 3}.Put(p)
	f.Add(p)
	f.Add([]byte{0x55, 0xAA})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, ok := ReadStamp(b)
		if !ok {
			return
		}
		q := make([]byte, StampBytes)
		s.Put(q)
		if string(q) != string(b[:StampBytes]) {
			t.Fatalf("%x read as %+v, which writes %x", b[:StampBytes], s, q)
		}
	})
}
