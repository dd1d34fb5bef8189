// Package testcaller is a SIP phone for tests and load generation: it dials
// a SIP server with a G.711 offer, sends and receives real RTP, presses keys
// as RFC 4733 events, in-band tones or SIP INFO, measures what it hears and
// notices the server's BYE. Tests, the load generator and users can import
// it; it only speaks SIP and RTP, so it can dial any server.
package testcaller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"ivrd/media"
)

// PhoneConfig configures a Phone.
type PhoneConfig struct {
	Transport string // "udp" (default) or "tcp"
	LocalIP   string // default 127.0.0.1
	Logger    *slog.Logger
	// SharedRTP puts every call's RTP on a few sockets of the phone
	// (sharedSockets, calls taking turns), as a trunk's media gateway
	// may: a call sends from its socket and offers it in its SDP, and
	// what arrives is told apart by the server's address (a port of its
	// own for each call). One goroutine per socket reads it in batches
	// (recvmmsg), a packet's arrival is the kernel's receive stamp, and
	// each millisecond's packets go out in one sendmmsg. It spares a load
	// generator a socket, a goroutine and a wake-up per call and packet.
	// Packets that arrive before the call has read the server's answer
	// are not heard (StrayRTP counts them). A call on it cannot move its
	// RTP.
	SharedRTP bool
}

// Phone is one SIP endpoint that can hold many calls at once.
type Phone struct {
	cfg    PhoneConfig
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	dc     *sipgo.DialogClientCache
	addr   string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	shared []*sharedRTP // with PhoneConfig.SharedRTP; calls take turns
	turn   atomic.Uint32

	mu    sync.Mutex
	calls map[string]*Call // by Call-ID
}

// NewPhone starts a phone listening on LocalIP with a free port.
func NewPhone(cfg PhoneConfig) (*Phone, error) {
	if cfg.Transport == "" {
		cfg.Transport = "udp"
	}
	if cfg.LocalIP == "" {
		cfg.LocalIP = "127.0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Phone{cfg: cfg, calls: make(map[string]*Call)}
	var err error
	p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("ivrd-testcaller"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(cfg.Logger)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(cfg.Logger)))
	if err != nil {
		return nil, fmt.Errorf("testcaller: user agent: %w", err)
	}
	p.srv, err = sipgo.NewServer(p.ua, sipgo.WithServerLogger(cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("testcaller: server: %w", err)
	}
	p.client, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname(cfg.LocalIP), sipgo.WithClientLogger(cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("testcaller: client: %w", err)
	}
	p.srv.OnBye(p.onBye)
	p.srv.OnInvite(p.onReInvite)
	p.srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})

	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	ready := make(chan string, 1)
	//lint:ignore SA1029 the key's type is sipgo's, not ours
	ctx = context.WithValue(ctx, sipgo.ListenReadyCtxKey, sipgo.ListenReadyFuncCtxValue(func(_, addr string) { ready <- addr }))
	errc := make(chan error, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		errc <- p.srv.ListenAndServe(ctx, cfg.Transport, net.JoinHostPort(cfg.LocalIP, "0"))
	}()
	select {
	case p.addr = <-ready:
	case err := <-errc:
		cancel()
		return nil, fmt.Errorf("testcaller: listen: %w", err)
	case <-time.After(5 * time.Second):
		cancel()
		return nil, errors.New("testcaller: listen: timed out")
	}
	host, portStr, _ := net.SplitHostPort(p.addr)
	port, _ := strconv.Atoi(portStr)
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: host, Port: port}}
	if cfg.Transport == "tcp" {
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", "tcp")
	}
	p.dc = sipgo.NewDialogClientCache(p.client, contact)
	if cfg.SharedRTP {
		for range sharedSockets {
			sh, err := newSharedRTP(cfg.LocalIP)
			if err != nil {
				_ = p.Close()
				return nil, err
			}
			p.shared = append(p.shared, sh)
		}
	}
	return p, nil
}

// Addr is where the phone listens for SIP.
func (p *Phone) Addr() string { return p.addr }

// Close hangs nothing up; it stops the phone's SIP listener. Close calls first.
func (p *Phone) Close() error {
	p.cancel()
	err := p.ua.Close()
	p.wg.Wait()
	for _, sh := range p.shared {
		sh.close()
	}
	return err
}

// StrayRTP is how many packets reached the phone's shared RTP sockets
// from an address no call knew (0 without PhoneConfig.SharedRTP).
func (p *Phone) StrayRTP() int {
	n := 0
	for _, sh := range p.shared {
		n += sh.Strays()
	}
	return n
}

// DroppedRTP is how many packets the system dropped on their way into the
// phone's shared RTP sockets because their buffers were full (the phone
// read too slowly: its own loss, not the server's). ok is false where the
// system does not tell (off Linux) or without PhoneConfig.SharedRTP.
func (p *Phone) DroppedRTP() (n int, ok bool) {
	if len(p.shared) == 0 {
		return 0, false
	}
	ports := make(map[int]bool, len(p.shared))
	for _, sh := range p.shared {
		ports[sh.conn.LocalAddr().(*net.UDPAddr).Port] = true
	}
	return udpDrops(ports)
}

func (p *Phone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	p.mu.Lock()
	c := p.calls[req.CallID().Value()]
	p.mu.Unlock()
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	if err := p.dc.ReadBye(req, tx); err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	c.byeOnce.Do(func() {
		c.byeAt = time.Now()
		close(c.bye)
	})
}

// onReInvite answers a server-side re-INVITE with our SDP (ivrd does not
// send them yet; answering keeps the phone usable against other servers).
func (p *Phone) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	p.mu.Lock()
	c := p.calls[req.CallID().Value()]
	p.mu.Unlock()
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", c.localSDP(sendRecv))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	_ = tx.Respond(res)
}

// DialOptions describe one call.
type DialOptions struct {
	Target      string // e.g. "sip:support@127.0.0.1:5060"
	From        string // caller number (From user)
	DisplayName string
	PAI         string      // optional P-Asserted-Identity URI, e.g. "tel:+14155550100"
	Laws        []media.Law // offered codecs in order; default PCMU, PCMA
	NoDTMFEvent bool        // leave telephone-event out of the offer (forces in-band DTMF)
	DTMFType    uint8       // telephone-event payload type; default 101
	SDP         []byte      // send this offer verbatim instead of building one
	NoSDP       bool        // send the INVITE without a body
	Headers     []sip.Header
	Source      Source // what we send; default silence
	KeepFrames  bool   // keep every received frame's PCM (for analysis)
	// Discard keeps no received frame: only the OnPacket function sees
	// them, and Frames stays empty (WaitSound and WaitSilence return
	// ErrDiscarding). FirstSoundAt and Received still count. For load
	// generators, whose calls must not grow with their length.
	Discard bool
}

// Dial calls Target and returns once the call is answered and acknowledged
// and RTP is flowing. Cancelling ctx before the answer sends CANCEL.
func (p *Phone) Dial(ctx context.Context, o DialOptions) (*Call, error) {
	var target sip.Uri
	if err := sip.ParseUri(o.Target, &target); err != nil {
		return nil, fmt.Errorf("testcaller: target %q: %w", o.Target, err)
	}
	if len(o.Laws) == 0 {
		o.Laws = []media.Law{media.ULaw, media.ALaw}
	}
	if o.DTMFType == 0 {
		o.DTMFType = 101
	}
	if o.NoDTMFEvent {
		o.DTMFType = 0
	}
	conn, shared, err := p.rtpSocket()
	if err != nil {
		return nil, err
	}
	c := &Call{
		phone:   p,
		opts:    o,
		rtp:     conn,
		shared:  shared,
		ssrc:    rand.Uint32(),
		seq:     uint16(rand.IntN(1 << 15)),
		ts:      rand.Uint32(),
		bye:     make(chan struct{}),
		sound:   make(chan struct{}),
		stop:    make(chan struct{}),
		digitsQ: make(chan []outFrame, 16),
	}
	body := o.SDP
	if body == nil && !o.NoSDP {
		body = c.localSDP(sendRecv)
	}
	from := o.From
	if from == "" {
		from = "anonymous"
	}
	fromParams := sip.NewParams()
	fromParams.Add("tag", sip.GenerateTagN(10))
	hdrs := []sip.Header{
		&sip.FromHeader{DisplayName: o.DisplayName, Address: sip.Uri{Scheme: "sip", User: from, Host: p.cfg.LocalIP}, Params: fromParams},
	}
	if body != nil {
		hdrs = append(hdrs, sip.NewHeader("Content-Type", "application/sdp"))
	}
	if o.PAI != "" {
		hdrs = append(hdrs, sip.NewHeader("P-Asserted-Identity", "<"+o.PAI+">"))
	}
	hdrs = append(hdrs, o.Headers...)
	req := sip.NewRequest(sip.INVITE, target)
	req.SetTransport(strings.ToUpper(p.cfg.Transport))
	req.SetBody(body)
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	sess, err := p.dc.WriteInvite(ctx, req)
	if err != nil {
		p.releaseRTP(conn)
		return nil, fmt.Errorf("testcaller: send INVITE: %w", err)
	}
	c.sess = sess
	c.ID = req.CallID().Value()
	p.mu.Lock()
	p.calls[c.ID] = c
	p.mu.Unlock()
	c.InviteAt = time.Now()

	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		c.forget()
		_ = sess.Close()
		p.releaseRTP(conn)
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			return nil, &RejectedError{Status: de.Res.StatusCode, Reason: de.Res.Reason, Response: de.Res}
		}
		return nil, fmt.Errorf("testcaller: wait answer: %w", err)
	}
	c.AnsweredAt = time.Now()
	if err := c.readAnswer(sess.InviteResponse); err != nil {
		_ = sess.Ack(ctx)
		_ = sess.Bye(ctx)
		c.forget()
		_ = sess.Close()
		p.releaseRTP(conn)
		return nil, err
	}
	if err := sess.Ack(ctx); err != nil {
		c.forget()
		_ = sess.Close()
		p.releaseRTP(conn)
		return nil, fmt.Errorf("testcaller: ACK: %w", err)
	}
	c.start()
	return c, nil
}

// rtpSocket is the socket a new call's RTP uses: its own, or one of the
// phone's shared ones (then sh is that one).
func (p *Phone) rtpSocket() (conn *net.UDPConn, sh *sharedRTP, err error) {
	if len(p.shared) > 0 {
		sh = p.shared[p.turn.Add(1)%uint32(len(p.shared))]
		return sh.conn, sh, nil
	}
	conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(p.cfg.LocalIP)})
	if err != nil {
		return nil, nil, fmt.Errorf("testcaller: rtp socket: %w", err)
	}
	return conn, nil, nil
}

// releaseRTP closes the socket of a call that did not start, unless it is
// a shared one.
func (p *Phone) releaseRTP(conn *net.UDPConn) {
	for _, sh := range p.shared {
		if conn == sh.conn {
			return
		}
	}
	conn.Close()
}

// RejectedError is a final non-2xx answer to our INVITE.
type RejectedError struct {
	Status   int
	Reason   string
	Response *sip.Response
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("testcaller: call rejected: %d %s", e.Status, e.Reason)
}
