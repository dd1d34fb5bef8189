package sip_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ivrd/media"
	"ivrd/sip"
	"ivrd/sip/testcaller"
)

// harness is a real server on 127.0.0.1 with a handler under test.
type harness struct {
	srv     *sip.Server
	ports   *media.PortPool
	metrics *sip.Metrics
	reg     *prometheus.Registry
	target  string // sip:support@host:port
	addr    string
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("IVRD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startServer(t *testing.T, h sip.Handler, mod func(*sip.Config)) *harness {
	t.Helper()
	ports, err := media.NewPortPool(42000, 43999)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := sip.NewMetrics(reg)
	cfg := sip.Config{
		Listen:     "127.0.0.1:0",
		RTPTimeout: 60 * time.Second,
		Ports:      ports,
		Handler:    h,
		Metrics:    m,
		Logger:     testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := sip.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	hs := &harness{srv: srv, ports: ports, metrics: m, reg: reg, addr: srv.Addr("udp")}
	hs.target = "sip:support@" + hs.addr
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return hs
}

func (h *harness) outcomes(o sip.Outcome) float64 {
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "ivrd_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == string(o) {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// waitIdle waits until the server holds no call and no media port.
func (h *harness) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if h.srv.ActiveCalls() == 0 && h.ports.InUse() == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("server not idle: %d calls, %d ports in use", h.srv.ActiveCalls(), h.ports.InUse())
}

func newPhone(t *testing.T, transport string) *testcaller.Phone {
	t.Helper()
	p, err := testcaller.NewPhone(testcaller.PhoneConfig{Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// beep is a 440 Hz prompt of the given length.
func beep(d time.Duration) *media.Prompt {
	pcm := make([]int16, int(d.Seconds()*media.SampleRate))
	tone := &testcaller.Tone{Freq: 440, Amplitude: 0.3}
	for i := 0; i+media.FrameSamples <= len(pcm); i += media.FrameSamples {
		tone.Next(pcm[i : i+media.FrameSamples])
	}
	return media.NewPrompt("beep", pcm)
}

// digitHandler plays a prompt, then reports the digits it gets until ctx ends
// or it has want of them; then it returns (and the server hangs up).
type digitHandler struct {
	prompt *media.Prompt
	want   int
	calls  chan *sip.Call
	digits chan media.Digit
}

func newDigitHandler(want int) *digitHandler {
	return &digitHandler{prompt: beep(500 * time.Millisecond), want: want, calls: make(chan *sip.Call, 10), digits: make(chan media.Digit, 64)}
}

func (h *digitHandler) HandleCall(ctx context.Context, c *sip.Call) {
	h.calls <- c
	if err := c.Media.Play(ctx, h.prompt); err != nil {
		return
	}
	for got := 0; got < h.want; got++ {
		select {
		case d := <-c.Media.Digits():
			h.digits <- d
		case <-ctx.Done():
			return
		}
	}
}

func TestCallHearsPromptAndServerHangsUp(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			h := newDigitHandler(1)
			hs := startServer(t, h, nil)
			phone := newPhone(t, transport)
			ctx := ctxT(t, 20*time.Second)
			target := hs.target
			if transport == "tcp" {
				target = "sip:support@" + hs.srv.Addr("tcp") + ";transport=tcp"
			}
			call, err := phone.Dial(ctx, testcaller.DialOptions{Target: target, From: "+14155550100"})
			if err != nil {
				t.Fatal(err)
			}
			defer call.Close()
			if err := call.WaitSound(ctx, 0, 400*time.Millisecond); err != nil {
				t.Fatalf("prompt not heard: %v", err)
			}
			if err := call.SendDigit('5', 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-h.digits:
				if d.Key != '5' || d.Source != media.DigitRFC4733 {
					t.Fatalf("digit = %q from %v, want '5' by rfc4733", d.Key, d.Source)
				}
			case <-ctx.Done():
				t.Fatal("digit not received")
			}
			if err := call.WaitBye(ctx); err != nil {
				t.Fatal(err)
			}
			hs.waitIdle(t)
			if got := hs.outcomes(sip.OutcomeCompleted); got != 1 {
				t.Fatalf("completed calls = %v, want 1", got)
			}
			// Pace: the packets of the prompt arrived about every 20 ms from one SSRC.
			frames := call.Frames()
			if len(frames) < 25 {
				t.Fatalf("only %d frames heard", len(frames))
			}
			ssrc := frames[0].SSRC
			for i, f := range frames {
				if f.SSRC != ssrc {
					t.Fatalf("frame %d: SSRC changed", i)
				}
				if i > 0 && f.Seq != frames[i-1].Seq+1 {
					t.Fatalf("frame %d: sequence jumps %d → %d", i, frames[i-1].Seq, f.Seq)
				}
			}
			span := frames[len(frames)-1].At.Sub(frames[0].At)
			mean := span / time.Duration(len(frames)-1)
			if mean < 17*time.Millisecond || mean > 23*time.Millisecond {
				t.Fatalf("mean packet interval %v, want about 20ms", mean)
			}
		})
	}
}

func TestDigitsArriveEveryWay(t *testing.T) {
	cases := []struct {
		name   string
		opts   testcaller.DialOptions
		press  func(ctx context.Context, c *testcaller.Call) error
		source media.DigitSource
	}{
		{"rfc4733", testcaller.DialOptions{}, func(_ context.Context, c *testcaller.Call) error { return c.SendDigit('7', 120*time.Millisecond) }, media.DigitRFC4733},
		{"rfc4733-no-marker", testcaller.DialOptions{}, func(_ context.Context, c *testcaller.Call) error {
			return c.SendDigitNoMarker('7', 120*time.Millisecond)
		}, media.DigitRFC4733},
		{"inband", testcaller.DialOptions{NoDTMFEvent: true}, func(_ context.Context, c *testcaller.Call) error { return c.SendTone('7', 100*time.Millisecond) }, media.DigitInband},
		{"sip-info", testcaller.DialOptions{}, func(ctx context.Context, c *testcaller.Call) error {
			st, err := c.SendInfo(ctx, '7')
			if err == nil && st != 200 {
				err = fmt.Errorf("INFO answered %d", st)
			}
			return err
		}, media.DigitSIPInfo},
		{"pcma", testcaller.DialOptions{Laws: []media.Law{media.ALaw}, NoDTMFEvent: true}, func(_ context.Context, c *testcaller.Call) error { return c.SendTone('7', 100*time.Millisecond) }, media.DigitInband},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newDigitHandler(2)
			hs := startServer(t, h, nil)
			phone := newPhone(t, "udp")
			ctx := ctxT(t, 20*time.Second)
			o := tc.opts
			o.Target = hs.target
			call, err := phone.Dial(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer call.Close()
			if err := call.WaitSound(ctx, 0, 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			// Type-ahead during the prompt is kept; press twice, expect two.
			for i := 0; i < 2; i++ {
				if err := tc.press(ctx, call); err != nil {
					t.Fatal(err)
				}
				time.Sleep(250 * time.Millisecond)
			}
			for i := 0; i < 2; i++ {
				select {
				case d := <-h.digits:
					if d.Key != '7' || d.Source != tc.source {
						t.Fatalf("digit %d = %q via %v, want '7' via %v", i, d.Key, d.Source, tc.source)
					}
				case <-ctx.Done():
					t.Fatalf("digit %d not received", i)
				}
			}
			// Two presses are two digits: not one per packet.
			select {
			case d := <-h.digits:
				t.Fatalf("a third digit %q arrived from two presses", d.Key)
			case <-time.After(300 * time.Millisecond):
			}
			if err := call.WaitBye(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-h.digits:
				t.Fatalf("extra digit %q: one press counted twice", d.Key)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// TestDiscardKeepsNoFramesButHearsSound: a call dialled with Discard keeps
// no frame, yet knows when it first heard sound (a prompt after 300 ms of
// silence) just as a call that keeps its frames does, and its OnPacket
// function sees the packets.
func TestDiscardKeepsNoFramesButHearsSound(t *testing.T) {
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return
		}
		_ = c.Media.Play(ctx, beep(500*time.Millisecond))
	})
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 20*time.Second)

	kept, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	discarding, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target, Discard: true})
	if err != nil {
		t.Fatal(err)
	}
	defer discarding.Close()
	var seen atomic.Int64
	discarding.OnPacket(func(testcaller.Frame, []byte) { seen.Add(1) })

	for _, c := range []*testcaller.Call{kept, discarding} {
		select {
		case <-c.Sound():
		case <-ctx.Done():
			t.Fatal("no sound heard")
		}
		if err := c.WaitBye(ctx); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if d := c.FirstSoundAt().Sub(c.AnsweredAt); d < 250*time.Millisecond || d > time.Second {
			t.Errorf("first sound %v after the answer, want after the 300 ms of silence", d)
		}
	}
	var firstLoud time.Time
	for _, f := range kept.Frames() {
		if f.RMS > testcaller.LoudRMS {
			firstLoud = f.At
			break
		}
	}
	if !kept.FirstSoundAt().Equal(firstLoud) {
		t.Errorf("FirstSoundAt %v, the first loud frame arrived at %v", kept.FirstSoundAt(), firstLoud)
	}
	if n := len(discarding.Frames()); n != 0 {
		t.Errorf("the discarding call kept %d frames", n)
	}
	if discarding.Received() < 30 || seen.Load() < 30 {
		t.Errorf("the discarding call received %d packets, its OnPacket saw %d; want the 800 ms of the call", discarding.Received(), seen.Load())
	}
	if err := discarding.WaitSound(ctx, 0, 20*time.Millisecond); !errors.Is(err, testcaller.ErrDiscarding) {
		t.Errorf("WaitSound on a discarding call: %v", err)
	}
}

func TestCallerHangsUpMidPrompt(t *testing.T) {
	var ended atomic.Bool
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
		err := c.Media.Play(ctx, beep(10*time.Second))
		if errors.Is(err, context.Canceled) {
			ended.Store(true)
		}
	})
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 20*time.Second)
	call, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
	if err != nil {
		t.Fatal(err)
	}
	if err := call.WaitSound(ctx, 0, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	hs.waitIdle(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("call took %v to end after BYE", d)
	}
	if !ended.Load() {
		t.Fatal("the handler's prompt was not cancelled")
	}
	if got := hs.outcomes(sip.OutcomeCallerHangup); got != 1 {
		t.Fatalf("caller_hangup = %v, want 1", got)
	}
}

func TestCallerIdentity(t *testing.T) {
	h := newDigitHandler(0)
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 10*time.Second)
	for _, tc := range []struct {
		opts testcaller.DialOptions
		want string
	}{
		{testcaller.DialOptions{From: "4155550100"}, "4155550100"},
		{testcaller.DialOptions{From: "anonymous", PAI: "tel:+14155550101"}, "+14155550101"},
		{testcaller.DialOptions{From: "trunk", PAI: "sip:+442071234567@carrier.example;user=phone"}, "+442071234567"},
	} {
		o := tc.opts
		o.Target = hs.target
		call, err := phone.Dial(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		c := <-h.calls
		if c.Caller.Number != tc.want || c.Dialed != "support" {
			t.Fatalf("caller %q dialed %q, want %q dialing support", c.Caller.Number, c.Dialed, tc.want)
		}
		_ = call.WaitBye(ctx)
		call.Close()
	}
}

func TestReInviteHoldAndMove(t *testing.T) {
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
		for ctx.Err() == nil {
			_ = c.Media.Play(ctx, beep(time.Second))
		}
	})
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 20*time.Second)
	call, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	if err := call.WaitSound(ctx, 0, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	st, body, err := call.ReInvite(ctx, true, false)
	if err != nil || st != 200 {
		t.Fatalf("hold re-INVITE: %d %v", st, err)
	}
	if !strings.Contains(string(body), "a=recvonly") {
		t.Fatalf("hold answer is not recvonly:\n%s", body)
	}
	time.Sleep(100 * time.Millisecond)
	mark := call.Mark()
	time.Sleep(400 * time.Millisecond)
	if n := len(call.FramesSince(mark)); n > 1 {
		t.Fatalf("server sent %d packets while on hold", n)
	}

	st, body, err = call.ReInvite(ctx, false, true)
	if err != nil || st != 200 {
		t.Fatalf("unhold re-INVITE: %d %v", st, err)
	}
	if !strings.Contains(string(body), "a=sendrecv") {
		t.Fatalf("unhold answer is not sendrecv:\n%s", body)
	}
	mark = call.Mark()
	if err := call.WaitSound(ctx, mark, 200*time.Millisecond); err != nil {
		t.Fatalf("no audio at the new address after unhold: %v", err)
	}
	if hs.srv.ActiveCalls() != 1 {
		t.Fatal("the call was dropped by the re-INVITE")
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	hs.waitIdle(t)
	// Each re-INVITE's 200 counts once, retransmitted or not.
	hs.wantResponses(t, map[string]float64{"INVITE 100": 1, "INVITE 180": 1, "INVITE 200": 3, "BYE 200": 1})
	hs.wantNoCallsInState(t)
}

func TestRTPTimeoutEndsCall(t *testing.T) {
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) { <-ctx.Done() })
	hs := startServer(t, h, func(c *sip.Config) { c.RTPTimeout = time.Second })
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 20*time.Second)
	call, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	// While RTP flows, the call stays up past the timeout.
	time.Sleep(1500 * time.Millisecond)
	if hs.srv.ActiveCalls() != 1 {
		t.Fatal("call ended although RTP was flowing")
	}
	call.StopRTP()
	stopped := time.Now()
	if err := call.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	if d := call.ByeAt().Sub(stopped); d < 900*time.Millisecond || d > 4*time.Second {
		t.Fatalf("BYE %v after RTP stopped, want about 1s", d)
	}
	hs.waitIdle(t)
	if got := hs.outcomes(sip.OutcomeMediaTimeout); got != 1 {
		t.Fatalf("media_timeout = %v", got)
	}
	hs.wantNoCallsInState(t)
}

func TestShutdownDrainsThenHangsUp(t *testing.T) {
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) { <-ctx.Done() })
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 20*time.Second)
	call, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()

	shutdownDone := make(chan error, 1)
	grace, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	go func() { shutdownDone <- hs.srv.Shutdown(grace) }()
	time.Sleep(100 * time.Millisecond)

	// Draining: new calls are refused with 503 and Retry-After.
	_, err = phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
	var rej *testcaller.RejectedError
	if !errors.As(err, &rej) || rej.Status != 503 || rej.Response.GetHeader("Retry-After") == nil {
		t.Fatalf("dial while draining: %v, want 503 with Retry-After", err)
	}
	if call.ByeAt() != (time.Time{}) {
		t.Fatal("call ended before the grace period")
	}
	if err := call.WaitBye(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-shutdownDone; err != nil {
		t.Fatal(err)
	}
	if hs.outcomes(sip.OutcomeShutdown) != 1 {
		t.Fatal("outcome shutdown not counted")
	}
	hs.wantResponses(t, map[string]float64{"INVITE 100": 1, "INVITE 180": 1, "INVITE 200": 1, "INVITE 503": 1})
	hs.wantNoCallsInState(t)
}

// TestManyCallsNoLeak places 2,000 calls and checks that goroutines, file
// descriptors and media ports return to where they were.
func TestManyCallsNoLeak(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
		_ = c.Media.Play(ctx, beep(40*time.Millisecond))
	})
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, 5*time.Minute)

	// Warm up so lazily started goroutines are counted in the baseline.
	runCalls(t, ctx, phone, hs.target, 5, 5)
	hs.waitIdle(t)
	time.Sleep(200 * time.Millisecond)
	g0, fd0 := runtime.NumGoroutine(), openFDs(t)

	runCalls(t, ctx, phone, hs.target, n, 16)
	hs.waitIdle(t)

	var g1, fd1 int
	for i := 0; i < 100; i++ {
		g1, fd1 = runtime.NumGoroutine(), openFDs(t)
		if g1 <= g0+5 && fd1 <= fd0+2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d calls: goroutines %d → %d, fds %d → %d, ports in use %d", n, g0, g1, fd0, fd1, hs.ports.InUse())
	if g1 > g0+5 || fd1 > fd0+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("leak after %d calls: goroutines %d → %d, fds %d → %d\n%s", n, g0, g1, fd0, fd1, buf[:runtime.Stack(buf, true)])
	}
	if got := hs.outcomes(sip.OutcomeCompleted); int(got) != n+5 {
		t.Fatalf("completed = %v, want %d", got, n+5)
	}
}

func runCalls(t *testing.T, ctx context.Context, phone *testcaller.Phone, target string, n, parallel int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, parallel)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			call, err := phone.Dial(ctx, testcaller.DialOptions{Target: target})
			if err == nil {
				err = call.WaitBye(ctx)
				call.Close()
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d calls failed; first: %v", f, n, firstErr.Load())
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestOneGoroutinePerCall: an answered call costs the server one goroutine
// of its own, the INVITE's handler running the Handler; requests in the
// dialog are answered on the goroutines that receive them. Goroutines
// running ivrd/sip code are counted while calls wait in their handlers.
func TestOneGoroutinePerCall(t *testing.T) {
	const n = 20
	release := make(chan struct{})
	var inHandler atomic.Int64
	h := sip.HandlerFunc(func(ctx context.Context, c *sip.Call) {
		inHandler.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	hs := startServer(t, h, nil)
	phone := newPhone(t, "udp")
	ctx := ctxT(t, time.Minute)
	base := serverGoroutines()
	calls := make([]*testcaller.Call, n)
	for i := range calls {
		c, err := phone.Dial(ctx, testcaller.DialOptions{Target: hs.target})
		if err != nil {
			t.Fatal(err)
		}
		calls[i] = c
	}
	for inHandler.Load() < n {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d calls in their handler", inHandler.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the ACKs' goroutines are done
	per := float64(serverGoroutines()-base) / n
	close(release)
	for _, c := range calls {
		if err := c.WaitBye(ctx); err != nil {
			t.Error(err)
		}
		c.Close()
	}
	t.Logf("%.2f server goroutines a call", per)
	if per != 1 {
		t.Errorf("%.2f server goroutines a call in its handler, want 1", per)
	}
}

// serverGoroutines counts the goroutines with ivrd/sip's server code on
// their stack (not the test caller's, in ivrd/sip/testcaller).
func serverGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "ivrd/sip.(*") {
			n++
		}
	}
	return n
}
