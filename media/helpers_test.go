package media

import (
	"bytes"
	"encoding/binary"
	"flag"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// update rewrites the golden files in testdata instead of comparing.
var update = flag.Bool("update", false, "rewrite golden files in testdata")

var loopback = net.IPv4(127, 0, 0, 1)

// discard is a logger for sessions under test.
var discard = slog.New(slog.DiscardHandler)

// checkGoroutines fails the test if it leaves more goroutines running than
// it found. Call it first, so its cleanup runs after every other one.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before the test, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// freePortRange finds pairs RTP/RTCP port pairs that are free on loopback,
// below the ephemeral range so that no :0 socket of another test takes
// them meanwhile.
func freePortRange(t testing.TB, pairs int) (lo, hi int) {
	t.Helper()
	for attempt := 0; attempt < 500; attempt++ {
		base := 20000 + 2*rand.IntN(6000)
		ok := true
		var held []*net.UDPConn
		for p := base; p < base+2*pairs; p++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback, Port: p})
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return base, base + 2*pairs - 1
		}
	}
	t.Fatalf("no %d free port pairs found", pairs)
	return 0, 0
}

// newTestPool returns a pool over a free range of pairs port pairs.
func newTestPool(t testing.TB, pairs int) *PortPool {
	t.Helper()
	lo, hi := freePortRange(t, pairs)
	p, err := NewPortPool(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wavSpec describes a WAV file for makeWAV.
type wavSpec struct {
	format     uint16 // 1 PCM, 3 float, 0xFFFE extensible
	subformat  uint16 // for extensible
	channels   uint16
	rate       uint32
	bits       uint16
	data       []byte
	before     [][2]string // extra chunks (id, body) before fmt
	dataFirst  bool        // put data before fmt
	dataSize   *uint32     // override the data chunk's size field
	fmtPadding int         // extra bytes in the fmt chunk (cbSize and such)
}

// makeWAV builds a WAV file byte by byte, independently of EncodeWAV.
func makeWAV(s wavSpec) []byte {
	le := binary.LittleEndian
	chunk := func(b *bytes.Buffer, id string, body []byte, size uint32) {
		b.WriteString(id)
		_ = binary.Write(b, le, size)
		b.Write(body)
		if len(body)%2 == 1 {
			b.WriteByte(0)
		}
	}
	var fmtBody bytes.Buffer
	blockAlign := s.channels * s.bits / 8
	for _, v := range []any{s.format, s.channels, s.rate, s.rate * uint32(blockAlign), blockAlign, s.bits} {
		_ = binary.Write(&fmtBody, le, v)
	}
	if s.format == 0xFFFE {
		// cbSize, valid bits, channel mask, then the subformat GUID whose
		// first two bytes are the format code.
		_ = binary.Write(&fmtBody, le, uint16(22))
		_ = binary.Write(&fmtBody, le, s.bits)
		_ = binary.Write(&fmtBody, le, uint32(0))
		_ = binary.Write(&fmtBody, le, s.subformat)
		fmtBody.Write([]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71})
	}
	fmtBody.Write(make([]byte, s.fmtPadding))

	var body bytes.Buffer
	body.WriteString("WAVE")
	for _, c := range s.before {
		chunk(&body, c[0], []byte(c[1]), uint32(len(c[1])))
	}
	dataSize := uint32(len(s.data))
	if s.dataSize != nil {
		dataSize = *s.dataSize
	}
	if s.dataFirst {
		chunk(&body, "data", s.data, dataSize)
		chunk(&body, "fmt ", fmtBody.Bytes(), uint32(fmtBody.Len()))
	} else {
		chunk(&body, "fmt ", fmtBody.Bytes(), uint32(fmtBody.Len()))
		chunk(&body, "data", s.data, dataSize)
	}
	var out bytes.Buffer
	out.WriteString("RIFF")
	_ = binary.Write(&out, le, uint32(body.Len()))
	out.Write(body.Bytes())
	return out.Bytes()
}

// sine returns n samples of a sine at freq Hz, sampled at rate, with peak
// amplitude amp (0..1 of full scale) as float64.
func sine(freq float64, rate, n int, amp float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))
	}
	return out
}

// pcm16 turns floats (-1..1) into 16-bit little-endian sample bytes.
func pcm16(x []float64) []byte {
	b := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(int16(math.Round(v*32767))))
	}
	return b
}

// toneAt measures the power of pcm at freq Hz (8 kHz) with a Goertzel filter
// over the whole slice, normalised so that a full-scale sine gives 1.
func toneAt(pcm []int16, freq float64) float64 {
	coef := 2 * math.Cos(2*math.Pi*freq/SampleRate)
	var s1, s2 float64
	for _, v := range pcm {
		s0 := float64(v)/32768 + coef*s1 - s2
		s2, s1 = s1, s0
	}
	p := s1*s1 + s2*s2 - coef*s1*s2
	n := float64(len(pcm))
	return p / (n * n / 4)
}

// rms is the root mean square of pcm, relative to full scale.
func rms(pcm []int16) float64 {
	var sum float64
	for _, v := range pcm {
		f := float64(v) / 32768
		sum += f * f
	}
	return math.Sqrt(sum / float64(max(1, len(pcm))))
}

// zeroCrossings counts sign changes.
func zeroCrossings(pcm []int16) int {
	n := 0
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			n++
		}
	}
	return n
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("%s differs from the golden file at byte %d: got %#02x, want %#02x", name, i, got[i], want[i])
			}
		}
		t.Fatalf("%s: got %d bytes, golden file has %d", name, len(got), len(want))
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startSessions opens n sessions on pool with cfg (its Ports, LocalIP and
// Logger set here), hands each to prepare when it is not nil, and starts
// it; they are closed when tb ends.
func startSessions(tb testing.TB, pool *PortPool, n int, cfg SessionConfig, prepare func(*Session)) []*Session {
	tb.Helper()
	cfg.Ports, cfg.LocalIP, cfg.Logger = pool, loopback, discard
	sessions := make([]*Session, n)
	for i := range sessions {
		s, err := NewSession(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		if prepare != nil {
			prepare(s)
		}
		s.Start()
		sessions[i] = s
	}
	return sessions
}

// countPackets sums one counter (of SessionStats) over sessions.
func countPackets(sessions []*Session, counter func(SessionStats) uint64) uint64 {
	var n uint64
	for _, s := range sessions {
		n += counter(s.Stats())
	}
	return n
}
