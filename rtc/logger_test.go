package rtc

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestPionWarnings: pion's (DTLS's) warnings and errors reach our log,
// with the scope named; its info and debug lines do not.
func TestPionWarnings(t *testing.T) {
	var buf bytes.Buffer
	l := pionLogs{log: slog.New(slog.NewTextHandler(&buf, nil))}.NewLogger("dtls")
	l.Warnf("Failed to start SRTP: %v", "boom")
	l.Error("handshake failed")
	l.Infof("flight %d", 4)
	l.Debug("record received")
	got := buf.String()
	for _, want := range []string{"Failed to start SRTP: boom", "handshake failed", "pion=dtls"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q not logged:\n%s", want, got)
		}
	}
	for _, quiet := range []string{"flight", "record received"} {
		if strings.Contains(got, quiet) {
			t.Errorf("pion's info or debug %q logged:\n%s", quiet, got)
		}
	}
}
