package rtc

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestPionWarnings: pion's warnings reach our log, except those that
// describe what the Peer does on purpose (RTCP not read, stream loops
// ending at close).
func TestPionWarnings(t *testing.T) {
	var buf bytes.Buffer
	l := pionLogs{log: slog.New(slog.NewTextHandler(&buf, nil))}.NewLogger("pc")
	l.Warnf("Incoming unhandled RTCP ssrc(%d), OnTrack will not be fired", 42)
	l.Warnf("Failed to accept RTP %v", "stream is already closed")
	l.Warnf("Failed to accept RTCP %v", "stream is already closed")
	l.Warnf("Failed to start SRTP: %v", "boom")
	l.Warn("ICE connection failed")
	l.Infof("candidate %s", "host")
	got := buf.String()
	for _, quiet := range []string{"unhandled RTCP", "Failed to accept"} {
		if strings.Contains(got, quiet) {
			t.Errorf("%q logged:\n%s", quiet, got)
		}
	}
	for _, want := range []string{"Failed to start SRTP: boom", "ICE connection failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q not logged:\n%s", want, got)
		}
	}
	if strings.Contains(got, "candidate") {
		t.Errorf("pion's info logged:\n%s", got)
	}
}
