package recordings

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"

	"ivrd/media"
)

var loopback = net.IPv4(127, 0, 0, 1)

var discard = slog.New(slog.DiscardHandler)

// checkGoroutines fails the test if it leaves goroutines behind. Call it
// first so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// testPool is a port pool over free loopback ports.
func testPool(t testing.TB) *media.PortPool {
	t.Helper()
	for attempt := 0; attempt < 200; attempt++ {
		base := 20000 + 2*rand.IntN(6000)
		var held []*net.UDPConn
		ok := true
		for p := base; p < base+4; p++ {
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
			pool, err := media.NewPortPool(base, base+3)
			if err != nil {
				t.Fatal(err)
			}
			return pool
		}
	}
	t.Fatal("no free ports")
	return nil
}

// openLib opens a library in a fresh directory, closed at the end.
func openLib(t testing.TB, cfg Config) *Library {
	t.Helper()
	if cfg.Store == nil && cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return l
}

// rtpPacket builds an RTP packet.
func rtpPacket(pt uint8, seq uint16, ts, ssrc uint32, payload []byte) []byte {
	b := make([]byte, 12+len(payload))
	b[0], b[1] = 0x80, pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	copy(b[12:], payload)
	return b
}

// toneFrame is frame i of a continuous sine at freq, encoded in law.
func toneFrame(law media.Law, freq float64, i int) []byte {
	pcm := make([]int16, media.FrameSamples)
	for k := range pcm {
		n := float64(i*media.FrameSamples + k)
		pcm[k] = int16(0.3 * 32767 * math.Sin(2*math.Pi*freq*n/media.SampleRate))
	}
	out := make([]byte, media.FrameSamples)
	media.EncodeFrame(law, out, pcm)
	return out
}

// power is the Goertzel power of freq in x, as the squared amplitude of a
// full-scale sine (0.09 for a sine at 0.3).
func power(x []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / media.SampleRate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v)/32768 + c*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	n := float64(len(x))
	return p / (n * n / 4)
}

// span is a stretch of time in seconds from the recording's start.
type span struct{ from, to float64 }

// runs finds where freq is present in x: 20 ms windows every 5 ms, runs
// with gaps under 40 ms merged, each run from the first window's middle
// to the last's.
func runs(x []int16, freq float64) []span {
	const win, hop = media.FrameSamples, media.FrameSamples / 4
	var out []span
	var cur *span
	for p := 0; p+win <= len(x); p += hop {
		mid := float64(p+win/2) / media.SampleRate
		if power(x[p:p+win], freq) < 0.02 {
			continue
		}
		if cur != nil && mid-cur.to < 0.04 {
			cur.to = mid
			continue
		}
		out = append(out, span{mid, mid})
		cur = &out[len(out)-1]
	}
	return out
}

// pace calls f(i) for i in [0, n) every 20 ms from start, on absolute
// deadlines, and returns when it has.
func pace(start time.Time, n int, f func(i int)) {
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * media.FrameDuration)))
		f(i)
	}
}
