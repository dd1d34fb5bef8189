package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func le16(v ...int16) []byte {
	b := make([]byte, 2*len(v))
	for i, s := range v {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	return b
}

func le24(v ...int32) []byte {
	var b []byte
	for _, s := range v {
		b = append(b, byte(s), byte(s>>8), byte(s>>16))
	}
	return b
}

func le32(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, s := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(s))
	}
	return b
}

func f32(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, s := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(s))
	}
	return b
}

func u32p(v uint32) *uint32 { return &v }

// TestDecodeWAVSamples: sample formats at 8 kHz (no resampling), exact
// values.
func TestDecodeWAVSamples(t *testing.T) {
	tests := []struct {
		name string
		spec wavSpec
		want []int16
	}{
		{"16-bit", wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: le16(0, 1, -1, 1000, -1000, 16384, 32767, -32768)},
			[]int16{0, 1, -1, 1000, -1000, 16384, 32767, -32768}},
		{"8-bit unsigned", wavSpec{format: 1, channels: 1, rate: 8000, bits: 8, data: []byte{128, 129, 127, 192, 255, 0}},
			[]int16{0, 256, -256, 16384, 32512, -32768}},
		{"24-bit", wavSpec{format: 1, channels: 1, rate: 8000, bits: 24, data: le24(0, 256, -256, 0x400000, 0x7FFFFF, -0x800000, 128)},
			[]int16{0, 1, -1, 16384, 32767, -32768, 1}},
		{"32-bit", wavSpec{format: 1, channels: 1, rate: 8000, bits: 32, data: le32(0, 1<<16, -(1 << 16), 1<<30, math.MaxInt32, math.MinInt32)},
			[]int16{0, 1, -1, 16384, 32767, -32768}},
		{"float32", wavSpec{format: 3, channels: 1, rate: 8000, bits: 32, data: f32(0, 0.5, -0.5, 1, -1, 1.5, -7, float32(1.0/32768))},
			[]int16{0, 16384, -16384, 32767, -32768, 32767, -32768, 1}},
		{"stereo mixed down", wavSpec{format: 1, channels: 2, rate: 8000, bits: 16, data: le16(16384, 0, 1000, 1000, -32768, 32767, 20000, -20000)},
			[]int16{8192, 1000, -1, 0}}, // (-1 + 32767/32768)/2 rounds away from zero
		{"6 channels", wavSpec{format: 1, channels: 6, rate: 8000, bits: 16, data: le16(600, 600, 600, 600, 600, 600, 6000, 0, 0, 0, 0, 0)},
			[]int16{600, 1000}},
		{"extensible PCM 16-bit", wavSpec{format: 0xFFFE, subformat: 1, channels: 1, rate: 8000, bits: 16, data: le16(5, -5)}, []int16{5, -5}},
		{"extensible float", wavSpec{format: 0xFFFE, subformat: 3, channels: 1, rate: 8000, bits: 32, data: f32(0.25)}, []int16{8192}},
		{"LIST chunk before fmt, odd-sized chunk padded", wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: le16(7),
			before: [][2]string{{"LIST", "INFOISFT\x05\x00\x00\x00ivrd\x00"}, {"junk", "odd"}}}, []int16{7}},
		{"data before fmt", wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: le16(3, 4), dataFirst: true}, []int16{3, 4}},
		{"fmt with cbSize", wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: le16(9), fmtPadding: 2}, []int16{9}},
		{"data size never written (0xFFFFFFFF)", wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: le16(1, 2, 3), dataSize: u32p(0xFFFFFFFF)}, []int16{1, 2, 3}},
		{"data size too large (recording cut short)", wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: le16(1, 2, 3), dataSize: u32p(1000)}, []int16{1, 2, 3}},
		{"trailing half sample dropped", wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: append(le16(11, 12), 0x7f)}, []int16{11, 12}},
		{"empty data", wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: nil}, []int16{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeWAV(makeWAV(tt.spec))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEncodeWAVRoundTrip: what EncodeWAV writes, DecodeWAV reads back
// sample for sample (8 kHz mono 16-bit is the prompts' native format).
func TestEncodeWAVRoundTrip(t *testing.T) {
	pcm := make([]int16, 0, 1<<16)
	for i := -32768; i < 32768; i++ {
		pcm = append(pcm, int16(i))
	}
	b := EncodeWAV(pcm)
	if string(b[:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || len(b) != 44+2*len(pcm) {
		t.Fatalf("EncodeWAV header % x, %d bytes", b[:16], len(b))
	}
	if size := binary.LittleEndian.Uint32(b[4:8]); int(size) != len(b)-8 {
		t.Errorf("RIFF size %d, file %d bytes", size, len(b))
	}
	got, err := DecodeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pcm) {
		t.Fatalf("%d samples back, want %d", len(got), len(pcm))
	}
	for i := range pcm {
		if got[i] != pcm[i] {
			t.Fatalf("sample %d came back as %d", pcm[i], got[i])
		}
	}
}

// TestDecodeWAVResample: other rates come out at 8 kHz, the right length,
// the voice band kept at its level and frequency, and what lies above
// 4 kHz filtered out instead of folded down.
func TestDecodeWAVResample(t *testing.T) {
	tests := []struct {
		rate     int
		channels uint16
		bits     uint16
	}{
		{16000, 1, 16},
		{44100, 1, 16},
		{48000, 2, 16},
		{22050, 1, 8},
		{11025, 1, 16},
		{6000, 1, 16},
		{96000, 1, 24},
		{44100, 2, 32},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dHz-%dch-%dbit", tt.rate, tt.channels, tt.bits), func(t *testing.T) {
			wav := func(freq float64) []byte {
				x := sine(freq, tt.rate, tt.rate, 0.5) // 1 s
				var data []byte
				for _, v := range x {
					for c := uint16(0); c < tt.channels; c++ {
						switch tt.bits {
						case 8:
							data = append(data, byte(math.Round(v*127+128)))
						case 16:
							data = append(data, le16(int16(math.Round(v*32767)))...)
						case 24:
							data = append(data, le24(int32(math.Round(v*8388607)))...)
						case 32:
							data = append(data, le32(int32(math.Round(v*2147483647)))...)
						}
					}
				}
				return makeWAV(wavSpec{format: 1, channels: tt.channels, rate: uint32(tt.rate), bits: tt.bits, data: data})
			}
			pcm, err := DecodeWAV(wav(1000))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(pcm); n < 7999 || n > 8001 {
				t.Errorf("1 s came out as %d samples, want 8000", n)
			}
			// A 1 kHz sine has 2000 zero crossings a second…
			if zc := zeroCrossings(pcm[400 : 8000-400]); zc < 1795 || zc > 1805 {
				t.Errorf("%d zero crossings in 0.9 s, want 1800 (1 kHz)", zc)
			}
			// …its power sits at 1 kHz, none at 2 kHz, and its level is
			// kept (RMS of a sine at 0.5 is 0.354).
			mid := pcm[400 : 8000-400]
			if p1, p2 := toneAt(mid, 1000), toneAt(mid, 2000); p1 < 0.2 || p2 > 0.001 {
				t.Errorf("power %.4f at 1 kHz, %.4f at 2 kHz", p1, p2)
			}
			if r := rms(mid); math.Abs(20*math.Log10(r/0.3536)) > 0.5 {
				t.Errorf("RMS %.4f, want 0.354 (within 0.5 dB)", r)
			}
			// Above the new Nyquist frequency: 6 kHz would fold to 2 kHz.
			if tt.rate >= 16000 {
				pcm, err := DecodeWAV(wav(6000))
				if err != nil {
					t.Fatal(err)
				}
				mid := pcm[400 : len(pcm)-400]
				if r := rms(mid); r > 0.354*0.03 {
					t.Errorf("6 kHz tone came through at RMS %.4f (%.1f dB): aliasing", r, 20*math.Log10(r/0.354))
				}
			}
		})
	}
}

func TestDecodeWAVErrors(t *testing.T) {
	good := wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: le16(1, 2)}
	with := func(f func(*wavSpec)) []byte {
		s := good
		f(&s)
		return makeWAV(s)
	}
	noFmt := []byte("RIFF\x10\x00\x00\x00WAVEdata\x04\x00\x00\x00\x01\x00\x02\x00")
	noData := []byte("RIFF\x1c\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00")
	shortFmt := []byte("RIFF\x14\x00\x00\x00WAVEfmt \x08\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00")
	pastEnd := []byte("RIFF\x14\x00\x00\x00WAVEfmt \xff\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00")
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotWAV},
		{"short", []byte("RIFF"), ErrNotWAV},
		{"text", []byte("this is not a wave file at all"), ErrNotWAV},
		{"AVI", []byte("RIFF\x04\x00\x00\x00AVI "), ErrNotWAV},
		{"RIFX (big-endian)", append([]byte("RIFX"), makeWAV(good)[4:]...), ErrNotWAV},
		{"MP3", []byte("ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00"), ErrNotWAV},
		{"no fmt chunk", noFmt, ErrNotWAV},
		{"no data chunk", noData, ErrNotWAV},
		{"fmt chunk too short", shortFmt, ErrNotWAV},
		{"fmt chunk runs past the end", pastEnd, ErrNotWAV},
		{"zero channels", with(func(s *wavSpec) { s.channels = 0 }), ErrUnsupportedWAV},
		{"rate 500 Hz", with(func(s *wavSpec) { s.rate = 500 }), ErrUnsupportedWAV},
		{"rate 1 MHz", with(func(s *wavSpec) { s.rate = 1000000 }), ErrUnsupportedWAV},
		{"µ-law WAV", with(func(s *wavSpec) { s.format, s.bits, s.data = 7, 8, []byte{0xff, 0xff} }), ErrUnsupportedWAV},
		{"A-law WAV", with(func(s *wavSpec) { s.format, s.bits, s.data = 6, 8, []byte{0xd5, 0xd5} }), ErrUnsupportedWAV},
		{"IMA ADPCM", with(func(s *wavSpec) { s.format, s.bits = 0x11, 4 }), ErrUnsupportedWAV},
		{"12-bit PCM", with(func(s *wavSpec) { s.bits = 12 }), ErrUnsupportedWAV},
		{"0-bit PCM", with(func(s *wavSpec) { s.bits = 0 }), ErrUnsupportedWAV},
		{"64-bit float", with(func(s *wavSpec) { s.format, s.bits = 3, 64 }), ErrUnsupportedWAV},
		{"16-bit float", with(func(s *wavSpec) { s.format, s.bits = 3, 16 }), ErrUnsupportedWAV},
		{"extensible ADPCM", with(func(s *wavSpec) { s.format, s.subformat = 0xFFFE, 2 }), ErrUnsupportedWAV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pcm, err := DecodeWAV(tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if pcm != nil {
				t.Errorf("samples %v along with the error", pcm)
			}
			other := ErrUnsupportedWAV
			if tt.want == ErrUnsupportedWAV {
				other = ErrNotWAV
			}
			if errors.Is(err, other) {
				t.Errorf("error %v is both ErrNotWAV and ErrUnsupportedWAV", err)
			}
		})
	}
}

func TestNewPromptFrames(t *testing.T) {
	tests := []struct {
		samples, frames int
	}{
		{1, 1}, {159, 1}, {160, 1}, {161, 2}, {320, 2}, {8000, 50}, {8001, 51},
	}
	for _, tt := range tests {
		pcm := make([]int16, tt.samples)
		for i := range pcm {
			pcm[i] = int16(1000 + i%3000) // never silence
		}
		p := NewPrompt("x", pcm)
		if p.Name() != "x" || len(p.PCM()) != tt.samples {
			t.Errorf("Name %q, PCM %d samples", p.Name(), len(p.PCM()))
		}
		if got := p.Duration(); got != time.Duration(tt.frames)*20*time.Millisecond {
			t.Errorf("%d samples: Duration %v, want %d frames", tt.samples, got, tt.frames)
		}
		for _, c := range laws {
			frames := p.Frames(c.law)
			if len(frames) != tt.frames {
				t.Fatalf("%d samples, %v: %d frames, want %d", tt.samples, c.law, len(frames), tt.frames)
			}
			var all []byte
			for i, f := range frames {
				if len(f) != FrameSamples || cap(f) != FrameSamples {
					t.Fatalf("%v frame %d: len %d cap %d, want 160 and 160 (an append must not run into the next frame)", c.law, i, len(f), cap(f))
				}
				all = append(all, f...)
			}
			want := make([]byte, tt.samples)
			EncodeFrame(c.law, want, pcm)
			if string(all[:tt.samples]) != string(want) {
				t.Errorf("%d samples, %v: frames do not hold the encoded audio", tt.samples, c.law)
			}
			for i, b := range all[tt.samples:] {
				if b != c.silence {
					t.Fatalf("%d samples, %v: padding byte %d is %#02x, want silence %#02x", tt.samples, c.law, i, b, c.silence)
				}
			}
		}
	}
	empty := NewPrompt("empty", nil)
	if len(empty.Frames(ULaw)) != 0 || empty.Duration() != 0 {
		t.Error("an empty prompt has frames")
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPrompt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "hello.wav")
	writeFile(t, good, EncodeWAV(GenerateDTMF('5', 100*time.Millisecond, 0.3)))
	p, err := LoadPrompt("hello", good)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "hello" || len(p.Frames(ALaw)) != 5 {
		t.Errorf("prompt %q with %d frames", p.Name(), len(p.Frames(ALaw)))
	}

	tests := []struct {
		name     string
		file     string
		data     []byte // nil: do not create
		contains []string
		is       error
	}{
		{"missing", "missing.wav", nil, []string{"missing.wav", `"missing"`}, os.ErrNotExist},
		{"not a WAV", "notes.wav", []byte("hello"), []string{"notes.wav", `"notes"`}, ErrNotWAV},
		{"unsupported", "ulaw.wav", makeWAV(wavSpec{format: 7, channels: 1, rate: 8000, bits: 8, data: []byte{1}}), []string{"ulaw.wav"}, ErrUnsupportedWAV},
		{"no audio", "silent.wav", EncodeWAV(nil), []string{"silent.wav", "no audio"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			if tt.data != nil {
				writeFile(t, path, tt.data)
			}
			name := strings.TrimSuffix(tt.file, ".wav")
			p, err := LoadPrompt(name, path)
			if err == nil || p != nil {
				t.Fatalf("LoadPrompt = %v, %v; want an error", p, err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestLoadLibrary(t *testing.T) {
	dir := t.TempDir()
	tone := EncodeWAV(GenerateDTMF('1', 50*time.Millisecond, 0.3))
	writeFile(t, filepath.Join(dir, "welcome.wav"), tone)
	writeFile(t, filepath.Join(dir, "Goodbye.WAV"), tone)
	writeFile(t, filepath.Join(dir, "menu.wav"), makeWAV(wavSpec{format: 1, channels: 1, rate: 44100, bits: 16, data: pcm16(sine(1000, 44100, 4410, 0.3))}))
	writeFile(t, filepath.Join(dir, "README.txt"), []byte("not a prompt"))
	writeFile(t, filepath.Join(dir, "notes.wav.bak"), []byte("not a prompt"))
	if err := os.Mkdir(filepath.Join(dir, "old.wav"), 0o755); err != nil { // a directory named like a prompt
		t.Fatal(err)
	}

	lib, err := LoadLibrary(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := lib.Names(), []string{"Goodbye", "menu", "welcome"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	p, ok := lib.Get("welcome")
	if !ok || p.Name() != "welcome" || len(p.Frames(ULaw)) != 3 {
		t.Errorf("Get(welcome) = %v, %v", p, ok)
	}
	if _, ok := lib.Get("README"); ok {
		t.Error("README.txt became a prompt")
	}
	lib.Add(NewPrompt("welcome", make([]int16, 10)))
	if p, _ := lib.Get("welcome"); len(p.PCM()) != 10 {
		t.Error("Add did not replace the prompt of the same name")
	}

	// One broken file stops the load and the error names it (and every
	// other broken file, so they can all be fixed at once).
	writeFile(t, filepath.Join(dir, "broken.wav"), []byte("RIFF\x00\x00\x00\x00WAVEjunk"))
	writeFile(t, filepath.Join(dir, "mulaw.wav"), makeWAV(wavSpec{format: 7, channels: 1, rate: 8000, bits: 8, data: []byte{1}}))
	lib, err = LoadLibrary(dir)
	if err == nil || lib != nil {
		t.Fatalf("LoadLibrary with a broken WAV = %v, %v", lib, err)
	}
	for _, s := range []string{"broken.wav", "mulaw.wav"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	if !errors.Is(err, ErrNotWAV) || !errors.Is(err, ErrUnsupportedWAV) {
		t.Errorf("error %v does not wrap both causes", err)
	}

	if _, err := LoadLibrary(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("LoadLibrary of a missing directory: %v", err)
	}
	emptyLib, err := LoadLibrary(t.TempDir())
	if err != nil || len(emptyLib.Names()) != 0 {
		t.Errorf("empty directory: %v, %v", emptyLib, err)
	}
}

// FuzzDecodeWAV: any bytes give samples or one of the two errors, never a
// panic, and never more samples than the file can hold.
func FuzzDecodeWAV(f *testing.F) {
	f.Add(EncodeWAV([]int16{0, 1, -1, 32767, -32768}))
	f.Add(makeWAV(wavSpec{format: 1, channels: 2, rate: 44100, bits: 24, data: le24(1, 2, 3, 4, 5, 6)}))
	f.Add(makeWAV(wavSpec{format: 3, channels: 1, rate: 16000, bits: 32, data: f32(0.5, float32(math.NaN()), float32(math.Inf(1)))}))
	f.Add(makeWAV(wavSpec{format: 0xFFFE, subformat: 1, channels: 1, rate: 1000, bits: 8, data: []byte{0, 255}}))
	f.Add(makeWAV(wavSpec{format: 1, channels: 1, rate: 8000, bits: 16, data: le16(1), dataSize: u32p(0xFFFFFFFF)}))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \xff\xff\xff\xff"))
	f.Add([]byte("RIFF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pcm, err := DecodeWAV(data)
		if err != nil {
			if !errors.Is(err, ErrNotWAV) && !errors.Is(err, ErrUnsupportedWAV) {
				t.Fatalf("error %v is neither ErrNotWAV nor ErrUnsupportedWAV", err)
			}
			if pcm != nil {
				t.Fatal("samples along with an error")
			}
			return
		}
		// The most samples a byte can become: 8-bit mono at 1 kHz,
		// resampled up 8 times.
		if len(pcm) > 8*len(data) {
			t.Fatalf("%d samples from %d bytes", len(pcm), len(data))
		}
	})
}
