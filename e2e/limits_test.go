package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"ivrd/sip/testcaller"
)

// limitsConfig is the demo with the given limits section.
func limitsConfig(t *testing.T, perSource, perNumber, action string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf("limits:\n  invites_per_source: %s\n  calls_per_number: %s\n  number_action: %s\n", perSource, perNumber, action))
}

// dialRaw dials the demo and returns the call or Dial's error; answered
// calls are hung up at the end of the test.
func dialRaw(t *testing.T, ctx context.Context, phone *testcaller.Phone, d *ivrd, from string) (*testcaller.Call, error) {
	call, err := phone.Dial(ctx, testcaller.DialOptions{Target: "sip:support@" + d.sipAddr, From: from, KeepFrames: true})
	if err == nil {
		t.Cleanup(func() { hangup(call) })
	}
	return call, err
}

func newPhone(t *testing.T) *testcaller.Phone {
	t.Helper()
	phone, err := testcaller.NewPhone(testcaller.PhoneConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = phone.Close() })
	return phone
}

// rejected returns err as a RejectedError with the given status, or fails.
func rejected(t *testing.T, err error, status int) *testcaller.RejectedError {
	t.Helper()
	var rej *testcaller.RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("want the call rejected with %d, got %v", status, err)
	}
	if rej.Status != status {
		t.Fatalf("rejected with %d %s; want %d", rej.Status, rej.Reason, status)
	}
	return rej
}

// TestLimitInvitesPerSource: with limits.invites_per_source 2/s, three
// INVITEs at once from 127.0.0.1 (different numbers) let two calls in; the
// third gets 503 with a Retry-After of at least a second. After that
// time a new call is let in again.
func TestLimitInvitesPerSource(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, limitsConfig(t, "2/s", "10/m", "announce"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	phone := newPhone(t)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = dialRaw(t, ctx, phone, d, fmt.Sprintf("+1500555020%d", i))
		})
	}
	wg.Wait()
	var rej []error
	for _, err := range errs {
		if err != nil {
			rej = append(rej, err)
		}
	}
	if len(rej) != 1 {
		t.Fatalf("%d of 3 INVITEs refused (%v); want 1", len(rej), rej)
	}
	r := rejected(t, rej[0], 503)
	h := r.Response.GetHeader("Retry-After")
	if h == nil {
		t.Fatalf("503 without Retry-After:\n%s", r.Response)
	}
	secs, err := strconv.Atoi(h.Value())
	if err != nil || secs < 1 || secs > 5 {
		t.Fatalf("Retry-After: %q; want 1 to 5 seconds", h.Value())
	}
	d.waitLog(5*time.Second, "call rejected", "status=503", "admission refused")

	time.Sleep(time.Duration(secs) * time.Second)
	if _, err := dialRaw(t, ctx, phone, d, "+15005550209"); err != nil {
		t.Fatalf("a call after Retry-After: %v", err)
	}
}

// TestLimitCallsPerNumber: with limits.calls_per_number 1/m, a second call
// from the same number within the minute gets 486 (number_action busy),
// or is answered with "please call back later" and ended by ivrd
// (number_action announce). Another number still gets in.
func TestLimitCallsPerNumber(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"busy", "announce"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			d := startIvrd(t, limitsConfig(t, "50/s", "1/m", action))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			phone := newPhone(t)
			first, err := dialRaw(t, ctx, phone, d, "+15005550142")
			if err != nil {
				t.Fatal(err)
			}
			if err := first.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			second, err := dialRaw(t, ctx, phone, d, "+15005550142")
			if action == "busy" {
				rejected(t, err, 486)
				d.waitLog(5*time.Second, "call rejected", "status=486", "admission refused")
			} else {
				if err != nil {
					t.Fatalf("second call with number_action announce: %v; want it answered", err)
				}
				if err := second.WaitBye(ctx); err != nil {
					t.Fatal(err)
				}
				assertHeard(t, recognizer(t, second.Law()).Heard(second.Frames()), "call_back_later")
				d.waitLog(5*time.Second, "admission refused: the caller is told", "status=486")
			}
			other, err := dialRaw(t, ctx, phone, d, "+15005550143")
			if err != nil {
				t.Fatalf("a call from another number: %v", err)
			}
			rec := recognizer(t, other.Law())
			waitPrompt(t, ctx, other, rec, 0, "welcome")
		})
	}
}
