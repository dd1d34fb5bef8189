package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// sseStream writes Server-Sent Events (the WHATWG HTML "server-sent
// events" format) to one client, flushing after every event so that
// nothing waits in a buffer between ivrd and the browser.
type sseStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	last time.Time // when anything was last written (for heartbeats)
}

// errNoFlush: the ResponseWriter cannot flush (a wrapper without
// Flush/Unwrap), so events would sit in a buffer.
var errNoFlush = errors.New("streaming unsupported by this connection")

// startSSE sends the stream's headers. Proxies are asked not to buffer
// (X-Accel-Buffering) and nobody to cache; a write deadline the server
// may set for ordinary responses is lifted, since a stream lives as long
// as its client.
func startSSE(w http.ResponseWriter) (*sseStream, error) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // not every writer supports deadlines
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	s := &sseStream{w: w, rc: rc}
	// A retry hint: reconnect after 2 s when the connection drops.
	if _, err := io.WriteString(w, "retry: 2000\n\n"); err != nil {
		return nil, err
	}
	if err := rc.Flush(); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoFlush, err)
	}
	s.last = time.Now()
	return s, nil
}

// event writes one event; data may span lines (each becomes a data: line).
func (s *sseStream) event(name string, data []byte) error {
	var b bytes.Buffer
	if name != "" {
		b.WriteString("event: ")
		b.WriteString(name)
		b.WriteByte('\n')
	}
	for line := range bytes.SplitSeq(bytes.TrimRight(data, "\n"), []byte("\n")) {
		b.WriteString("data: ")
		b.Write(bytes.TrimSuffix(line, []byte("\r")))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return s.write(b.Bytes())
}

// comment writes a comment line, which clients ignore: a heartbeat that
// keeps proxies and NAT from closing an idle connection and makes a
// vanished client show up as a write error.
func (s *sseStream) comment(text string) error {
	return s.write([]byte(": " + text + "\n\n"))
}

func (s *sseStream) write(p []byte) error {
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	if err := s.rc.Flush(); err != nil {
		return err
	}
	s.last = time.Now()
	return nil
}

// idle is how long nothing has been written.
func (s *sseStream) idle() time.Duration { return time.Since(s.last) }
