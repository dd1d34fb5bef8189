package media

import (
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

const allKeys = "123A456B789C*0#D"

// dualTone is a row and a column tone with their own amplitudes (0..1),
// optionally with Gaussian noise of the given RMS, at 8 kHz.
func dualTone(fRow, fCol, aRow, aCol float64, d time.Duration, noise float64, rng *rand.Rand) []int16 {
	out := make([]int16, int(d.Seconds()*SampleRate))
	for i := range out {
		t := float64(i) / SampleRate
		v := aRow*math.Sin(2*math.Pi*fRow*t) + aCol*math.Sin(2*math.Pi*fCol*t)
		if rng != nil {
			v += noise * rng.NormFloat64()
		}
		out[i] = int16(max(-32768, min(32767, math.Round(v*32767))))
	}
	return out
}

func silence(d time.Duration) []int16 { return make([]int16, int(d.Seconds()*SampleRate)) }

func concat(parts ...[]int16) []int16 {
	var out []int16
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// through passes pcm through a G.711 encode and decode, as audio from the
// network arrives.
func through(l Law, pcm []int16) []int16 {
	enc := make([]byte, len(pcm))
	out := make([]int16, len(pcm))
	EncodeFrame(l, enc, pcm)
	DecodeFrame(l, out, enc)
	return out
}

// detect feeds pcm in 20 ms frames, as the receiver does, and returns the
// keys found.
func detect(pcm []int16) string {
	d := NewToneDetector()
	var keys strings.Builder
	for len(pcm) > 0 {
		n := min(len(pcm), FrameSamples)
		if k, ok := d.Feed(pcm[:n]); ok {
			keys.WriteByte(k)
		}
		pcm = pcm[n:]
	}
	return keys.String()
}

func keyFreqs(t *testing.T, key byte) (row, col float64) {
	t.Helper()
	for r := range 4 {
		for c := range 4 {
			if dtmfKeys[r][c] == key {
				return dtmfRows[r], dtmfCols[c]
			}
		}
	}
	t.Fatalf("no key %q", key)
	return 0, 0
}

func TestGenerateDTMF(t *testing.T) {
	for _, k := range []byte(allKeys) {
		pcm := GenerateDTMF(k, 100*time.Millisecond, 0.3)
		if len(pcm) != 800 {
			t.Fatalf("%q: %d samples, want 800", k, len(pcm))
		}
		row, col := keyFreqs(t, k)
		// Both tones are there at the asked amplitude (power 0.09 of full
		// scale), and the other frequencies are not.
		for _, f := range append(dtmfRows[:], dtmfCols[:]...) {
			p := toneAt(pcm, f)
			if f == row || f == col {
				if p < 0.08 || p > 0.1 {
					t.Errorf("%q: power at %v Hz is %.3f, want 0.09", k, f, p)
				}
			} else if p > 0.01 {
				t.Errorf("%q: power %.3f at %v Hz, which is not its tone", k, p, f)
			}
		}
	}
	lower := GenerateDTMF('b', 40*time.Millisecond, 0.3)
	upper := GenerateDTMF('B', 40*time.Millisecond, 0.3)
	if len(lower) == 0 || string(int16Bytes(lower)) != string(int16Bytes(upper)) {
		t.Error("'b' and 'B' differ")
	}
	if GenerateDTMF('x', time.Second, 0.3) != nil || GenerateDTMF('E', time.Second, 0.3) != nil {
		t.Error("an unknown key gave tones")
	}
	// Two full-scale tones clip instead of wrapping around.
	loud := GenerateDTMF('1', 20*time.Millisecond, 1)
	clipped := 0
	for i, got := range loud {
		tt := float64(i) / SampleRate
		v := 32767 * (math.Sin(2*math.Pi*697*tt) + math.Sin(2*math.Pi*1209*tt))
		if want := int16(max(-32768, min(32767, v))); got != want {
			t.Fatalf("sample %d = %d, want %d (from %.0f)", i, got, want, v)
		}
		if v > 32767 || v < -32768 {
			clipped++
		}
	}
	if clipped == 0 {
		t.Error("two full-scale tones never clipped: the test proves nothing")
	}
}

func int16Bytes(p []int16) []byte {
	b := make([]byte, 0, 2*len(p))
	for _, v := range p {
		b = append(b, byte(v), byte(v>>8))
	}
	return b
}

// TestToneDetectorEveryKey: every key, at loud, normal and quiet levels,
// straight and through either law, is one digit.
func TestToneDetectorEveryKey(t *testing.T) {
	paths := []struct {
		name string
		f    func([]int16) []int16
	}{
		{"linear", func(p []int16) []int16 { return p }},
		{"ulaw", func(p []int16) []int16 { return through(ULaw, p) }},
		{"alaw", func(p []int16) []int16 { return through(ALaw, p) }},
	}
	levels := []float64{0.45, 0.1, 0.02} // per tone: -7, -20, -34 dBFS
	for _, path := range paths {
		for _, amp := range levels {
			for _, k := range []byte(allKeys) {
				pcm := path.f(concat(silence(40*time.Millisecond), GenerateDTMF(k, 100*time.Millisecond, amp), silence(200*time.Millisecond)))
				if got := detect(pcm); got != string(k) {
					t.Errorf("%s, amplitude %v: key %q detected as %q", path.name, amp, k, got)
				}
			}
		}
	}
}

func TestToneDetectorTiming(t *testing.T) {
	tone := func(k byte, d time.Duration) []int16 { return GenerateDTMF(k, d, 0.2) }
	gap := silence
	tests := []struct {
		name string
		pcm  []int16
		want string
	}{
		{"held 1 s is one digit", concat(gap(20*time.Millisecond), tone('5', time.Second), gap(100*time.Millisecond)), "5"},
		{"held 5 s is one digit", concat(tone('#', 5*time.Second), gap(100*time.Millisecond)), "#"},
		{"20 ms is too short", concat(gap(100*time.Millisecond), tone('5', 20*time.Millisecond), gap(100*time.Millisecond)), ""},
		{"two presses 60 ms apart", concat(tone('1', 100*time.Millisecond), gap(60*time.Millisecond), tone('1', 100*time.Millisecond), gap(60*time.Millisecond)), "11"},
		{"three keys, 70 ms on and off", concat(tone('1', 70*time.Millisecond), gap(70*time.Millisecond), tone('2', 70*time.Millisecond), gap(70*time.Millisecond), tone('3', 70*time.Millisecond), gap(70*time.Millisecond)), "123"},
		{"one key straight into another", concat(tone('4', 200*time.Millisecond), tone('6', 200*time.Millisecond), gap(60*time.Millisecond)), "46"},
		{"a 10 ms dropout in a held key does not repeat it", concat(tone('7', 300*time.Millisecond), gap(10*time.Millisecond), tone('7', 300*time.Millisecond)), "7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := detect(tt.pcm); got != tt.want {
				t.Errorf("detected %q, want %q", got, tt.want)
			}
		})
	}
}

// TestToneDetectorAlignment: what the detector guarantees wherever the
// tone falls against its 205-sample blocks: 60 ms is always a digit, 30 ms
// never. (ITU-T Q.24 asks for 40 ms to be accepted: a 40 ms tone is found
// at about a quarter of the alignments, which phones sending 70 ms and more
// do not notice.)
func TestToneDetectorAlignment(t *testing.T) {
	for off := 0; off < goertzelBlock; off += 7 {
		lead := make([]int16, 800+off)
		if got := detect(concat(lead, GenerateDTMF('9', 60*time.Millisecond, 0.2), silence(100*time.Millisecond))); got != "9" {
			t.Errorf("60 ms tone at offset %d: %q", off, got)
		}
		if got := detect(concat(lead, GenerateDTMF('9', 30*time.Millisecond, 0.2), silence(100*time.Millisecond))); got != "" {
			t.Errorf("30 ms tone at offset %d: %q", off, got)
		}
	}
}

func TestToneDetectorHeldFor(t *testing.T) {
	d := NewToneDetector()
	pcm := GenerateDTMF('0', time.Second, 0.2)
	for i := 0; i < len(pcm); i += FrameSamples {
		d.Feed(pcm[i : i+FrameSamples])
	}
	if h := d.HeldFor(); h < 950*time.Millisecond || h > time.Second {
		t.Errorf("HeldFor after 1 s = %v", h)
	}
	d.Feed(make([]int16, 2*goertzelBlock))
	if h := d.HeldFor(); h != 0 {
		t.Errorf("HeldFor after release = %v", h)
	}
}

// TestToneDetectorRejects: what must not be a digit.
func TestToneDetectorRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dur := 500 * time.Millisecond
	single := func(f, a float64) []int16 { return dualTone(f, f, a/2, a/2, dur, 0, nil) }
	tests := []struct {
		name string
		pcm  []int16
	}{
		{"440 Hz", single(440, 0.4)},
		{"1000 Hz test tone", single(1000, 0.4)},
		{"2100 Hz fax answer tone", single(2100, 0.4)},
		{"row tone alone (697 Hz)", single(697, 0.4)},
		{"row tone alone (941 Hz)", single(941, 0.4)},
		{"column tone alone (1209 Hz)", single(1209, 0.4)},
		{"column tone alone (1633 Hz)", single(1633, 0.4)},
		{"two row tones", dualTone(697, 852, 0.2, 0.2, dur, 0, nil)},
		{"two column tones", dualTone(1209, 1477, 0.2, 0.2, dur, 0, nil)},
		{"US dial tone 350+440", dualTone(350, 440, 0.2, 0.2, dur, 0, nil)},
		{"US ringback 440+480", dualTone(440, 480, 0.2, 0.2, dur, 0, nil)},
		{"US busy 480+620", dualTone(480, 620, 0.2, 0.2, dur, 0, nil)},
		{"too quiet (-46 dBFS per tone)", dualTone(770, 1336, 0.005, 0.005, dur, 0, nil)},
		{"column 10 dB over row (normal twist over 8 dB)", dualTone(770, 1336, 0.05, 0.05*math.Pow(10, 10.0/20), dur, 0, nil)},
		{"row 6 dB over column (reverse twist over 4 dB)", dualTone(770, 1336, 0.1*math.Pow(10, 6.0/20), 0.1, dur, 0, nil)},
		{"frequencies 3.5% high", dualTone(770*1.035, 1336*1.035, 0.2, 0.2, dur, 0, nil)},
		{"frequencies 3.5% low", dualTone(770*0.965, 1336*0.965, 0.2, 0.2, dur, 0, nil)},
		{"white noise, loud", dualTone(0, 0, 0, 0, 2*time.Second, 0.3, rng)},
		{"white noise, quiet", dualTone(0, 0, 0, 0, 2*time.Second, 0.01, rng)},
		{"DTMF buried in loud noise (-10 dB SNR)", dualTone(770, 1336, 0.05, 0.05, dur, 0.05*math.Sqrt2*math.Pow(10, 10.0/20), rng)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, l := range []Law{ULaw, ALaw} {
				if got := detect(through(l, tt.pcm)); got != "" {
					t.Errorf("%v: detected %q", l, got)
				}
			}
			if got := detect(tt.pcm); got != "" {
				t.Errorf("linear: detected %q", got)
			}
		})
	}
}

// TestToneDetectorAccepts: the tolerances the detector does have.
func TestToneDetectorAccepts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	dur := 100 * time.Millisecond
	tests := []struct {
		name   string
		fScale float64
		aRow   float64
		aCol   float64
		noise  float64
	}{
		{"exact", 1, 0.2, 0.2, 0},
		{"column 6 dB over row", 1, 0.05, 0.05 * math.Pow(10, 6.0/20), 0},
		{"row 3 dB over column", 1, 0.1 * math.Pow(10, 3.0/20), 0.1, 0},
		{"frequencies 1% high", 1.01, 0.2, 0.2, 0},
		{"frequencies 1% low", 0.99, 0.2, 0.2, 0},
		{"noise at 10 dB SNR", 1, 0.2, 0.2, 0.2 * math.Pow(10, -10.0/20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []byte(allKeys) {
				row, col := keyFreqs(t, k)
				pcm := concat(silence(40*time.Millisecond), dualTone(row*tt.fScale, col*tt.fScale, tt.aRow, tt.aCol, dur, tt.noise, rng), silence(100*time.Millisecond))
				if got := detect(through(ULaw, pcm)); got != string(k) {
					t.Errorf("key %q detected as %q", k, got)
				}
			}
		})
	}
}

// TestToneDetectorTalkOff: recorded speech (espeak-ng saying "press 1 …
// press 2 …") and hold music must give no digit in either law.
func TestToneDetectorTalkOff(t *testing.T) {
	for _, name := range []string{"testdata/speech_main_menu.wav", "testdata/music_hold.wav"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		pcm, err := DecodeWAV(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(pcm) < 5*SampleRate || rms(pcm) < 0.01 {
			t.Fatalf("%s: %d samples at RMS %.3f: not the recording expected", name, len(pcm), rms(pcm))
		}
		for _, l := range []Law{ULaw, ALaw} {
			if got := detect(through(l, pcm)); got != "" {
				t.Errorf("%s through %v: detected %q", name, l, got)
			}
		}
		// And a key pressed while the prompt plays is still found (the
		// caller barges in over the echo of the prompt at -12 dB).
		mixed := append([]int16(nil), pcm[:2*SampleRate]...)
		key := GenerateDTMF('2', 150*time.Millisecond, 0.2)
		for i, v := range key {
			j := SampleRate/2 + i
			mixed[j] = int16(max(-32768, min(32767, int(mixed[j])/4+int(v))))
		}
		if got := detect(through(ULaw, mixed)); got != "2" {
			t.Errorf("%s with a key over it: detected %q, want \"2\"", name, got)
		}
	}
}

// FuzzToneDetector feeds arbitrary PCM in arbitrary chunk sizes: no panic,
// at most one key per call, only real keys, and no more keys than the
// audio could hold (one per 80 ms: two blocks on, one off).
func FuzzToneDetector(f *testing.F) {
	f.Add(uint8(160), int16Bytes(GenerateDTMF('1', 100*time.Millisecond, 0.3)))
	f.Add(uint8(1), int16Bytes(GenerateDTMF('D', 60*time.Millisecond, 1)))
	f.Add(uint8(205), int16Bytes(concat(GenerateDTMF('5', 60*time.Millisecond, 0.2), silence(30*time.Millisecond), GenerateDTMF('6', 60*time.Millisecond, 0.2))))
	f.Add(uint8(0), []byte{0xff, 0x7f, 0x00, 0x80})
	f.Fuzz(func(t *testing.T, chunk uint8, raw []byte) {
		pcm := make([]int16, len(raw)/2)
		for i := range pcm {
			pcm[i] = int16(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
		}
		d := NewToneDetector()
		size := max(1, int(chunk))
		keys := 0
		for p := pcm; len(p) > 0; {
			n := min(len(p), size)
			k, ok := d.Feed(p[:n])
			p = p[n:]
			if !ok {
				if k != 0 {
					t.Fatalf("no key but k = %q", k)
				}
				continue
			}
			keys++
			if !strings.ContainsRune(allKeys, rune(k)) {
				t.Fatalf("key %q", k)
			}
		}
		if limit := len(pcm)/(2*goertzelBlock) + 1; keys > limit {
			t.Fatalf("%d keys in %d samples", keys, len(pcm))
		}
		if d.HeldFor() < 0 {
			t.Fatal("negative HeldFor")
		}
	})
}
