package media

import "testing"

// TestStartAfterCloseRegistersNothing: a socket closed before its session
// started never joins a poller — its descriptor number may already belong
// to another call's socket.
func TestStartAfterCloseRegistersNothing(t *testing.T) {
	checkGoroutines(t)
	pool := newTestPool(t, 2)
	s, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The kernel hands out the lowest free descriptor: the next socket
	// most likely gets the closed one's number.
	other, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.sock.fd != s.sock.fd {
		t.Logf("descriptor %d not reused (now %d): the test proves less", s.sock.fd, other.sock.fd)
	}
	s.Start()
	if s.sock.shard != nil {
		t.Errorf("the closed socket (fd %d) joined a poller", s.sock.fd)
	}
}
