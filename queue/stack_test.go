package queue

import (
	"context"
	"runtime"
	"testing"
	"time"

	"ivrd/media"
	"ivrd/sip/testcaller"
)

// stackInUse is the goroutine stacks the runtime holds, after enough
// collections for parked goroutines' stacks to have shrunk (each
// collection halves a stack at most once).
func stackInUse() int64 {
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}

// deep uses about n KB of its goroutine's stack.
//
//go:noinline
func deep(n int) byte {
	var b [1000]byte
	b[n%len(b)] = byte(n)
	if n <= 1 {
		return b[0]
	}
	return deep(n-1) + b[n%len(b)]
}

// TestWaitingCallerStacks: a caller waiting in the queue costs the
// server one goroutine (the call's: started once the call is answered, it
// runs the flow that waits in the queue; requests in the dialog are answered on the
// goroutines that receive them, RTP is read by the media pollers) whose
// stack the collector can shrink to its floor while the call waits,
// because the frames it waits in are
// small (the work of setting the call up is done in frames that have
// returned). With the setup in the waiting frames the dialog's and the
// queue's goroutines stayed at 16 KB each.
func TestWaitingCallerStacks(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's frames are larger: stack sizes measured without it")
	}
	// Both goroutines first grow their stacks to 32 KB, as the work of
	// answering a call and running its flow does in ivrd.
	h := newQHarness(t, harnessOpts{beforeCall: func() { deep(24) }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 100
	base := stackInUse()
	calls := make([]*testcaller.Call, n)
	for i := range calls {
		c, err := h.phone.Dial(ctx, testcaller.DialOptions{Target: h.target, From: "+15550100", Laws: []media.Law{media.ULaw}})
		if err != nil {
			t.Fatal(err)
		}
		calls[i] = c
	}
	for len(h.q.live()) < n {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d calls queued", len(h.q.live()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // every call past its first announcement, waiting
	perCall := float64(stackInUse()-base) / n
	for _, c := range calls {
		if err := c.Hangup(ctx); err != nil {
			t.Error(err)
		}
		c.Close()
	}
	for range n { // the calls' handlers report how they ended
		select {
		case <-h.results:
		case <-ctx.Done():
			t.Fatal("calls did not end")
		}
	}
	// Measured: ~13 KB (the test caller's goroutines included) with the
	// flow on the call's one goroutine (in ivrd, where the flow's frames
	// are deeper than this test's, that goroutine stayed at 16 KB while it
	// also held sipgo's frames: it is now started fresh after the answer);
	// ~21 KB when the dialog waited on
	// a goroutine of its own beside the flow's; ~35 KB with the dialog's
	// setup in its waiting frame, ~34 KB with 3 KB more in the queue's.
	t.Logf("goroutine stacks: %.0f bytes a waiting call (server and test caller)", perCall)
	if perCall > 17_000 {
		t.Errorf("goroutine stacks: %.0f bytes a waiting call (server and test caller), want under 17,000", perCall)
	}
}
