package sip

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"ivrd/media"
)

type eventKind int

const (
	evAck eventKind = iota
	evBye
	evInfo
	evUpdate
	evReInvite
	evRetransmit
)

// event is a request for a call, answered by Call.deliver on the goroutine
// that received it.
type event struct {
	kind eventKind
	req  *sip.Request
	tx   sip.ServerTransaction
}

// Call is one answered call: what we know about the caller, its media
// session and its logger. The Handler reads it; the dialog state behind
// it is under Call.mu.
type Call struct {
	ID        string   // SIP Call-ID, also the call id in every log line
	Caller    Identity // from P-Asserted-Identity, else From
	Dialed    string   // user part of the Request-URI ("support")
	Transport string   // "UDP" or "TCP"
	Source    string   // where the INVITE came from (host:port)
	Media     *media.Session
	Log       *slog.Logger // carries call_id
	// Refused is set when admission refused the call but asked for it to be
	// answered so the caller hears why (Rejection.Announce).
	Refused *Rejection

	srv       *Server
	invite    *sip.Request // the INVITE with our To tag, for building responses
	inviteTx  sip.ServerTransaction
	key       string // the dialog's key in Server.calls
	inviteKey string // the initial INVITE's key in Server.invites
	cseq      uint32 // the INVITE's CSeq

	remoteTarget sip.Uri  // the caller's Contact (RFC 3261 §12.1.1)
	routeSet     []string // Record-Route values, in order (UAS side)
	localSeq     uint32   // our CSeq for requests we send in the dialog

	offer        Offer         // the caller's current offer
	answer       Answer        // our current SDP
	lastResponse *sip.Response // our final response to the INVITE

	// The dialog's state after the answer. The call's one goroutine (the
	// INVITE's handler: it answers, runs the Handler, sends BYE) and the
	// goroutines that bring requests and fire timers share it under mu;
	// requests are answered on the goroutine that received them.
	mu          sync.Mutex
	answered    bool               // our 200 went out: requests are in the dialog
	acked       bool               // its ACK came: the Handler may run
	ending      bool               // the call is ending: no new work
	needBye     bool               // we end it: the call's goroutine sends BYE
	over        bool               // the call takes no more requests
	cancel      context.CancelFunc // cancels the Handler's context
	invite2xx   *pending2xx        // our 200 to the INVITE until its ACK
	reinvite2xx *pending2xx        // our 200 to a re-INVITE until its ACK
	rtpTimer    *time.Timer        // checks that the caller still sends RTP
	wake        chan struct{}      // tells the call's goroutine acked or ending changed

	outcome Outcome
	state   string // for ivrd_calls_in_state: stateRinging, stateAnswered or ""
}

func newCall(s *Server, req *sip.Request, tx sip.ServerTransaction, caller Identity, offer Offer, sess *media.Session, log *slog.Logger) *Call {
	localTag := sip.GenerateTagN(16)
	inv := req.Clone()
	inv.To().Params.Add("tag", localTag)
	remoteTag, _ := req.From().Params.Get("tag")
	cid := callID(req)
	c := &Call{
		ID:           cid,
		Caller:       caller,
		Dialed:       req.Recipient.User,
		Transport:    req.Transport(),
		Source:       req.Source(),
		Media:        sess,
		Log:          log,
		srv:          s,
		invite:       inv,
		inviteTx:     tx,
		key:          dialogKey(cid, localTag, remoteTag),
		cseq:         req.CSeq().SeqNo,
		remoteTarget: *req.Contact().Address.Clone(),
		localSeq:     uint32(rand.IntN(10000) + 1),
		offer:        offer,
		wake:         make(chan struct{}, 1),
	}
	for _, h := range req.GetHeaders("Record-Route") {
		c.routeSet = append(c.routeSet, h.Value())
	}
	c.answer = Answer{
		IP:        s.cfg.PublicIP,
		Port:      sess.LocalPort(),
		Law:       offer.Law,
		DTMFType:  offer.DTMFType,
		DTMFFmtp:  offer.DTMFFmtp,
		Direction: offer.Direction.answer(),
		SessionID: rand.Uint64N(1 << 53),
		Version:   1,
	}
	return c
}

// Hangup asks the call to end: the server sends BYE. Safe to call from any
// goroutine, any number of times.
func (c *Call) Hangup() {
	c.mu.Lock()
	c.end(OutcomeCompleted, true)
	c.mu.Unlock()
}

// deliver answers a request for the call on the caller's goroutine; false
// if the call takes no more requests.
func (c *Call) deliver(ev *event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return false
	}
	if !c.answered {
		c.beforeAnswer(ev)
		return true
	}
	switch ev.kind {
	case evAck:
		switch {
		case c.invite2xx != nil && ev.req.CSeq().SeqNo == c.invite2xx.cseq:
			c.invite2xx.timer.Stop() // pending only while the call is not ending (end stops it)
			c.invite2xx = nil
			c.acked = true
			c.setState(stateAnswered)
			c.signal()
		case c.reinvite2xx != nil && ev.req.CSeq().SeqNo == c.reinvite2xx.cseq:
			c.reinvite2xx.timer.Stop()
			c.reinvite2xx = nil
			c.applyAckAnswer(ev.req)
		}
	case evBye:
		c.respond(ev.tx, ev.req, 200, "OK", nil)
		c.end(OutcomeCallerHangup, false)
	case evInfo:
		c.onInfo(ev)
	case evUpdate:
		c.onUpdate(ev)
	case evReInvite:
		c.onReInvite(ev)
	case evRetransmit:
		if c.lastResponse != nil {
			_ = ev.tx.Respond(c.lastResponse)
		}
	}
	return true
}

// signal wakes the call's goroutine if it waits; c.mu is held.
func (c *Call) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// end starts the call's end: the Handler's context is cancelled and, if
// sendBye, the call's goroutine sends BYE once the Handler has returned.
// The first reason counts. c.mu is held.
func (c *Call) end(o Outcome, sendBye bool) {
	if c.ending {
		return
	}
	c.ending = true
	c.outcome = o
	c.needBye = sendBye
	if c.cancel != nil {
		c.cancel()
	}
	if c.invite2xx != nil {
		c.invite2xx.timer.Stop()
		c.invite2xx = nil
	}
	c.signal()
}

// shutdown ends an answered call because the server must stop now; a call
// still ringing sees the server's hardStop itself.
func (c *Call) shutdown() {
	c.mu.Lock()
	if c.answered {
		c.end(OutcomeShutdown, true)
	}
	c.mu.Unlock()
}

// pending2xx is a 200 OK we retransmit until its ACK arrives (RFC 3261
// §13.3.1.4: T1, doubling up to T2, for 64*T1).
type pending2xx struct {
	res      *sip.Response
	tx       sip.ServerTransaction
	cseq     uint32
	interval time.Duration
	timer    *time.Timer
	deadline time.Time
}

// ring answers the call, on the INVITE handler's goroutine: it rings
// (AnswerDelay) and sends 200. False: the call ended before the answer
// (cancelled, refused by shutdown, the 200 could not be sent) and is
// finished.
func (c *Call) ring(start time.Time) (context.Context, bool) {
	c.setState(stateRinging)
	ctx, ok := c.answer200(start) // finishes the call when not ok
	if !ok {
		c.retire()
	}
	return ctx, ok
}

// retire takes the call out of service: no more requests, no timers, out
// of the calls-in-state gauge. It returns how the call ended.
func (c *Call) retire() Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.over = true
	c.setState("")
	for _, p := range []*pending2xx{c.invite2xx, c.reinvite2xx} {
		if p != nil {
			p.timer.Stop()
		}
	}
	c.invite2xx, c.reinvite2xx = nil, nil
	if c.rtpTimer != nil {
		c.rtpTimer.Stop()
	}
	return c.outcome
}

// converse is the answered call's life to the last BYE, on the call's
// own goroutine: it runs the Handler once the ACK is in, and sends BYE
// when the call ends from our side. Requests and timers change the
// dialog on their own goroutines (deliver), so this is the one goroutine
// a call holds, and its stack is the Handler's.
func (c *Call) converse(ctx context.Context, start time.Time) {
	defer c.closeMedia() // finish closes it first; this covers any other way out
	if c.waitForAck() {
		c.srv.cfg.Handler.HandleCall(ctx, c)
	}
	c.mu.Lock()
	c.end(OutcomeCompleted, true) // the Handler returned: we hang up, unless the call ended already
	bye := c.needBye
	c.mu.Unlock()
	if bye {
		c.sendBye()
	}
	c.finish(c.retire(), start)
}

// answer200 is ring's work; when it returns false it has finished the
// call.
func (c *Call) answer200(start time.Time) (context.Context, bool) {
	s := c.srv
	cancelled := make(chan struct{})
	var cancelOnce sync.Once
	if !c.inviteTx.OnCancel(func(*sip.Request) { cancelOnce.Do(func() { close(cancelled) }) }) {
		c.finishCanceled(start)
		return nil, false
	}
	c.mu.Lock()
	c.respond(c.inviteTx, c.invite, 100, "Trying", nil)
	c.respond(c.inviteTx, c.invite, 180, "Ringing", nil)
	c.mu.Unlock()

	if s.cfg.AnswerDelay > 0 {
		ring := time.NewTimer(s.cfg.AnswerDelay)
		defer ring.Stop()
		select {
		case <-ring.C:
		case <-cancelled:
			// The transaction layer has sent 200 to the CANCEL and will
			// send 487 to the INVITE.
			c.finishCanceled(start)
			return nil, false
		case <-s.hardStop:
			c.mu.Lock()
			c.respond(c.inviteTx, c.invite, 503, "Service Unavailable", nil)
			c.mu.Unlock()
			c.finish(OutcomeShutdown, start)
			return nil, false
		}
	}

	c.mu.Lock()
	ok := c.respond(c.inviteTx, c.invite, 200, "OK", c.answer.Marshal(),
		sip.NewHeader("Content-Type", "application/sdp"),
		sip.NewHeader("Allow", allowed),
	)
	if !ok {
		c.mu.Unlock()
		select {
		case <-cancelled:
			c.finishCanceled(start)
		default:
			c.finish(OutcomeServerError, start)
		}
		return nil, false
	}
	defer c.mu.Unlock()
	c.Log.Info("call answered", "caller", c.Caller.Number, "dialed", c.Dialed, "codec", c.offer.Law.String(),
		"dtmf", dtmfMode(c.offer.DTMFType), "transport", c.Transport, "rtp_port", c.Media.LocalPort())
	c.Media.Start()
	ctx, cancel := context.WithCancel(context.Background())
	c.answered = true
	c.cancel = cancel
	if c.ending { // Hangup while ringing
		cancel()
	} else {
		c.invite2xx = c.pending(c.lastResponse, c.inviteTx, c.cseq, c.noAck)
	}
	if s.cfg.RTPTimeout > 0 {
		c.rtpTimer = time.AfterFunc(s.cfg.RTPTimeout, c.checkRTP)
	}
	select {
	case <-s.hardStop: // Shutdown may have looked at this call before it was answered
		c.end(OutcomeShutdown, true)
	default:
	}
	return ctx, true
}

// waitForAck waits for the ACK of our 200 (true) or the call's end.
func (c *Call) waitForAck() bool {
	for {
		c.mu.Lock()
		acked, ending := c.acked, c.ending
		c.mu.Unlock()
		if ending {
			return false
		}
		if acked {
			return true
		}
		<-c.wake
	}
}

// noAck fires when our 200 to the INVITE was not acknowledged in time.
func (c *Call) noAck() {
	c.Log.Warn("no ACK for our 200 OK: ending the call", "waited", c.srv.cfg.AckTimeout)
	c.end(OutcomeNoAck, true)
}

// noReAck fires when our 200 to a re-INVITE was not acknowledged in time.
func (c *Call) noReAck() {
	c.Log.Warn("no ACK for our 200 OK to re-INVITE: ending the call")
	c.end(OutcomeNoAck, true)
}

// checkRTP ends the call when the caller has sent no RTP for RTPTimeout.
func (c *Call) checkRTP() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending || c.over {
		return
	}
	timeout := c.srv.cfg.RTPTimeout
	idle := time.Since(c.Media.LastReceived())
	if c.offer.Direction != SendRecv || idle < timeout {
		// On hold (sendonly/inactive) a caller may send nothing.
		c.rtpTimer.Reset(max(timeout-idle, time.Second))
		return
	}
	c.Log.Warn("no RTP from the caller: ending the call", "idle", idle.Round(time.Millisecond))
	c.end(OutcomeMediaTimeout, true)
}

// pending starts retransmitting a 200 OK until its ACK; expired runs (with
// c.mu held) when the ACK has not come by AckTimeout.
func (c *Call) pending(res *sip.Response, tx sip.ServerTransaction, cseq uint32, expired func()) *pending2xx {
	p := &pending2xx{
		res:      res,
		tx:       tx,
		cseq:     cseq,
		interval: sip.T1,
		deadline: time.Now().Add(c.srv.cfg.AckTimeout),
	}
	p.timer = time.AfterFunc(sip.T1, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.invite2xx != p && c.reinvite2xx != p {
			return // acknowledged, or the call ended
		}
		if time.Now().After(p.deadline) {
			if c.invite2xx == p {
				c.invite2xx = nil
			} else {
				c.reinvite2xx = nil
			}
			expired()
			return
		}
		c.retransmit(p)
	})
	return p
}

func (c *Call) retransmit(p *pending2xx) {
	if err := p.tx.Respond(p.res); err != nil {
		// The transaction ended (timer L); the transport still works.
		if err := c.srv.srv.WriteResponse(p.res); err != nil {
			c.Log.Debug("retransmit 200 OK", "error", err)
		}
	}
	p.interval = min(2*p.interval, sip.T2)
	p.timer.Reset(p.interval)
}

// finish records how the call ended. It closes the media session first so
// the session's final counts go into the log line and the RTP metrics.
func (c *Call) finish(o Outcome, start time.Time) {
	c.outcome = o
	c.closeMedia()
	st := c.Media.Stats()
	c.srv.cfg.Metrics.rtp(st)
	c.Log.Info("call ended", "outcome", string(o), "duration", time.Since(start).Round(time.Millisecond),
		"rtp_in", st.PacketsIn, "rtp_out", st.PacketsOut, "rtp_lost", st.Lost, "rtp_expected", st.Expected)
}

// finishCanceled ends a call cancelled before the answer. The transaction
// layer answered the CANCEL (200) and the INVITE (487) without us: they
// are counted here.
func (c *Call) finishCanceled(start time.Time) {
	m := c.srv.cfg.Metrics
	m.request("CANCEL")
	m.response("CANCEL", 200)
	m.response("INVITE", 487)
	c.finish(OutcomeCanceled, start)
}

func (c *Call) closeMedia() {
	if err := c.Media.Close(); err != nil {
		c.Log.Warn("close media", "error", err)
	}
}

func (c *Call) setState(st string) {
	c.srv.cfg.Metrics.callState(c.state, st)
	c.state = st
}

// beforeAnswer handles requests that arrive while ringing.
func (c *Call) beforeAnswer(ev *event) {
	switch ev.kind {
	case evInfo:
		c.onInfo(ev)
	case evAck:
	default:
		c.respond(ev.tx, ev.req, 491, "Request Pending", nil)
	}
}

// respond sends a response built from req and remembers final responses to
// the INVITE for retransmission. It reports whether sending worked.
func (c *Call) respond(tx sip.ServerTransaction, req *sip.Request, status int, reason string, body []byte, hdrs ...sip.Header) bool {
	res := sip.NewResponseFromRequest(req, status, reason, body)
	if req.IsInvite() && status > 100 && status < 300 {
		res.AppendHeader(c.srv.contact(c.Transport))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if req == c.invite && status >= 200 {
		c.lastResponse = res
	}
	if err := tx.Respond(res); err != nil {
		c.Log.Debug("respond failed", "status", status, "method", string(req.Method), "error", err)
		return false
	}
	c.srv.cfg.Metrics.response(string(req.Method), status)
	return true
}

func dtmfMode(pt uint8) string {
	if pt == 0 {
		return "inband"
	}
	return "rfc4733"
}

// onInfo answers SIP INFO: DTMF bodies become digits; an empty INFO (some
// devices use it as a keep-alive) gets 200.
func (c *Call) onInfo(ev *event) {
	body := ev.req.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		c.respond(ev.tx, ev.req, 200, "OK", nil)
		return
	}
	ct := ""
	if h := ev.req.ContentType(); h != nil {
		ct = h.Value()
	}
	d, err := parseDTMFInfo(ct, body)
	switch {
	case errors.Is(err, errUnsupportedInfo):
		c.respond(ev.tx, ev.req, 415, "Unsupported Media Type", nil, sip.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
		return
	case err != nil:
		c.respond(ev.tx, ev.req, 400, "Bad Request", nil)
		return
	}
	c.respond(ev.tx, ev.req, 200, "OK", nil)
	c.Log.Debug("DTMF by SIP INFO", "key", string(d.Key))
	c.Media.InjectDigit(d)
}

// onUpdate answers UPDATE (RFC 3311): without a body it is a session
// refresh; with SDP it is a new offer.
func (c *Call) onUpdate(ev *event) {
	if c.ending {
		c.respond(ev.tx, ev.req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if len(ev.req.Body()) == 0 {
		c.respond(ev.tx, ev.req, 200, "OK", nil)
		return
	}
	status, reason := c.applyOffer(ev.req.Body())
	if status != 200 {
		c.respond(ev.tx, ev.req, status, reason, nil)
		return
	}
	c.respond(ev.tx, ev.req, 200, "OK", c.answer.Marshal(), sip.NewHeader("Content-Type", "application/sdp"))
}

// onReInvite answers a re-INVITE (hold, unhold, new address, session
// refresh) without touching the call, and retransmits our 200 until its
// ACK.
func (c *Call) onReInvite(ev *event) {
	switch {
	case c.ending:
		c.respond(ev.tx, ev.req, 481, "Call/Transaction Does Not Exist", nil)
		return
	case c.reinvite2xx != nil:
		// RFC 3261 §14.2: one re-INVITE at a time.
		c.respond(ev.tx, ev.req, 491, "Request Pending", nil)
		return
	}
	if len(ev.req.Body()) > 0 {
		if status, reason := c.applyOffer(ev.req.Body()); status != 200 {
			c.respond(ev.tx, ev.req, status, reason, nil)
			return
		}
	}
	// Without a body the re-INVITE asks for our offer (RFC 3261 §14.2):
	// the current SDP is it, and the answer comes in the ACK.
	if t := ev.req.Contact(); t != nil {
		c.remoteTarget = *t.Address.Clone()
	}
	res := sip.NewResponseFromRequest(ev.req, 200, "OK", c.answer.Marshal())
	res.AppendHeader(c.srv.contact(c.Transport))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	if err := ev.tx.Respond(res); err != nil {
		c.Log.Debug("respond to re-INVITE", "error", err)
		return
	}
	c.srv.cfg.Metrics.response("INVITE", 200)
	c.reinvite2xx = c.pending(res, ev.tx, ev.req.CSeq().SeqNo, c.noReAck)
}

// applyAckAnswer takes the SDP answer from the ACK of an offer-less
// re-INVITE.
func (c *Call) applyAckAnswer(ack *sip.Request) {
	if len(ack.Body()) > 0 {
		c.applyOffer(ack.Body())
	}
}

// applyOffer applies a new offer within the call: a new address, hold or
// unhold. The codec stays what it is (media is already flowing); an offer
// without it gets 488 and leaves the session as it was (RFC 3261 §14.2).
func (c *Call) applyOffer(body []byte) (int, string) {
	off, err := ParseOffer(body)
	if errors.Is(err, ErrBadSDP) {
		return 400, "Bad Request"
	}
	if !off.Has(c.offer.Law) {
		return 488, "Not Acceptable Here"
	}
	changed := false
	if !off.Addr.IP.Equal(c.offer.Addr.IP) || off.Addr.Port != c.offer.Addr.Port {
		if !off.Addr.IP.IsUnspecified() {
			c.Log.Info("caller media address changed", "from", c.offer.Addr.String(), "to", off.Addr.String())
			c.Media.SetRemote(off.Addr)
		}
	}
	if off.Direction != c.offer.Direction {
		c.Log.Info("caller changed media direction", "direction", string(off.Direction))
		changed = true
	}
	c.Media.SetSending(off.Direction.weSend())
	law := c.offer.Law
	c.offer = off
	c.offer.Law = law
	if changed {
		c.answer.Direction = off.Direction.answer()
		c.answer.Version++
	}
	return 200, "OK"
}

// sendBye ends the dialog from our side (RFC 3261 §15.1.1) and waits,
// bounded, for the answer.
func (c *Call) sendBye() {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	c.mu.Lock()
	bye := c.newBye()
	c.mu.Unlock()
	tx, err := c.srv.client.TransactionRequest(ctx, bye, sipgo.ClientRequestAddVia)
	if err != nil {
		c.Log.Warn("send BYE", "error", err)
		return
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			c.Log.Debug("BYE answered", "status", res.StatusCode)
			return
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				c.Log.Warn("BYE not answered", "error", err)
			}
			return
		case <-ctx.Done():
			c.Log.Warn("BYE not answered in time")
			return
		}
	}
}

// newBye builds our BYE in the dialog as it is now; c.mu is held.
func (c *Call) newBye() *sip.Request {
	c.localSeq++
	bye := sip.NewRequest(sip.BYE, *c.remoteTarget.Clone())
	to := c.invite.To()
	from := &sip.FromHeader{DisplayName: to.DisplayName, Address: *to.Address.Clone(), Params: to.Params.Clone()}
	inviteFrom := c.invite.From()
	toHdr := &sip.ToHeader{DisplayName: inviteFrom.DisplayName, Address: *inviteFrom.Address.Clone(), Params: inviteFrom.Params.Clone()}
	cid := sip.CallIDHeader(c.ID)
	maxFwd := sip.MaxForwardsHeader(70)
	bye.AppendHeader(from)
	bye.AppendHeader(toHdr)
	bye.AppendHeader(&cid)
	bye.AppendHeader(&sip.CSeqHeader{SeqNo: c.localSeq, MethodName: sip.BYE})
	bye.AppendHeader(&maxFwd)
	for _, r := range c.routeSet {
		bye.AppendHeader(sip.NewHeader("Route", r))
	}
	bye.AppendHeader(sip.NewHeader("User-Agent", c.srv.cfg.UserAgent))
	bye.SetBody(nil)
	bye.SetTransport(c.Transport)
	bye.SetDestination(c.byeDestination())
	return bye
}

// byeDestination picks where our in-dialog requests go: the first Route
// when the caller came through a proxy that record-routed, otherwise the
// address the INVITE came from. The Contact of a phone behind NAT names an
// address we cannot reach; its source address is where its NAT binding
// (and, for TCP, its connection) is.
func (c *Call) byeDestination() string {
	if len(c.routeSet) > 0 {
		var uri sip.Uri
		var params sip.HeaderParams
		if _, err := sip.ParseAddressValue(c.routeSet[0], &uri, &params); err == nil {
			port := uri.Port
			if port == 0 {
				port = 5060
			}
			return net.JoinHostPort(uri.Host, strconv.Itoa(port))
		}
	}
	if c.Source != "" {
		return c.Source
	}
	return c.remoteTarget.HostPort()
}
