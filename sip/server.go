// Package sip is ivrd's SIP front end: it answers calls over UDP and TCP,
// negotiates G.711 in SDP, owns each dialog (ACK, BYE, CANCEL, re-INVITE,
// INFO) and hands every confirmed call to a Handler together with its media
// session. It is built on github.com/emiago/sipgo's transport and
// transaction layers; dialogs, the call registry and timers are ours.
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"ivrd/media"
)

// Handler runs an answered call. ctx is cancelled when the call ends for any
// reason other than the handler returning (caller hung up, RTP timeout,
// shutdown); when HandleCall returns, the server hangs up with BYE if the
// call is still up.
type Handler interface {
	HandleCall(ctx context.Context, c *Call)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Call)

// HandleCall calls f.
func (f HandlerFunc) HandleCall(ctx context.Context, c *Call) { f(ctx, c) }

// Rejection is a reason to turn a new call away before any media port is
// taken (rate limits, overload).
type Rejection struct {
	Status     int
	Reason     string
	RetryAfter time.Duration // Retry-After header when > 0
	// Announce answers the call anyway and leaves the refusal to the
	// Handler (Call.Refused), which tells the caller in words and hangs
	// up: friendlier than a busy tone for a person dialling again.
	Announce bool
}

func (r *Rejection) Error() string { return fmt.Sprintf("%d %s", r.Status, r.Reason) }

// AdmitFunc decides whether to take a new call; nil means yes.
type AdmitFunc func(ctx context.Context, source string, caller Identity) *Rejection

// Config configures a Server.
type Config struct {
	Listen     string   // host:port for every transport; port 0 picks one (the same for UDP and TCP)
	Transports []string // "udp", "tcp"
	PublicIP   net.IP   // address written into SDP and Contact
	MediaIP    net.IP   // address RTP sockets bind to; default: the listen host
	UserAgent  string

	RTPTimeout  time.Duration // no RTP for this long ends the call; 0 disables
	AckTimeout  time.Duration // 200 OK retransmitted until ACK this long (default 64*T1)
	AnswerDelay time.Duration // ring this long before answering (lets CANCEL matter)
	MaxCalls    int           // new calls beyond this get 503; 0 = no limit

	Ports   *media.PortPool
	Handler Handler
	Admit   AdmitFunc // optional
	Metrics *Metrics  // optional
	Logger  *slog.Logger
}

// Server is the SIP user agent server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	guard  *guard

	mu       sync.Mutex
	calls    map[string]*Call // by dialog key (Call-ID, our tag, their tag)
	invites  map[string]*Call // by initial INVITE key (Call-ID, their tag), to absorb retransmissions
	draining bool
	addrs    map[string]string // transport → bound address

	hardStop  chan struct{} // closed when calls must end now
	stopOnce  sync.Once
	callsWG   sync.WaitGroup
	listeners []func() error
	serveWG   sync.WaitGroup
}

// NewServer builds a server; Start binds it.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("sip: Config.Handler is required")
	}
	if cfg.Ports == nil {
		return nil, errors.New("sip: Config.Ports is required")
	}
	if len(cfg.Transports) == 0 {
		cfg.Transports = []string{"udp", "tcp"}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ivrd"
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 64 * sip.T1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("sip: listen address %q: %w", cfg.Listen, err)
	}
	if cfg.MediaIP == nil {
		cfg.MediaIP = net.ParseIP(host)
		if cfg.MediaIP == nil {
			cfg.MediaIP = net.IPv4zero
		}
	}
	if cfg.PublicIP == nil {
		ip := net.ParseIP(host)
		if ip == nil || ip.IsUnspecified() {
			return nil, fmt.Errorf("sip: a public IP is required when listening on %q", cfg.Listen)
		}
		cfg.PublicIP = ip
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		calls:    make(map[string]*Call),
		invites:  make(map[string]*Call),
		addrs:    make(map[string]string),
		hardStop: make(chan struct{}),
	}
	// sipgo logs every unparseable datagram at error level with its content;
	// our guard reports those, so sipgo's own logs go at warn and above.
	sipgoLog := cfg.Logger.With("component", "sipgo")
	s.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentHostname(cfg.PublicIP.String()),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipgoLog)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipgoLog)),
	)
	if err != nil {
		return nil, fmt.Errorf("sip: create user agent: %w", err)
	}
	s.srv, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(sipgoLog))
	if err != nil {
		return nil, fmt.Errorf("sip: create server: %w", err)
	}
	s.client, err = sipgo.NewClient(s.ua, sipgo.WithClientHostname(cfg.PublicIP.String()), sipgo.WithClientLogger(sipgoLog))
	if err != nil {
		return nil, fmt.Errorf("sip: create client: %w", err)
	}
	s.guard = &guard{parser: sip.NewParser(), log: cfg.Logger, metrics: cfg.Metrics}
	s.srv.OnInvite(s.onInvite)
	s.srv.OnAck(s.onAck)
	s.srv.OnBye(s.onInDialog)
	s.srv.OnInfo(s.onInDialog)
	s.srv.OnUpdate(s.onInDialog)
	s.srv.OnOptions(s.onOptions)
	s.srv.OnCancel(s.onStrayCancel)
	s.srv.OnNoRoute(s.onNoRoute)
	return s, nil
}

// allowed lists the methods we answer, for Allow headers and 405s.
const allowed = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"

// Start binds every configured transport and serves in the background until
// Shutdown. With port 0 the same free port is used for UDP and TCP.
func (s *Server) Start() error {
	host, portStr, _ := net.SplitHostPort(s.cfg.Listen)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("sip: listen port %q: %w", portStr, err)
	}
	for attempt := 0; ; attempt++ {
		err = s.bind(host, port)
		if err == nil {
			return nil
		}
		// With port 0, UDP picked a port that TCP could not have: try again.
		if port != 0 || attempt > 20 {
			return err
		}
	}
}

func (s *Server) bind(host string, port int) error {
	var udp net.PacketConn
	var tcp net.Listener
	var err error
	bound := port
	for _, tr := range s.cfg.Transports {
		switch tr {
		case "udp":
			udp, err = net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(bound)))
			if err != nil {
				return fmt.Errorf("sip: listen udp %s: %w", s.cfg.Listen, err)
			}
			bound = udp.LocalAddr().(*net.UDPAddr).Port
		case "tcp":
			tcp, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(bound)))
			if err != nil {
				if udp != nil {
					_ = udp.Close()
				}
				return fmt.Errorf("sip: listen tcp %s: %w", s.cfg.Listen, err)
			}
			bound = tcp.Addr().(*net.TCPAddr).Port
		default:
			return fmt.Errorf("sip: unknown transport %q", tr)
		}
	}
	if udp != nil {
		s.addrs["udp"] = udp.LocalAddr().String()
		gc := &guardedPacketConn{PacketConn: udp, g: s.guard}
		s.listeners = append(s.listeners, udp.Close)
		s.serveWG.Add(1)
		go func() {
			defer s.serveWG.Done()
			_ = s.srv.ServeUDP(gc)
		}()
	}
	if tcp != nil {
		s.addrs["tcp"] = tcp.Addr().String()
		gl := &guardedListener{Listener: tcp, g: s.guard}
		s.listeners = append(s.listeners, tcp.Close)
		s.serveWG.Add(1)
		go func() {
			defer s.serveWG.Done()
			_ = s.srv.ServeTCP(gl)
		}()
	}
	s.log.Info("SIP listening", "udp", s.addrs["udp"], "tcp", s.addrs["tcp"], "public_ip", s.cfg.PublicIP.String())
	return nil
}

// Addr returns the bound address of a transport ("udp" or "tcp").
func (s *Server) Addr(transport string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[transport]
}

// ActiveCalls returns the number of calls the server holds.
func (s *Server) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.invites)
}

// Shutdown stops taking calls (new INVITEs get 503), waits for the calls in
// progress to end until ctx is done, then ends the rest with BYE and waits
// for those to finish (each BYE is bounded by its own short timeout) before
// closing the listeners.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	n := len(s.invites)
	s.mu.Unlock()
	s.log.Info("SIP shutting down: no new calls", "active_calls", n)

	done := make(chan struct{})
	go func() { s.callsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Info("shutdown grace period over: ending calls", "active_calls", s.ActiveCalls())
		s.stopOnce.Do(func() { close(s.hardStop) })
		s.mu.Lock()
		calls := slices.Collect(maps.Values(s.invites))
		s.mu.Unlock()
		for _, c := range calls {
			c.shutdown()
		}
		<-done
	}
	for _, closeFn := range s.listeners {
		_ = closeFn()
	}
	err := alreadyClosed(s.ua.Close())
	s.serveWG.Wait()
	if err != nil {
		return fmt.Errorf("sip: close user agent: %w", err)
	}
	return nil
}

// alreadyClosed drops from err what only says that a connection was
// closed already — a TCP peer that hung up while we shut down — since
// closing it is what Shutdown wanted; other errors stay.
func alreadyClosed(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var rest []error
		for _, e := range j.Unwrap() {
			if e = alreadyClosed(e); e != nil {
				rest = append(rest, e)
			}
		}
		return errors.Join(rest...)
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// contact is our Contact header for a transport (RFC 3261 §8.1.1.8): where
// the caller sends ACK, BYE and re-INVITE.
func (s *Server) contact(transport string) *sip.ContactHeader {
	_, port, _ := net.SplitHostPort(s.Addr(strings.ToLower(transport)))
	p, _ := strconv.Atoi(port)
	h := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "ivrd", Host: s.cfg.PublicIP.String(), Port: p}}
	if strings.EqualFold(transport, "tcp") {
		h.Address.UriParams = sip.NewParams()
		h.Address.UriParams.Add("transport", "tcp")
	}
	return h
}

func (s *Server) respond(tx sip.ServerTransaction, req *sip.Request, status int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, status, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("respond failed", "status", status, "call_id", callID(req), "error", err)
		return
	}
	s.cfg.Metrics.response(string(req.Method), status)
}

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	s.cfg.Metrics.request("OPTIONS")
	if s.inDialog(req) {
		if c := s.lookup(req); c == nil {
			s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
			return
		}
	}
	s.respond(tx, req, 200, "OK",
		sip.NewHeader("Allow", allowed),
		sip.NewHeader("Accept", "application/sdp, application/dtmf-relay, application/dtmf"),
		sip.NewHeader("Supported", ""),
	)
}

// onStrayCancel answers a CANCEL that matched no INVITE transaction (RFC
// 3261 §9.2: 481). CANCELs that match are handled by the transaction layer:
// 200 to the CANCEL, 487 to the INVITE.
func (s *Server) onStrayCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.cfg.Metrics.request("CANCEL")
	s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}

func (s *Server) onNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	s.cfg.Metrics.request("other")
	if s.inDialog(req) && s.lookup(req) == nil {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	s.respond(tx, req, 405, "Method Not Allowed", sip.NewHeader("Allow", allowed))
}

// inDialog reports whether a request carries a To tag (RFC 3261 §12.2.2).
func (s *Server) inDialog(req *sip.Request) bool {
	to := req.To()
	return to != nil && to.Params.Has("tag")
}

// dialogKey identifies a dialog from our side: Call-ID, our tag, their tag.
func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "\x00" + localTag + "\x00" + remoteTag
}

// lookup finds the call an in-dialog request belongs to.
func (s *Server) lookup(req *sip.Request) *Call {
	to, from := req.To(), req.From()
	if to == nil || from == nil || req.CallID() == nil {
		return nil
	}
	lt, _ := to.Params.Get("tag")
	rt, _ := from.Params.Get("tag")
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[dialogKey(req.CallID().Value(), lt, rt)]
}

func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	s.cfg.Metrics.request("ACK")
	c := s.lookup(req)
	if c == nil {
		return // ACK is never answered (RFC 3261 §17.2.3)
	}
	c.deliver(&event{kind: evAck, req: req})
}

// onInDialog routes BYE, INFO and UPDATE to their call's goroutine, which
// answers them; requests for unknown dialogs get 481.
func (s *Server) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	s.cfg.Metrics.request(string(req.Method))
	c := s.lookup(req)
	if c == nil {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	ev := &event{req: req, tx: tx}
	switch req.Method {
	case sip.BYE:
		ev.kind = evBye
	case sip.INFO:
		ev.kind = evInfo
	case sip.UPDATE:
		ev.kind = evUpdate
	}
	if !c.deliver(ev) {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
	}
}

func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	s.cfg.Metrics.request("INVITE")
	if s.inDialog(req) {
		s.onReInvite(req, tx)
		return
	}
	c := s.newInviteCall(req, tx)
	if c == nil {
		return
	}
	// Ringing and the answer happen on sipgo's goroutine for the INVITE,
	// which returns once the 200 is out (sipgo keeps the transaction for
	// its timers). The answered call then runs on a goroutine of its own,
	// started fresh: its stack holds only the flow's frames (none of
	// sipgo's, nor those of setting the call up), so while the flow waits
	// the collector can shrink it to 8 KB (it halves a stack only while
	// less than a quarter of it is in use).
	start := time.Now()
	ctx, ok := c.ring(start)
	if !ok {
		s.callDone(c)
		return
	}
	go s.converse(ctx, c, start)
}

// converse runs an answered call to its end on the call's goroutine.
func (s *Server) converse(ctx context.Context, c *Call, start time.Time) {
	defer s.callDone(c)
	c.converse(ctx, start)
}

// callDone forgets a call that ended and counts it.
func (s *Server) callDone(c *Call) {
	s.mu.Lock()
	delete(s.invites, c.inviteKey)
	delete(s.calls, c.key)
	s.mu.Unlock()
	s.cfg.Metrics.callFinished(c.outcome)
	s.callsWG.Done()
}

// newInviteCall checks a new INVITE, sets up its media session and
// registers the call, or answers the INVITE itself (a retransmission, a
// rejection) and returns nil.
func (s *Server) newInviteCall(req *sip.Request, tx sip.ServerTransaction) *Call {
	from := req.From()
	remoteTag, _ := from.Params.Get("tag")
	cid := callID(req)
	log := s.log.With("call_id", cid)
	inviteKey := cid + "\x00" + remoteTag

	s.mu.Lock()
	if prev := s.invites[inviteKey]; prev != nil {
		s.mu.Unlock()
		// A retransmission that outlived its transaction (RFC 3261 §17.2.1
		// absorbs the rest): repeat our final answer, start nothing new.
		prev.deliver(&event{kind: evRetransmit, req: req, tx: tx})
		return nil
	}
	if s.draining {
		s.mu.Unlock()
		s.reject(tx, req, log, OutcomeRejected, &Rejection{Status: 503, Reason: "Service Unavailable", RetryAfter: 30 * time.Second}, "shutting down")
		return nil
	}
	if s.cfg.MaxCalls > 0 && len(s.invites) >= s.cfg.MaxCalls {
		s.mu.Unlock()
		s.reject(tx, req, log, OutcomeRejected, &Rejection{Status: 503, Reason: "Service Unavailable", RetryAfter: 5 * time.Second}, "call limit reached")
		return nil
	}
	s.mu.Unlock()

	caller := callerIdentity(req)
	var refused *Rejection
	if s.cfg.Admit != nil {
		if rej := s.cfg.Admit(context.Background(), req.Source(), caller); rej != nil {
			if !rej.Announce {
				s.reject(tx, req, log, OutcomeRejected, rej, "admission refused")
				return nil
			}
			log.Info("admission refused: the caller is told before the call ends", "status", rej.Status, "reason", rej.Reason)
			refused = rej
		}
	}

	// RFC 3261 §13.2.1 allows an INVITE without an offer (the offer then
	// goes in our 200 and the answer in the ACK). We do not take that path:
	// 488 with a Warning says why; see docs/sip.md.
	if len(req.Body()) == 0 {
		s.reject(tx, req, log, OutcomeRejected, &Rejection{Status: 488, Reason: "Not Acceptable Here"}, "INVITE without SDP offer (late offer) is not supported")
		return nil
	}
	if ct := req.ContentType(); ct == nil || !strings.HasPrefix(strings.ToLower(ct.Value()), "application/sdp") {
		s.reject(tx, req, log, OutcomeRejected, &Rejection{Status: 415, Reason: "Unsupported Media Type"}, "body is not application/sdp")
		return nil
	}
	offer, err := ParseOffer(req.Body())
	switch {
	case errors.Is(err, ErrNoCommonCodec):
		s.reject(tx, req, log, OutcomeRejected, &Rejection{Status: 488, Reason: "Not Acceptable Here"}, err.Error(),
			sip.NewHeader("Warning", `305 ivrd "Incompatible media format: PCMU or PCMA required"`))
		return nil
	case err != nil:
		s.reject(tx, req, log, OutcomeRejected, &Rejection{Status: 400, Reason: "Bad Request"}, err.Error())
		return nil
	}
	if req.Contact() == nil {
		s.reject(tx, req, log, OutcomeRejected, &Rejection{Status: 400, Reason: "Bad Request"}, "INVITE without Contact")
		return nil
	}

	sess, err := media.NewSession(media.SessionConfig{
		Ports:    s.cfg.Ports,
		LocalIP:  s.cfg.MediaIP,
		Law:      offer.Law,
		DTMFType: offer.DTMFType,
		Remote:   offer.Addr,
		Logger:   log,
	})
	if err != nil {
		s.reject(tx, req, log, OutcomeServerError, &Rejection{Status: 503, Reason: "Service Unavailable", RetryAfter: 5 * time.Second}, "no media port: "+err.Error())
		return nil
	}

	c := newCall(s, req, tx, caller, offer, sess, log)
	c.Refused = refused
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		_ = sess.Close()
		s.reject(tx, req, log, OutcomeRejected, &Rejection{Status: 503, Reason: "Service Unavailable", RetryAfter: 30 * time.Second}, "shutting down")
		return nil
	}
	c.inviteKey = inviteKey
	s.invites[inviteKey] = c
	s.calls[c.key] = c
	s.callsWG.Add(1)
	s.mu.Unlock()
	s.cfg.Metrics.callStarted()
	return c
}

// onReInvite hands an INVITE inside a dialog to its call.
func (s *Server) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := s.lookup(req)
	if c == nil {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	ev := &event{kind: evReInvite, req: req, tx: tx}
	if !c.deliver(ev) {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
	}
}

// reject answers a new INVITE with an error and logs why.
func (s *Server) reject(tx sip.ServerTransaction, req *sip.Request, log *slog.Logger, outcome Outcome, rej *Rejection, why string, hdrs ...sip.Header) {
	if rej.RetryAfter > 0 {
		secs := int((rej.RetryAfter + time.Second - 1) / time.Second)
		hdrs = append(hdrs, sip.NewHeader("Retry-After", strconv.Itoa(secs)))
	}
	log.Info("call rejected", "status", rej.Status, "reason", why, "from", req.Source())
	s.cfg.Metrics.callRejected(outcome)
	s.respond(tx, req, rej.Status, rej.Reason, hdrs...)
}
