package sim

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"ivrd/media"
	"ivrd/sip"
	"ivrd/sip/testcaller"
)

// startSIP runs ivrd's SIP server on loopback with handler h and returns
// the URI to dial.
func startSIP(t *testing.T, h sip.HandlerFunc) string {
	t.Helper()
	ports, err := media.NewPortPool(44000, 44999)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sip.NewServer(sip.Config{Listen: "127.0.0.1:0", Ports: ports, Handler: h, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "sip:support@" + srv.Addr("udp")
}

// tone is a loud prompt of length d.
func tone(d time.Duration) *media.Prompt {
	pcm := make([]int16, int(d.Seconds()*media.SampleRate))
	src := &testcaller.Tone{Freq: 440, Amplitude: 0.3}
	for i := 0; i+media.FrameSamples <= len(pcm); i += media.FrameSamples {
		src.Next(pcm[i : i+media.FrameSamples])
	}
	return media.NewPrompt("tone", pcm)
}

// checkGoroutines fails the test if the goroutines started after it was
// called are still running a few seconds after the test.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestFirstPrompt: with FirstPrompt each caller hangs up as soon as it
// hears the server's first sound (after 300 ms of silence here) and the
// call is completed; a server that only sends silence fails every call
// with no_prompt after the answer timeout.
func TestFirstPrompt(t *testing.T) {
	checkGoroutines(t)
	hangups := make(chan time.Duration, 100)
	loud := startSIP(t, func(ctx context.Context, c *sip.Call) {
		start := time.Now()
		select {
		case <-time.After(300 * time.Millisecond): // silence first
		case <-ctx.Done():
			return
		}
		_ = c.Media.Play(ctx, tone(30*time.Second))
		hangups <- time.Since(start)
	})
	silent := startSIP(t, func(ctx context.Context, c *sip.Call) {
		select {
		case <-time.After(30 * time.Second):
		case <-ctx.Done():
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const calls = 6
	rep, err := Run(ctx, Config{Target: loud, Calls: calls, Concurrency: 3, FirstPrompt: true, Talk: 20 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts.Completed != calls || rep.FirstPrompt.N != calls {
		t.Fatalf("counts %+v, failures %v, first prompt %+v", rep.Counts, rep.Failures, rep.FirstPrompt)
	}
	for _, c := range rep.Calls {
		if c.FirstPromptMs < 250 || c.FirstPromptMs > 1000 {
			t.Errorf("call %d: first prompt after %.1f ms, want the 300 ms of silence and a little", c.Index, c.FirstPromptMs)
		}
	}
	for range calls {
		select {
		case d := <-hangups:
			if d > 2*time.Second {
				t.Errorf("a caller stayed %v, not hanging up at the prompt", d)
			}
		case <-ctx.Done():
			t.Fatal("the callers did not hang up")
		}
	}

	start := time.Now()
	rep, err = Run(ctx, Config{Target: silent, Calls: 3, Concurrency: 3, FirstPrompt: true, AnswerTimeout: 700 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts.Failed != 3 || rep.Failures[ReasonNoPrompt] != 3 || rep.FirstPrompt.N != 0 {
		t.Fatalf("silent server: counts %+v, failures %v", rep.Counts, rep.Failures)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent server: the run took %v, want about the 700 ms answer timeout", d)
	}
}

// TestSharedRTP: calls on a phone's one shared RTP socket each reach
// their own port on the server and hear only what their own port sends.
// The server echoes each call's audio back, so a caller must hear its own
// stamps — none of another call's — in order; a call that ended hears
// nothing more, and the socket outlives the calls.
func TestSharedRTP(t *testing.T) {
	checkGoroutines(t)
	target := startSIP(t, func(ctx context.Context, c *sip.Call) {
		r := c.Media.StartRelay()
		c.Media.SetAudioSink(func(p media.AudioPacket) { _ = r.Write(p) })
		<-ctx.Done()
	})
	phone, err := testcaller.NewPhone(testcaller.PhoneConfig{SharedRTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type heard struct {
		mu           sync.Mutex
		own, foreign int
		lastSeq      int64
		outOfOrder   int
	}
	const calls = 4
	var (
		legs  [calls]*testcaller.Call
		heads [calls]heard
		ports = map[string]bool{}
	)
	for i := range calls {
		call, err := phone.Dial(ctx, testcaller.DialOptions{Target: target, From: fmt.Sprintf("shared%d", i),
			Laws: []media.Law{media.ULaw}, Source: NewSpeaker(KindCaller, uint16(i), nil), Discard: true})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		legs[i] = call
		h := &heads[i]
		h.lastSeq = -1
		call.OnPacket(func(_ testcaller.Frame, payload []byte) {
			st, ok := ReadStamp(payload)
			if !ok {
				return
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if st.Kind != KindCaller || int(st.Stream) != i {
				h.foreign++
				return
			}
			h.own++
			if int64(st.Seq) <= h.lastSeq {
				h.outOfOrder++
			}
			h.lastSeq = int64(st.Seq)
		})
		ports[string(call.Response().Body())] = true
	}
	if len(ports) != calls {
		t.Fatalf("the server answered %d calls with %d distinct SDPs", calls, len(ports))
	}
	time.Sleep(time.Second)
	_ = legs[0].Hangup(ctx)
	heads[0].mu.Lock()
	ended := heads[0].own
	heads[0].mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	for _, call := range legs[1:] {
		_ = call.Hangup(ctx)
	}
	for i := range calls {
		h := &heads[i]
		h.mu.Lock()
		// A second of 20 ms packets is 50; the first few may go by before
		// the answer is read.
		if h.own < 35 || h.foreign != 0 || h.outOfOrder != 0 {
			t.Errorf("call %d heard %d of its own packets, %d of other calls', %d out of order", i, h.own, h.foreign, h.outOfOrder)
		}
		if i == 0 && h.own != ended {
			t.Errorf("call 0 heard %d packets after it hung up", h.own-ended)
		}
		h.mu.Unlock()
	}
	// The socket outlives the calls: a new call on it still works.
	call, err := phone.Dial(ctx, testcaller.DialOptions{Target: target, From: "shared-after", Laws: []media.Law{media.ULaw}, Source: &testcaller.Tone{Freq: 440, Amplitude: 0.3}})
	if err != nil {
		t.Fatal(err)
	}
	if err := call.WaitSound(ctx, 0, 500*time.Millisecond); err != nil {
		t.Errorf("a call after the others ended: %v", err)
	}
	if _, _, err := call.ReInvite(ctx, false, true); err == nil {
		t.Error("a call on the shared socket moved its RTP")
	}
	_ = call.Hangup(ctx)
}
