package sip_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"ivrd/sip"
)

// wire is a raw SIP peer over UDP or TCP for tests that must see exactly
// what goes over the wire: retransmissions, CANCEL, missing ACK, garbage.
type wire struct {
	t    *testing.T
	conn net.Conn
	udp  bool
	rd   *bufio.Reader
}

func dialWire(t *testing.T, network, addr string) *wire {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &wire{t: t, conn: c, udp: network == "udp", rd: bufio.NewReaderSize(c, 65536)}
}

func (w *wire) send(msg string) {
	w.t.Helper()
	if _, err := w.conn.Write([]byte(msg)); err != nil {
		w.t.Fatal(err)
	}
}

// read returns the next SIP message within d, or "" on timeout.
func (w *wire) read(d time.Duration) string {
	w.t.Helper()
	_ = w.conn.SetReadDeadline(time.Now().Add(d))
	if w.udp {
		buf := make([]byte, 65536)
		n, err := w.conn.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	var b strings.Builder
	clen := 0
	for {
		line, err := w.rd.ReadString('\n')
		if err != nil {
			return b.String()
		}
		b.WriteString(line)
		if strings.HasPrefix(strings.ToLower(line), "content-length:") {
			fmt.Sscan(strings.TrimSpace(line[len("content-length:"):]), &clen)
		}
		if line == "\r\n" {
			break
		}
	}
	body := make([]byte, clen)
	if _, err := io.ReadFull(w.rd, body); err != nil {
		return b.String()
	}
	return b.String() + string(body)
}

// expect reads until a message whose first line starts with prefix.
func (w *wire) expect(prefix string, d time.Duration) string {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m := w.read(time.Until(deadline))
		if strings.HasPrefix(m, prefix) {
			return m
		}
	}
	w.t.Fatalf("no %q within %v", prefix, d)
	return ""
}

func header(msg, name string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

const offerPCMU = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 49170 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"

func (w *wire) local() string { return w.conn.LocalAddr().String() }

func invite(w *wire, target, callID, branch, sdp string) string {
	tr := "UDP"
	if !w.udp {
		tr = "TCP"
	}
	ct := ""
	if sdp != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	return fmt.Sprintf("INVITE sip:support@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:+14155550100@127.0.0.1>;tag=wire1\r\n"+
		"To: <sip:support@%s>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 INVITE\r\n"+
		"Contact: <sip:caller@%s>\r\n"+
		"%sContent-Length: %d\r\n\r\n%s",
		target, tr, w.local(), branch, target, callID, w.local(), ct, len(sdp), sdp)
}

func ack(w *wire, target, callID, branch, toHdr string, cseq int) string {
	return fmt.Sprintf("ACK sip:support@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:+14155550100@127.0.0.1>;tag=wire1\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d ACK\r\nContent-Length: 0\r\n\r\n",
		target, w.local(), branch, toHdr, callID, cseq)
}

func TestMalformedSIPGets400AndServerKeepsServing(t *testing.T) {
	hs := startServer(t, newDigitHandler(0), nil)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			addr := hs.srv.Addr(network)
			bad := []string{
				"INVITE this is not sip\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n",
				"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKy\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: banana OPTIONS\r\nContent-Length: 0\r\n\r\n",
				"OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", // no Via
				// No From, no To: these used to reach the INVITE handler and crash the server.
				"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKnf\r\nTo: <sip:a@b>\r\nCall-ID: nf\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5>\r\nContent-Type: application/sdp\r\nContent-Length: " + fmt.Sprint(len(offerPCMU)) + "\r\n\r\n" + offerPCMU,
				"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKnt\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: nt\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5>\r\nContent-Type: application/sdp\r\nContent-Length: " + fmt.Sprint(len(offerPCMU)) + "\r\n\r\n" + offerPCMU,
			}
			for i, msg := range bad {
				w := dialWire(t, network, addr)
				w.send(msg)
				res := w.read(2 * time.Second)
				if !strings.HasPrefix(res, "SIP/2.0 400") {
					t.Fatalf("bad message %d: got %q, want 400", i, firstLine(res))
				}
			}
			// Garbage bytes and a response that matches nothing are ignored silently.
			w := dialWire(t, network, addr)
			if network == "udp" {
				w.send("\x00\x01\x02garbage\xff")
				w.send("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4:5;branch=z9hG4bKnope\r\nContent-Length: 0\r\n\r\n")
				if res := w.read(300 * time.Millisecond); res != "" {
					t.Fatalf("garbage or a stray response was answered: %q", firstLine(res))
				}
			}
			// Still serving.
			w = dialWire(t, network, addr)
			w.send(options(w, network))
			if res := w.expect("SIP/2.0 ", 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 200") || !strings.Contains(header(res, "Allow"), "INVITE") {
				t.Fatalf("OPTIONS after garbage: %q", res)
			}
		})
	}
	// Each 400 counted once under the method its request line names; the
	// garbage and the stray response under no response at all.
	hs.wantResponses(t, map[string]float64{"INVITE 400": 6, "OPTIONS 400": 4, "OPTIONS 200": 2})
	if got := hs.metric(t, "ivrd_sip_malformed_total", "status", "400"); got != 10 {
		t.Errorf("malformed answered 400 = %v, want 10", got)
	}
	if got := hs.metric(t, "ivrd_sip_malformed_total", "status", "dropped"); got != 1 {
		t.Errorf("malformed dropped = %v, want 1 (the garbage; sipgo drops the stray response)", got)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

func options(w *wire, network string) string {
	return fmt.Sprintf("OPTIONS sip:ivrd@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bKopt%d\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:ivrd@127.0.0.1>\r\nCall-ID: opt-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		strings.ToUpper(network), w.local(), time.Now().UnixNano(), time.Now().UnixNano())
}

func TestOversizedMessageGets513(t *testing.T) {
	hs := startServer(t, newDigitHandler(0), nil)
	pad := strings.Repeat("x", 64*1024)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			w := dialWire(t, network, hs.srv.Addr(network))
			body := pad
			if network == "udp" {
				body = pad[:60000] // the largest datagram loopback carries is just under 64 KiB
			}
			w.send(fmt.Sprintf("OPTIONS sip:ivrd@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bKbig\r\n"+
				"From: <sip:a@b>;tag=1\r\nTo: <sip:ivrd@127.0.0.1>\r\nCall-ID: big\r\nCSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
				strings.ToUpper(network), w.local(), len(body), body))
			if res := w.read(3 * time.Second); !strings.HasPrefix(res, "SIP/2.0 513") {
				t.Fatalf("got %q, want 513", firstLine(res))
			}
			w = dialWire(t, network, hs.srv.Addr(network))
			w.send(options(w, network))
			if res := w.expect("SIP/2.0 ", 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 200") {
				t.Fatalf("OPTIONS after oversized message: %q", firstLine(res))
			}
		})
	}
	hs.wantResponses(t, map[string]float64{"OPTIONS 513": 2, "OPTIONS 200": 2})
}

func TestNoCommonCodecGets488(t *testing.T) {
	hs := startServer(t, newDigitHandler(0), nil)
	w := dialWire(t, "udp", hs.addr)
	g729 := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
	w.send(invite(w, hs.addr, "nocodec", "nc1", g729))
	res := w.expect("SIP/2.0 488", 3*time.Second)
	if !strings.HasPrefix(header(res, "Warning"), "305") {
		t.Fatalf("488 without Warning 305: %q", res)
	}
	if hs.ports.InUse() != 0 {
		t.Fatal("a rejected call took a media port")
	}
	// Late offer (no SDP) is refused the same way, with a reason.
	w.send(invite(w, hs.addr, "lateoffer", "lo1", ""))
	w.expect("SIP/2.0 488", 3*time.Second)
	// Rejected before ringing: no state was entered, none left below zero.
	hs.wantResponses(t, map[string]float64{"INVITE 488": 2})
	hs.wantNoCallsInState(t)
}

func TestRequestsOutsideDialogGet481(t *testing.T) {
	hs := startServer(t, newDigitHandler(0), nil)
	w := dialWire(t, "udp", hs.addr)
	for _, method := range []string{"BYE", "INFO", "UPDATE", "INVITE"} {
		w.send(fmt.Sprintf("%s sip:ivrd@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s481\r\nMax-Forwards: 70\r\n"+
			"From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:ivrd@127.0.0.1>;tag=nosuchdialog\r\nCall-ID: nodialog\r\nCSeq: 5 %s\r\nContent-Length: 0\r\n\r\n",
			method, hs.addr, w.local(), method, method))
		if res := w.expect("SIP/2.0 ", 3*time.Second); !strings.HasPrefix(res, "SIP/2.0 481") {
			t.Fatalf("%s outside a dialog: %q, want 481", method, firstLine(res))
		}
	}
	// A CANCEL that matches no INVITE: 481 too (RFC 3261 §9.2).
	w.send(fmt.Sprintf("CANCEL sip:support@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKnothing\r\nMax-Forwards: 70\r\n"+
		"From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:support@127.0.0.1>\r\nCall-ID: nothing\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n", hs.addr, w.local()))
	if res := w.expect("SIP/2.0 ", 3*time.Second); !strings.HasPrefix(res, "SIP/2.0 481") {
		t.Fatalf("stray CANCEL: %q, want 481", firstLine(res))
	}
	hs.wantResponses(t, map[string]float64{"BYE 481": 1, "INFO 481": 1, "UPDATE 481": 1, "INVITE 481": 1, "CANCEL 481": 1})
	hs.wantNoCallsInState(t)
}

func TestCancelBeforeAnswer(t *testing.T) {
	h := newDigitHandler(0)
	hs := startServer(t, h, func(c *sip.Config) { c.AnswerDelay = 3 * time.Second })
	w := dialWire(t, "udp", hs.addr)
	w.send(invite(w, hs.addr, "cancel-me", "cx1", offerPCMU))
	w.expect("SIP/2.0 180", 2*time.Second)
	if r, a := hs.inState(t, "ringing"), hs.inState(t, "answered"); r != 1 || a != 0 {
		t.Fatalf("while ringing: ringing %v answered %v, want 1 and 0", r, a)
	}
	w.send(fmt.Sprintf("CANCEL sip:support@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKcx1;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:+14155550100@127.0.0.1>;tag=wire1\r\nTo: <sip:support@%s>\r\nCall-ID: cancel-me\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
		hs.addr, w.local(), hs.addr))
	got200, got487 := false, false
	deadline := time.Now().Add(3 * time.Second)
	for (!got200 || !got487) && time.Now().Before(deadline) {
		m := w.read(time.Until(deadline))
		switch {
		case strings.HasPrefix(m, "SIP/2.0 200") && strings.HasSuffix(header(m, "CSeq"), "CANCEL"):
			got200 = true
		case strings.HasPrefix(m, "SIP/2.0 487") && strings.HasSuffix(header(m, "CSeq"), "INVITE"):
			got487 = true
			w.send(ack(w, hs.addr, "cancel-me", "cx1", header(m, "To"), 1))
		case strings.HasPrefix(m, "SIP/2.0 200"):
			t.Fatal("the INVITE was answered after CANCEL")
		}
	}
	if !got200 || !got487 {
		t.Fatalf("200 to CANCEL: %v, 487 to INVITE: %v", got200, got487)
	}
	hs.waitIdle(t)
	select {
	case <-h.calls:
		t.Fatal("a cancelled call reached the handler")
	default:
	}
	if hs.outcomes(sip.OutcomeCanceled) != 1 {
		t.Fatal("outcome canceled not counted")
	}
	// The transaction layer's 200 and 487 are counted too.
	hs.wantResponses(t, map[string]float64{"INVITE 100": 1, "INVITE 180": 1, "INVITE 487": 1, "CANCEL 200": 1})
	hs.wantNoCallsInState(t)
}

func TestMissingAckRetransmitsThenByes(t *testing.T) {
	h := newDigitHandler(0)
	hs := startServer(t, h, func(c *sip.Config) { c.AckTimeout = 3 * time.Second })
	w := dialWire(t, "udp", hs.addr)
	w.send(invite(w, hs.addr, "no-ack", "na1", offerPCMU))
	var okTimes []time.Time
	var toTag string
	var bye string
	deadline := time.Now().Add(8 * time.Second)
	for bye == "" && time.Now().Before(deadline) {
		m := w.read(time.Until(deadline))
		switch {
		case strings.HasPrefix(m, "SIP/2.0 200"):
			okTimes = append(okTimes, time.Now())
			to := header(m, "To")
			if toTag != "" && to != toTag {
				t.Fatalf("retransmitted 200 changed the To tag: %q vs %q", to, toTag)
			}
			toTag = to
		case strings.HasPrefix(m, "BYE "):
			bye = m
		}
	}
	if bye == "" {
		t.Fatal("no BYE after the ACK timeout")
	}
	// RFC 3261 §13.3.1.4: 200 at 0, T1, 3*T1, 7*T1 …
	if len(okTimes) < 3 {
		t.Fatalf("200 OK sent %d times, want retransmissions", len(okTimes))
	}
	if gap := okTimes[2].Sub(okTimes[1]); gap < 700*time.Millisecond || gap > 1500*time.Millisecond {
		t.Fatalf("second retransmission gap %v, want about 2*T1", gap)
	}
	if !strings.Contains(bye, "Call-ID: no-ack") {
		t.Fatalf("BYE for the wrong call:\n%s", bye)
	}
	w.send(fmt.Sprintf("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: no-ack\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
		header(bye, "Via"), header(bye, "From"), header(bye, "To"), header(bye, "CSeq")))
	hs.waitIdle(t)
	select {
	case <-h.calls:
		t.Fatal("an unacknowledged call reached the handler")
	default:
	}
	if hs.outcomes(sip.OutcomeNoAck) != 1 {
		t.Fatal("outcome no_ack not counted")
	}
	// The 200 went out len(okTimes) times and counts once; the call never
	// left ringing and is in no state now.
	hs.wantResponses(t, map[string]float64{"INVITE 100": 1, "INVITE 180": 1, "INVITE 200": 1})
	hs.wantNoCallsInState(t)
}

func TestRetransmittedInviteIsAbsorbed(t *testing.T) {
	h := newDigitHandler(0)
	hs := startServer(t, h, func(c *sip.Config) { c.AnswerDelay = 300 * time.Millisecond })
	w := dialWire(t, "udp", hs.addr)
	inv := invite(w, hs.addr, "dup-invite", "dup1", offerPCMU)
	w.send(inv)
	time.Sleep(50 * time.Millisecond)
	w.send(inv) // retransmission while ringing
	ok := w.expect("SIP/2.0 200", 3*time.Second)
	w.send(inv) // retransmission after the answer
	w.send(ack(w, hs.addr, "dup-invite", "dupack", header(ok, "To"), 1))
	ctx := ctxT(t, 5*time.Second)
	select {
	case <-h.calls:
	case <-ctx.Done():
		t.Fatal("call not started")
	}
	if n := hs.srv.ActiveCalls(); n != 1 {
		t.Fatalf("%d calls for one INVITE sent three times", n)
	}
	select {
	case <-h.calls:
		t.Fatal("a retransmitted INVITE started a second call")
	case <-time.After(300 * time.Millisecond):
	}
	// The handler ends the call: answer the server's BYE.
	bye := w.expect("BYE ", 5*time.Second)
	w.send(fmt.Sprintf("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: dup-invite\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
		header(bye, "Via"), header(bye, "From"), header(bye, "To"), header(bye, "CSeq")))
	hs.waitIdle(t)
	// Three INVITEs, one set of answers: repeats are not new responses.
	hs.wantResponses(t, map[string]float64{"INVITE 100": 1, "INVITE 180": 1, "INVITE 200": 1})
	hs.wantNoCallsInState(t)
}
