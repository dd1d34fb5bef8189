package sip

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// MaxMessageSize is the largest SIP message we accept. A normal INVITE with
// SDP is 1–3 KiB; carriers with long header chains stay well under this.
// Larger messages get 513 Message Too Large (RFC 3261 §21.5.14).
const MaxMessageSize = 16 * 1024

// sipgo drops a datagram it cannot parse without a word and closes a TCP
// connection on a framing error. RFC 3261 §8.2 wants a 400 for a malformed
// request so the sender stops retransmitting, so every message passes through
// a guard that parses it first and answers the bad ones itself. The second
// parse costs a few microseconds per message and keeps sipgo untouched.

// guard validates raw SIP messages and writes the error responses.
type guard struct {
	parser  *sip.Parser
	log     *slog.Logger
	metrics *Metrics // may be nil
}

// check returns 0 when msg is acceptable, or the status to answer with.
// Responses that fail to parse are dropped (status -1): never answer a
// response. So is anything that does not begin like a request (a method,
// then a space): answering noise would make the server a reflector.
func (g *guard) check(msg []byte) (status int, reason string) {
	if len(msg) > MaxMessageSize {
		return 513, fmt.Sprintf("message of %d bytes exceeds %d", len(msg), MaxMessageSize)
	}
	m, err := g.parser.ParseSIP(msg)
	if err != nil {
		if bytes.HasPrefix(msg, []byte("SIP/2.0 ")) || !looksLikeRequest(msg) {
			return -1, err.Error()
		}
		return 400, err.Error()
	}
	if req, ok := m.(*sip.Request); ok {
		if h := missingHeader(req); h != "" {
			return 400, "missing " + h + " header"
		}
	}
	return 0, ""
}

// missingHeader names a header every request must carry (RFC 3261 §8.1.1)
// that req lacks. sipgo parses such a request without complaint and our
// handlers rely on them being there (an INVITE without From was a nil
// dereference that took the whole server down); without Via or CSeq sipgo
// answers 400 itself, where neither our log nor our metrics see it.
func missingHeader(req *sip.Request) string {
	switch {
	case req.Via() == nil:
		return "Via"
	case req.From() == nil:
		return "From"
	case req.To() == nil:
		return "To"
	case req.CallID() == nil:
		return "Call-ID"
	case req.CSeq() == nil:
		return "CSeq"
	}
	return ""
}

// looksLikeRequest reports whether msg begins with a method token and a
// space (RFC 3261 §25.1: Method = token).
func looksLikeRequest(msg []byte) bool {
	i := bytes.IndexByte(msg, ' ')
	if i <= 0 || i > 32 {
		return false
	}
	for _, b := range msg[:i] {
		switch {
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9':
		case bytes.IndexByte([]byte("-.!%*_+`'~"), b) >= 0:
		default:
			return false
		}
	}
	return true
}

// errorResponse builds a stateless error response to a request we could not
// parse, copying the headers a client needs to match it (RFC 3261 §8.2.6.2)
// straight from the raw text.
func errorResponse(msg []byte, status int, reason string) []byte {
	phrase := "Bad Request"
	if status == 513 {
		phrase = "Message Too Large"
	}
	head := msg
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i]
	}
	if len(head) > MaxMessageSize {
		head = head[:MaxMessageSize]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", status, phrase)
	for _, line := range strings.Split(string(head), "\n") {
		line = strings.TrimRight(line, "\r")
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq":
			b.WriteString(line)
			b.WriteString("\r\n")
		}
	}
	// Warning 399 carries a human-readable hint (RFC 3261 §20.43).
	reason = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, reason)
	if len(reason) > 120 {
		reason = reason[:120]
	}
	fmt.Fprintf(&b, "Warning: 399 ivrd \"%s\"\r\nContent-Length: 0\r\n\r\n", reason)
	return []byte(b.String())
}

// guardedPacketConn answers malformed datagrams and hides them from sipgo.
type guardedPacketConn struct {
	net.PacketConn
	g *guard
}

func (c *guardedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		data := p[:n]
		if len(bytes.Trim(data, "\r\n\x00")) == 0 {
			return n, addr, nil // keep-alive; sipgo knows these
		}
		status, reason := c.g.check(data)
		if status == 0 {
			return n, addr, nil
		}
		c.g.reject(data, status, reason, addr.String(), func(b []byte) error {
			_, err := c.PacketConn.WriteTo(b, addr)
			return err
		})
	}
}

func (g *guard) reject(msg []byte, status int, reason, from string, write func([]byte) error) {
	g.metrics.malformedMsg(status)
	if status < 0 {
		g.log.Debug("dropped malformed SIP response or non-SIP data", "from", from, "error", reason)
		return
	}
	g.log.Warn("rejected malformed SIP message", "from", from, "status", status, "error", reason)
	if err := write(errorResponse(msg, status, reason)); err != nil {
		g.log.Debug("could not send error response", "from", from, "error", err)
		return
	}
	g.metrics.response(rawMethod(msg), status)
}

// guardedListener wraps each accepted TCP connection in a framing guard.
type guardedListener struct {
	net.Listener
	g *guard
}

func (l *guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardedConn{Conn: c, g: l.g}, nil
}

// guardedConn frames the TCP byte stream into messages by Content-Length
// (RFC 3261 §18.3), checks each, answers bad ones with 400 and passes only
// good ones on. A stream whose framing is broken (no or bad Content-Length,
// headers without end) is answered and closed: there is no message boundary
// left to resynchronise on.
type guardedConn struct {
	net.Conn
	g *guard

	mu   sync.Mutex
	in   []byte // raw bytes not yet framed
	out  []byte // validated bytes for sipgo
	err  error  // sticky read error
	rbuf [8192]byte
}

func (c *guardedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.Conn.Read(c.rbuf[:])
		c.in = append(c.in, c.rbuf[:n]...)
		c.frame()
		if err != nil {
			c.err = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	return n, nil
}

// frame moves complete, valid messages from in to out.
func (c *guardedConn) frame() {
	for len(c.in) > 0 {
		// Keep-alive CRLFs between messages go through untouched.
		if c.in[0] == '\r' || c.in[0] == '\n' {
			i := 0
			for i < len(c.in) && (c.in[i] == '\r' || c.in[i] == '\n') {
				i++
			}
			c.out = append(c.out, c.in[:i]...)
			c.in = c.in[i:]
			continue
		}
		end := bytes.Index(c.in, []byte("\r\n\r\n"))
		if end < 0 {
			if len(c.in) > MaxMessageSize {
				c.fail(513, "headers exceed the size limit")
			}
			return
		}
		bodyLen, err := contentLength(c.in[:end])
		if err != nil {
			c.fail(400, err.Error())
			return
		}
		total := end + 4 + bodyLen
		if total > MaxMessageSize {
			c.fail(513, fmt.Sprintf("message of %d bytes exceeds %d", total, MaxMessageSize))
			return
		}
		if len(c.in) < total {
			return
		}
		msg := c.in[:total]
		if status, reason := c.g.check(msg); status != 0 {
			c.g.reject(msg, status, reason, c.RemoteAddr().String(), c.write)
		} else {
			c.out = append(c.out, msg...)
		}
		c.in = c.in[total:]
	}
}

func (c *guardedConn) write(b []byte) error {
	_, err := c.Conn.Write(b)
	return err
}

// fail answers the message at the head of the stream and ends the stream.
func (c *guardedConn) fail(status int, reason string) {
	c.g.reject(c.in, status, reason, c.RemoteAddr().String(), c.write)
	c.in = nil
	c.err = io.EOF
	_ = c.Conn.Close()
}

var errNoContentLength = errors.New("missing Content-Length on a stream transport")

// contentLength finds Content-Length (or its compact form l) in a header block.
func contentLength(head []byte) (int, error) {
	for _, line := range bytes.Split(head, []byte("\r\n"))[1:] {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("Content-Length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad Content-Length %q", bytes.TrimSpace(value))
		}
		return n, nil
	}
	return 0, errNoContentLength
}
