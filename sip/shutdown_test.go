package sip

import (
	"errors"
	"net"
	"testing"
)

// TestAlreadyClosed: Shutdown's error leaves out connections that were
// closed already (a TCP peer gone as we shut down), alone or joined with
// others, and keeps every other error.
func TestAlreadyClosed(t *testing.T) {
	closed := &net.OpError{Op: "close", Net: "tcp", Err: net.ErrClosed}
	other := errors.New("bind: address in use")
	for _, c := range []struct {
		name string
		in   error
		want error
	}{
		{"none", nil, nil},
		{"closed", closed, nil},
		{"joined closed", errors.Join(closed, closed), nil},
		{"other", other, other},
		{"joined with other", errors.Join(closed, other), other},
	} {
		got := alreadyClosed(c.in)
		if (got == nil) != (c.want == nil) || (got != nil && !errors.Is(got, c.want)) {
			t.Errorf("%s: alreadyClosed(%v) = %v, want %v", c.name, c.in, got, c.want)
		}
		if got != nil && errors.Is(got, net.ErrClosed) {
			t.Errorf("%s: %v still says closed", c.name, got)
		}
	}
}
