package media

import (
	"testing"

	"github.com/zaf/g711"
)

// The reference G.711 codec of ITU-T G.191 (the Software Tool Library's
// g711.c), written out again here as an oracle that shares no code with
// zaf/g711 or with our tables.

func stlULawCompress(x int16) byte {
	var absno int
	if x < 0 {
		absno = int(^x)>>2 + 33
	} else {
		absno = int(x)>>2 + 33
	}
	if absno > 0x1FFF {
		absno = 0x1FFF
	}
	segno := 1
	for i := absno >> 6; i != 0; i >>= 1 {
		segno++
	}
	high := 0x8 - segno
	low := 0xF - (absno>>segno)&0xF
	out := byte(high<<4 | low)
	if x >= 0 {
		out |= 0x80
	}
	return out
}

func stlULawExpand(b byte) int16 {
	sign := 1
	if b < 0x80 {
		sign = -1
	}
	m := int(^b)
	exponent := (m >> 4) & 0x7
	segment := exponent + 1
	m &= 0xF
	step := 4 << segment
	return int16(sign * ((0x80 << exponent) + step*m + step/2 - 4*33))
}

func stlALawCompress(x int16) byte {
	var ix int
	if x < 0 {
		ix = int(^x) >> 4
	} else {
		ix = int(x) >> 4
	}
	if ix > 15 {
		iexp := 1
		for ix > 16+15 {
			ix >>= 1
			iexp++
		}
		ix -= 16
		ix += iexp << 4
	}
	if x >= 0 {
		ix |= 0x80
	}
	return byte(ix ^ 0x55)
}

func stlALawExpand(b byte) int16 {
	ix := int(b^0x55) & 0x7F
	iexp := ix >> 4
	mant := ix & 0xF
	if iexp > 0 {
		mant += 16
	}
	mant = mant<<4 + 8
	if iexp > 1 {
		mant <<= iexp - 1
	}
	if b > 127 {
		return int16(mant)
	}
	return int16(-mant)
}

var laws = []struct {
	law      Law
	name     string
	pt       uint8
	silence  byte
	encode   func(int16) uint8 // zaf/g711 per-sample
	decode   func(uint8) int16
	stlEnc   func(int16) byte
	stlDec   func(byte) int16
	maxValue int16 // largest decoded magnitude
}{
	{ULaw, "PCMU", 0, 0xFF, g711.EncodeUlawFrame, g711.DecodeUlawFrame, stlULawCompress, stlULawExpand, 32124},
	{ALaw, "PCMA", 8, 0xD5, g711.EncodeAlawFrame, g711.DecodeAlawFrame, stlALawCompress, stlALawExpand, 32256},
}

func TestLawIdentity(t *testing.T) {
	for _, c := range laws {
		t.Run(c.name, func(t *testing.T) {
			if got := c.law.String(); got != c.name {
				t.Errorf("String() = %q, want %q", got, c.name)
			}
			if got := c.law.PayloadType(); got != c.pt {
				t.Errorf("PayloadType() = %d, want %d", got, c.pt)
			}
			if got := c.law.Silence(); got != c.silence {
				t.Errorf("Silence() = %#02x, want %#02x", got, c.silence)
			}
			// Silence must be what a zero sample encodes to and must
			// decode to (almost) nothing: A-law has no zero, ±8 is its
			// smallest step.
			var enc [1]byte
			EncodeFrame(c.law, enc[:], []int16{0})
			if enc[0] != c.silence {
				t.Errorf("EncodeFrame(0) = %#02x, want the silence byte %#02x", enc[0], c.silence)
			}
			var dec [1]int16
			DecodeFrame(c.law, dec[:], []byte{c.silence})
			if dec[0] < -8 || dec[0] > 8 {
				t.Errorf("the silence byte decodes to %d", dec[0])
			}
		})
	}
}

// TestEncodeMatchesReference checks every 16-bit sample against zaf/g711's
// per-sample encoder and against the ITU-T G.191 reference algorithm.
func TestEncodeMatchesReference(t *testing.T) {
	for _, c := range laws {
		t.Run(c.name, func(t *testing.T) {
			pcm := make([]int16, 1<<16)
			for i := range pcm {
				pcm[i] = int16(uint16(i))
			}
			out := make([]byte, len(pcm))
			EncodeFrame(c.law, out, pcm)
			bad := 0
			for i, s := range pcm {
				if want := c.encode(s); out[i] != want {
					t.Errorf("EncodeFrame(%d) = %#02x, zaf/g711 says %#02x", s, out[i], want)
					bad++
				}
				if want := c.stlEnc(s); out[i] != want {
					t.Errorf("EncodeFrame(%d) = %#02x, G.191 reference says %#02x", s, out[i], want)
					bad++
				}
				if bad > 10 {
					t.Fatal("too many mismatches")
				}
			}
		})
	}
}

func TestDecodeMatchesReference(t *testing.T) {
	for _, c := range laws {
		t.Run(c.name, func(t *testing.T) {
			in := make([]byte, 256)
			for i := range in {
				in[i] = byte(i)
			}
			out := make([]int16, 256)
			DecodeFrame(c.law, out, in)
			for i, b := range in {
				if want := c.decode(b); out[i] != want {
					t.Errorf("DecodeFrame(%#02x) = %d, zaf/g711 says %d", b, out[i], want)
				}
				if want := c.stlDec(b); out[i] != want {
					t.Errorf("DecodeFrame(%#02x) = %d, G.191 reference says %d", b, out[i], want)
				}
			}
		})
	}
}

// Known values from the G.711 tables, so that the test does not only
// compare implementations with each other.
func TestG711KnownValues(t *testing.T) {
	tests := []struct {
		law  Law
		pcm  int16
		code byte
		back int16 // what code decodes to
	}{
		{ULaw, 0, 0xFF, 0},
		{ULaw, 32767, 0x80, 32124},
		{ULaw, -32768, 0x00, -32124},
		{ULaw, 8, 0xFE, 8},
		{ULaw, 1000, 0xCE, 988},
		{ULaw, -1000, 0x4E, -988},
		{ALaw, 0, 0xD5, 8},
		{ALaw, -1, 0x55, -8},
		{ALaw, 32767, 0xAA, 32256},
		{ALaw, -32768, 0x2A, -32256},
		{ALaw, 1000, 0xFA, 1008},
		{ALaw, -1000, 0x7A, -1008},
	}
	for _, tt := range tests {
		var enc [1]byte
		EncodeFrame(tt.law, enc[:], []int16{tt.pcm})
		if enc[0] != tt.code {
			t.Errorf("%v: encode %d = %#02x, want %#02x", tt.law, tt.pcm, enc[0], tt.code)
		}
		var dec [1]int16
		DecodeFrame(tt.law, dec[:], []byte{tt.code})
		if dec[0] != tt.back {
			t.Errorf("%v: decode %#02x = %d, want %d", tt.law, tt.code, dec[0], tt.back)
		}
	}
}

// TestRoundTrip: decode∘encode stays within half a quantisation step of
// the input (at most 1/16 of its magnitude, at least 16), is monotonic, and
// every code word survives encode∘decode.
func TestRoundTrip(t *testing.T) {
	for _, c := range laws {
		t.Run(c.name, func(t *testing.T) {
			pcm := make([]int16, 1<<16)
			for i := range pcm {
				pcm[i] = int16(i - 32768) // ascending
			}
			enc := make([]byte, len(pcm))
			dec := make([]int16, len(pcm))
			EncodeFrame(c.law, enc, pcm)
			DecodeFrame(c.law, dec, enc)
			for i, x := range pcm {
				y := dec[i]
				err := int(x) - int(y)
				bound := max(16, abs(int(x))/16)
				if abs(err) > bound {
					t.Fatalf("%d → %#02x → %d: error %d over %d", x, enc[i], y, err, bound)
				}
				if i > 0 && y < dec[i-1] {
					t.Fatalf("not monotonic: %d → %d but %d → %d", pcm[i-1], dec[i-1], x, y)
				}
				if y > c.maxValue || y < -c.maxValue {
					t.Fatalf("%d decodes beyond the law's range: %d", x, y)
				}
			}
			for b := 0; b < 256; b++ {
				var d [1]int16
				var e [1]byte
				DecodeFrame(c.law, d[:], []byte{byte(b)})
				EncodeFrame(c.law, e[:], d[:])
				want := byte(b)
				if c.law == ULaw && b == 0x7F { // µ-law's negative zero encodes back as +0
					want = 0xFF
				}
				if e[0] != want {
					t.Errorf("code %#02x → %d → %#02x", b, d[0], e[0])
				}
			}
		})
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestFrameBounds: the frame functions write len(input) entries and
// nothing beyond, and accept empty input.
func TestFrameBounds(t *testing.T) {
	for _, c := range laws {
		dst := []byte{1, 2, 3, 4, 5}
		EncodeFrame(c.law, dst, []int16{0, 0})
		if dst[0] != c.silence || dst[1] != c.silence || dst[2] != 3 || dst[4] != 5 {
			t.Errorf("%v: EncodeFrame wrote %v", c.law, dst)
		}
		pcm := []int16{7, 7, 7}
		DecodeFrame(c.law, pcm, []byte{c.silence})
		if pcm[1] != 7 || pcm[2] != 7 {
			t.Errorf("%v: DecodeFrame wrote %v", c.law, pcm)
		}
		EncodeFrame(c.law, nil, nil)
		DecodeFrame(c.law, nil, nil)
		Transcode(c.law, c.law, nil, nil)
	}
}

func TestTranscode(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	tests := []struct {
		from, to Law
		ref      func(uint8) uint8
	}{
		{ULaw, ALaw, g711.Ulaw2AlawFrame},
		{ALaw, ULaw, g711.Alaw2UlawFrame},
		{ULaw, ULaw, func(b uint8) uint8 { return b }},
		{ALaw, ALaw, func(b uint8) uint8 { return b }},
	}
	for _, tt := range tests {
		t.Run(tt.from.String()+"-"+tt.to.String(), func(t *testing.T) {
			out := make([]byte, 256)
			Transcode(tt.from, tt.to, out, all)
			for i, b := range all {
				if want := tt.ref(b); out[i] != want {
					t.Errorf("%#02x → %#02x, zaf/g711 says %#02x", b, out[i], want)
				}
				// The sound survives: decoding either side gives nearly
				// the same sample (the laws' steps differ by up to 2x).
				var a, z [1]int16
				DecodeFrame(tt.from, a[:], []byte{b})
				DecodeFrame(tt.to, z[:], out[i:i+1])
				if d := abs(int(a[0]) - int(z[0])); d > max(16, abs(int(a[0]))/16) {
					t.Errorf("%#02x: %d before, %d after transcoding", b, a[0], z[0])
				}
			}
			// In place works too.
			buf := append([]byte(nil), all...)
			Transcode(tt.from, tt.to, buf, buf)
			if string(buf) != string(out) {
				t.Error("transcoding in place differs")
			}
			// Silence stays silence: A-law has no zero, its silence is +8
			// and becomes µ-law's +8, not µ-law's zero.
			var s [1]byte
			var z [1]int16
			Transcode(tt.from, tt.to, s[:], []byte{tt.from.Silence()})
			DecodeFrame(tt.to, z[:], s[:])
			if z[0] < -8 || z[0] > 8 {
				t.Errorf("silence %#02x became %#02x (%d)", tt.from.Silence(), s[0], z[0])
			}
		})
	}
}

// TestG711Golden pins the encoders bit for bit on a sweep of the whole
// 16-bit range and the transcoding tables (regenerate with -update).
func TestG711Golden(t *testing.T) {
	sweep := make([]int16, 0, 1<<13)
	for i := -32768; i < 32768; i += 8 {
		sweep = append(sweep, int16(i))
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, c := range laws {
		out := make([]byte, len(sweep))
		EncodeFrame(c.law, out, sweep)
		golden(t, "sweep."+map[Law]string{ULaw: "ulaw", ALaw: "alaw"}[c.law], out)
	}
	u2a := make([]byte, 256)
	a2u := make([]byte, 256)
	Transcode(ULaw, ALaw, u2a, all)
	Transcode(ALaw, ULaw, a2u, all)
	golden(t, "ulaw_to_alaw.bin", u2a)
	golden(t, "alaw_to_ulaw.bin", a2u)
}
