package recordings

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"ivrd/media"
)

// call is a real media session on loopback with a UDP peer playing the
// caller, recorded from answer.
type call struct {
	t        *testing.T
	s        *media.Session
	peer     *net.UDPConn
	to       *net.UDPAddr
	rec      *Recorder
	law      media.Law
	answered time.Time
}

func newCall(t *testing.T, lib *Library, law media.Law) *call {
	t.Helper()
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	s, err := media.NewSession(media.SessionConfig{Ports: testPool(t), LocalIP: loopback, Law: law, Remote: peer.LocalAddr().(*net.UDPAddr), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // what the caller hears goes nowhere
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := peer.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		peer.Close()
		wg.Wait()
	})
	c := &call{t: t, s: s, peer: peer, law: law, to: &net.UDPAddr{IP: loopback, Port: s.LocalPort()}}
	c.answered = time.Now()
	c.rec = lib.Start("call-"+t.Name(), law, c.answered)
	s.SetTap(c.rec)
	s.Start()
	return c
}

// at is the time offset seconds after answer.
func (c *call) at(offset float64) time.Time {
	return c.answered.Add(time.Duration(offset * float64(time.Second)))
}

func (c *call) since(t time.Time) float64 { return t.Sub(c.answered).Seconds() }

// callerTone sends frames of 440 Hz from the caller: n frames from offset
// start; skip drops packets (their sequence numbers and timestamps pass);
// jumpAt makes the timestamps jump forward by jump from that frame on. It
// returns the times the tone's audio began and ended.
func (c *call) callerTone(start float64, n int, seq *uint16, ts *uint32, skip func(int) bool, jumpAt int, jump uint32) (from, to time.Time) {
	pace(c.at(start), n, func(i int) {
		if i == jumpAt {
			*ts += jump
		}
		now := time.Now()
		if i == 0 {
			from = now
		}
		to = now.Add(media.FrameDuration)
		if skip == nil || !skip(i) {
			if _, err := c.peer.WriteToUDP(rtpPacket(c.law.PayloadType(), *seq, *ts, 0x1234, toneFrame(c.law, 440, i)), c.to); err != nil {
				c.t.Error(err)
			}
		}
		*seq++
		*ts += media.FrameSamples
	})
	return from, to
}

// TestRecordingAligned: a bridged call — the caller's 440 Hz, a 1000 Hz
// prompt, then the agent's 1000 Hz relayed while the caller speaks — is
// recorded with each tone on its channel where it was sent, within 40 ms,
// and as long as the call; also with packets lost and a timestamp jump
// on the caller's leg.
func TestRecordingAligned(t *testing.T) {
	for _, tc := range []struct {
		name   string
		skip   func(int) bool // caller frames lost in the first burst
		jumpAt int            // caller frame where the timestamps jump
		gap    span           // the loss, seconds into the first burst
	}{
		{name: "clean", jumpAt: -1},
		{name: "loss and jump", skip: func(i int) bool { return i >= 20 && i < 25 }, jumpAt: 30, gap: span{0.4, 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			lib := openLib(t, Config{})
			c := newCall(t, lib, media.ULaw)
			var seq uint16 = 1000
			var ts uint32 = 0xFFFF0000 // wraps during the call

			// The caller speaks (0.4–1.4 s).
			c1from, c1to := c.callerTone(0.4, 50, &seq, &ts, tc.skip, tc.jumpAt, 123456)
			// A prompt at 1000 Hz (about 1.6–2.1 s).
			time.Sleep(time.Until(c.at(1.6)))
			pStart := time.Now()
			if err := c.s.Play(context.Background(), media.NewPrompt("tone", pcmTone(1000, 25))); err != nil {
				t.Fatal(err)
			}
			pEnd := time.Now()
			// Bridged: the agent (1000 Hz, relayed) and the caller (440 Hz)
			// at once, 2.4–3.4 s.
			relay := c.s.StartRelay()
			var aFrom, aTo time.Time
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				pace(c.at(2.4), 50, func(i int) {
					now := time.Now()
					if i == 0 {
						aFrom = now
					}
					aTo = now.Add(media.FrameDuration)
					if err := relay.Write(media.AudioPacket{SSRC: 99, Sequence: uint16(i), Timestamp: 5000 + uint32(i*media.FrameSamples), Payload: toneFrame(media.ULaw, 1000, i)}); err != nil {
						t.Error(err)
					}
				})
			}()
			c2from, c2to := c.callerTone(2.4, 50, &seq, &ts, nil, -1, 0)
			wg.Wait()
			relay.Stop()
			time.Sleep(time.Until(c.at(3.8)))
			ended := time.Now()
			c.rec.Close(ended)
			c.rec.Wait()

			m, err := lib.Get(c.rec.ID())
			if err != nil {
				t.Fatal(err)
			}
			left, right := readRecording(t, lib, c.rec.ID())
			got := float64(len(left)) / media.SampleRate
			want := c.since(ended)
			t.Logf("duration %.3f s, call %.3f s; meta %.3f s, dropped %d, late %d", got, want, m.DurationS, m.DroppedFrames, m.LateFrames)
			if math.Abs(got-want) > 0.04 {
				t.Errorf("recording lasts %.3f s, the call %.3f s", got, want)
			}
			if m.DroppedFrames != 0 || !m.Complete {
				t.Errorf("meta: dropped %d, complete %v", m.DroppedFrames, m.Complete)
			}

			wantLeft := []span{{c.since(c1from), c.since(c1to)}, {c.since(c2from), c.since(c2to)}}
			if tc.skip != nil {
				first := wantLeft[0]
				wantLeft = []span{{first.from, first.from + tc.gap.from}, {first.from + tc.gap.to, first.to}, wantLeft[1]}
			}
			checkSpans(t, "left 440 Hz (the caller)", runs(left, 440), wantLeft)
			checkSpans(t, "right 1000 Hz (prompt, agent)", runs(right, 1000),
				[]span{{c.since(pStart), c.since(pEnd)}, {c.since(aFrom), c.since(aTo)}})
			if r := runs(left, 1000); len(r) != 0 {
				t.Errorf("the caller's channel has 1000 Hz at %v", r)
			}
			if r := runs(right, 440); len(r) != 0 {
				t.Errorf("the caller's channel has 440 Hz at %v", r)
			}
		})
	}
}

// pcmTone is n frames of freq at 0.3 of full scale.
func pcmTone(freq float64, n int) []int16 {
	pcm := make([]int16, n*media.FrameSamples)
	for k := range pcm {
		pcm[k] = int16(0.3 * 32767 * math.Sin(2*math.Pi*freq*float64(k)/media.SampleRate))
	}
	return pcm
}

// checkSpans compares where a tone is with where it was sent: the same
// number of runs, each edge within 40 ms.
func checkSpans(t *testing.T, what string, got, want []span) {
	t.Helper()
	var worst float64
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		for _, d := range []float64{got[i].from - want[i].from, got[i].to - want[i].to} {
			worst = max(worst, math.Abs(d))
		}
	}
	t.Logf("%s: found %s, sent %s; worst edge %.1f ms", what, spans(got), spans(want), worst*1000)
	if !ok || worst > 0.04 {
		t.Errorf("%s: found %s, sent %s", what, spans(got), spans(want))
	}
}

func spans(s []span) string {
	out := ""
	for _, x := range s {
		out += fmt.Sprintf("[%.3f %.3f] ", x.from, x.to)
	}
	return out
}

// readRecording reads a recording's channels through the library.
func readRecording(t *testing.T, lib *Library, id string) (left, right []int16) {
	t.Helper()
	f, info, err := lib.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != info.Size {
		t.Errorf("read %d bytes, Info says %d", len(data), info.Size)
	}
	left, right, err = DecodeStereo(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := media.DecodeWAV(data); err != nil {
		t.Errorf("media.DecodeWAV: %v", err)
	}
	return left, right
}
