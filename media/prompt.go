package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Prompt is a recorded announcement, decoded once at start and shared
// read-only by every call: 8 kHz mono PCM and ready-made G.711 frames in
// both laws.
type Prompt struct {
	name   string
	pcm    []int16
	frames [2][][]byte // by Law
}

// NewPrompt builds a prompt from 8 kHz mono PCM. The last frame is padded
// with silence.
func NewPrompt(name string, pcm8k []int16) *Prompt {
	p := &Prompt{name: name, pcm: pcm8k}
	n := (len(pcm8k) + FrameSamples - 1) / FrameSamples
	for _, l := range []Law{ULaw, ALaw} {
		buf := make([]byte, n*FrameSamples)
		for i := range buf {
			buf[i] = l.Silence()
		}
		EncodeFrame(l, buf, pcm8k)
		frames := make([][]byte, n)
		for i := range frames {
			frames[i] = buf[i*FrameSamples : (i+1)*FrameSamples : (i+1)*FrameSamples]
		}
		p.frames[l] = frames
	}
	return p
}

// Name is the prompt's name (its file name without .wav).
func (p *Prompt) Name() string { return p.name }

// Duration is the prompt's length, whole frames.
func (p *Prompt) Duration() time.Duration {
	return time.Duration(len(p.frames[ULaw])) * FrameDuration
}

// Frames returns the prompt's 160-byte frames in law l. Read only.
func (p *Prompt) Frames(l Law) [][]byte { return p.frames[l] }

// PCM returns the prompt's 8 kHz samples. Read only.
func (p *Prompt) PCM() []int16 { return p.pcm }

// LoadPrompt reads a WAV file: integer PCM of 8, 16, 24 or 32 bits or
// 32-bit float, any rate, any number of channels (mixed down to mono and
// resampled to 8 kHz).
func LoadPrompt(name, path string) (*Prompt, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prompt %q: %w", name, err)
	}
	pcm, err := DecodeWAV(data)
	if err != nil {
		return nil, fmt.Errorf("prompt %q: read %s: %w", name, path, err)
	}
	if len(pcm) == 0 {
		return nil, fmt.Errorf("prompt %q: read %s: no audio", name, path)
	}
	return NewPrompt(name, pcm), nil
}

// Errors from DecodeWAV.
var (
	ErrNotWAV         = errors.New("not a RIFF/WAVE file")
	ErrUnsupportedWAV = errors.New("unsupported WAV format")
)

// DecodeWAV parses a WAV file into 8 kHz mono PCM.
func DecodeWAV(data []byte) ([]int16, error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, ErrNotWAV
	}
	var (
		format, channels, bits uint16
		rate                   uint32
		haveFmt                bool
		body                   []byte
	)
	for p := 12; p+8 <= len(data); {
		id := string(data[p : p+4])
		size := int(binary.LittleEndian.Uint32(data[p+4 : p+8]))
		p += 8
		if size < 0 || size > len(data)-p {
			if id == "data" { // a header never updated after a crash: take what is there
				size = len(data) - p
			} else {
				return nil, fmt.Errorf("%w: chunk %q runs past the end", ErrNotWAV, id)
			}
		}
		chunk := data[p : p+size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, fmt.Errorf("%w: fmt chunk too short", ErrNotWAV)
			}
			format = binary.LittleEndian.Uint16(chunk[0:2])
			channels = binary.LittleEndian.Uint16(chunk[2:4])
			rate = binary.LittleEndian.Uint32(chunk[4:8])
			bits = binary.LittleEndian.Uint16(chunk[14:16])
			if format == 0xFFFE && size >= 26 { // WAVE_FORMAT_EXTENSIBLE: the subformat's first two bytes
				format = binary.LittleEndian.Uint16(chunk[24:26])
			}
			haveFmt = true
		case "data":
			body = chunk
		}
		p += size + size&1 // chunks are word aligned
	}
	if !haveFmt {
		return nil, fmt.Errorf("%w: no fmt chunk", ErrNotWAV)
	}
	if body == nil {
		return nil, fmt.Errorf("%w: no data chunk", ErrNotWAV)
	}
	if channels == 0 || rate < 1000 || rate > 384000 {
		return nil, fmt.Errorf("%w: %d channels at %d Hz", ErrUnsupportedWAV, channels, rate)
	}
	var sample func([]byte) float64
	switch {
	case format == 1 && bits == 8:
		sample = func(b []byte) float64 { return (float64(b[0]) - 128) / 128 }
	case format == 1 && bits == 16:
		sample = func(b []byte) float64 { return float64(int16(binary.LittleEndian.Uint16(b))) / 32768 }
	case format == 1 && bits == 24:
		sample = func(b []byte) float64 {
			return float64(int32(uint32(b[0])<<8|uint32(b[1])<<16|uint32(b[2])<<24)>>8) / 8388608
		}
	case format == 1 && bits == 32:
		sample = func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) / 2147483648 }
	case format == 3 && bits == 32:
		sample = func(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) }
	default:
		return nil, fmt.Errorf("%w: format %d with %d bits (want PCM 8/16/24/32-bit or float 32-bit)", ErrUnsupportedWAV, format, bits)
	}
	width := int(bits/8) * int(channels)
	n := len(body) / width
	mono := make([]float64, n)
	for i := 0; i < n; i++ {
		var sum float64
		for c := 0; c < int(channels); c++ {
			off := i*width + c*int(bits/8)
			sum += sample(body[off:])
		}
		mono[i] = sum / float64(channels)
	}
	out := resample(mono, int(rate), SampleRate)
	// Samples were scaled by 1/32768 on the way in, so 32768 on the way out
	// makes 16-bit PCM come back bit for bit.
	pcm := make([]int16, len(out))
	for i, v := range out {
		pcm[i] = int16(max(-32768, min(32767, math.Round(v*32768))))
	}
	return pcm, nil
}

// resample converts between rates with a windowed-sinc (Blackman) low-pass
// interpolator: its cut-off sits at the lower Nyquist frequency, so
// downsampling does not fold high frequencies back into the voice band.
// It runs once per prompt at start, so clarity beats speed here.
func resample(in []float64, from, to int) []float64 {
	if from == to {
		return in
	}
	ratio := float64(to) / float64(from)
	cutoff := math.Min(1, ratio) // relative to the input Nyquist
	const halfTaps = 16
	width := float64(halfTaps) / cutoff
	n := int(float64(len(in)) * ratio)
	out := make([]float64, n)
	for i := range out {
		t := float64(i) / ratio // position in the input
		lo := int(math.Ceil(t - width))
		hi := int(math.Floor(t + width))
		var sum, norm float64
		for j := max(lo, 0); j <= hi && j < len(in); j++ {
			x := (float64(j) - t) * cutoff
			w := 0.42 + 0.5*math.Cos(math.Pi*(float64(j)-t)/width) + 0.08*math.Cos(2*math.Pi*(float64(j)-t)/width)
			k := w * sinc(x)
			sum += in[j] * k
			norm += k
		}
		if norm != 0 {
			out[i] = sum / norm
		}
	}
	return out
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// Library is a set of named prompts.
type Library struct {
	prompts map[string]*Prompt
}

// NewLibrary returns an empty library.
func NewLibrary() *Library { return &Library{prompts: make(map[string]*Prompt)} }

// LoadLibrary loads every *.wav in dir; a prompt's name is its file name
// without .wav. An unreadable prompt stops the load, naming the file.
func LoadLibrary(dir string) (*Library, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read prompts directory: %w", err)
	}
	l := NewLibrary()
	var errs []error
	for _, e := range ents {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".wav") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		p, err := LoadPrompt(name, filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.Add(p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

// Add puts p in the library, replacing one with the same name.
func (l *Library) Add(p *Prompt) { l.prompts[p.name] = p }

// Get returns the named prompt.
func (l *Library) Get(name string) (*Prompt, bool) {
	p, ok := l.prompts[name]
	return p, ok
}

// Names lists the prompts, sorted.
func (l *Library) Names() []string {
	names := make([]string, 0, len(l.prompts))
	for n := range l.prompts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// EncodeWAV writes 8 kHz mono 16-bit PCM as a WAV file (for tests and tools).
func EncodeWAV(pcm []int16) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+2*len(pcm)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(SampleRate), uint32(2 * SampleRate), uint16(2), uint16(16)} {
		_ = binary.Write(&b, le, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(2*len(pcm)))
	_ = binary.Write(&b, le, pcm)
	return b.Bytes()
}
