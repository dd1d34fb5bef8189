package agents

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"ivrd/queue"
)

// Events into an agent's goroutine.
type (
	evConn     struct{ c *conn }
	evConnGone struct{ c *conn }
	evMsg      struct {
		c *conn
		m ClientMessage
	}
	// evOffer: the caller's goroutine offers a call (Connect).
	evOffer struct{ o *offer }
	// evConnected: the caller's goroutine connected the accepted call.
	evConnected struct{ o *offer }
	// evEnded: the call is over for this agent; wrap says whether wrap-up
	// follows (the caller reached the agent).
	evEnded struct {
		o      *offer
		reason string
		wrap   bool
	}
	// evRestore: Redis may have lost the agent's state (reconciliation).
	evRestore struct{}
)

// decision is what the agent side tells the caller's goroutine.
type decision struct {
	kind string // accept, decline, hangup, hold, lost
	on   bool   // hold
	peer Peer   // accept: the audio path to bridge
}

// offer is one call offered to one agent; the caller's goroutine owns it
// and reads decisions.
type offer struct {
	info    CallInfo
	decided chan decision
}

func (o *offer) decide(d decision) {
	select {
	case o.decided <- d:
	default: // one decision is pending already; the caller's side acts on it first
	}
}

// agent is one logged-in agent on this instance. Everything below events
// is owned by its goroutine.
type agent struct {
	h      *Hub
	id     Identity
	log    *slog.Logger
	events chan any
	done   chan struct{}

	conns    map[*conn]struct{}
	peer     Peer
	peerConn *conn // the connection the current offer went to
	pending  bool  // the offer waits for its answer
	ring     *offer
	accepted bool // the ring was accepted; waiting for the connection
	call     *offer
	// deferred: offers that arrived before this goroutine heard that the
	// previous call ended (Redis made the agent available first, so they
	// are real: they ring as soon as the end is processed).
	deferred []*offer
	wrap     string // call id in wrap-up
	wrapT    *time.Timer
	graceT   *time.Timer
	leaving  bool // grace expired: finish the call, go offline, end
	// chosen is the state the agent last chose (and its reason), to put
	// back if Redis loses it.
	chosen       queue.AgentState
	chosenReason string
}

func newAgent(h *Hub, id Identity) *agent {
	return &agent{
		h: h, id: id, log: h.log.With("agent", id.ID),
		events: make(chan any, 64), done: make(chan struct{}),
		conns: make(map[*conn]struct{}),
	}
}

// send delivers an event; false when the goroutine has ended.
func (a *agent) send(ev any) bool {
	select {
	case a.events <- ev:
		return true
	case <-a.done:
		return false
	}
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func (a *agent) run() {
	a.h.cfg.Metrics.onlineAdd(1)
	defer a.h.cfg.Metrics.onlineAdd(-1)
	a.log.Info("agent online")
	// Offer this agent only the callers this instance holds.
	ctx, cancel := a.ctx()
	if err := a.h.cfg.Store.SetAgentInstance(ctx, a.id.ID, true); err != nil {
		a.log.Warn("record the agent's instance", "error", err)
	}
	cancel()
	for {
		select {
		case ev := <-a.events:
			a.handle(ev)
		case <-timerC(a.wrapT):
			a.wrapT = nil
			a.endWrapUp("", "", true)
		case <-timerC(a.graceT):
			a.graceT = nil
			a.graceExpired()
		case <-a.peerDone():
			a.peerLost()
		case <-a.h.ctx.Done():
			a.shutdown()
			if a.h.detach(a) {
				return
			}
		}
		if a.leaving && a.ring == nil && a.call == nil && !a.accepted && len(a.conns) == 0 {
			a.goOffline()
			if a.h.detach(a) {
				a.log.Info("agent offline: no connection left")
				return
			}
			a.leaving = false // a connection arrived meanwhile
		}
	}
}

func (a *agent) handle(ev any) {
	switch ev := ev.(type) {
	case evConn:
		a.conns[ev.c] = struct{}{}
		a.leaving = false
		if a.graceT != nil {
			a.graceT.Stop()
			a.graceT = nil
		}
		a.hello(ev.c)
	case evConnGone:
		delete(a.conns, ev.c)
		ev.c.close("")
		if a.peerConn == ev.c {
			a.peerConn = nil
			if a.pending {
				// Its offer will never be answered: offer afresh to a
				// connection that remains (or the next one to arrive).
				_ = a.peer.Close()
				a.peer, a.pending = nil, false
				if len(a.conns) > 0 && a.wantsAudio() {
					a.ensureAudio(nil)
				}
			}
		}
		if len(a.conns) == 0 {
			grace := a.h.cfg.IdleGrace
			if a.ring != nil || a.call != nil || a.accepted {
				grace = a.h.cfg.CallGrace
			}
			a.log.Info("agent disconnected: waiting for a reconnect", "grace", grace)
			a.graceT = time.NewTimer(grace)
		}
	case evMsg:
		a.message(ev.c, ev.m)
	case evOffer:
		a.offered(ev.o)
	case evConnected:
		a.ring, a.accepted, a.call = nil, false, ev.o
		a.broadcast(callMsg{Type: MsgCallConnected, CallID: ev.o.info.CallID})
		a.sendState()
	case evEnded:
		a.ended(ev)
	case evRestore:
		a.restore()
	}
}

// peerLost handles the end of the agent's audio path (failed or closed).
func (a *agent) peerLost() {
	p := a.peer
	if a.ring != nil || a.call != nil {
		a.log.Warn("agent audio lost during a call")
	} else {
		// Between calls: the tab closed, or its network went away
		// (the path logged which).
		a.log.Info("agent audio lost")
	}
	a.peer, a.peerConn = nil, nil
	_ = p.Close()
	if a.ring != nil || a.call != nil {
		o := a.ring
		if o == nil {
			o = a.call
		}
		o.decide(decision{kind: "lost"})
	}
	a.ensureAudio(nil)
}

// peerDone is the current audio path's Done, or nil (never ready) without one.
func (a *agent) peerDone() <-chan struct{} {
	if a.peer == nil {
		return nil
	}
	return a.peer.Done()
}

// restore puts back the agent's chosen state and instance when Redis has
// lost them (it shows the agent offline while the agent is here).
func (a *agent) restore() {
	if len(a.conns) == 0 || a.chosen == "" || a.chosen == queue.Offline || a.ring != nil || a.call != nil {
		return
	}
	ctx, cancel := a.ctx()
	defer cancel()
	ag, err := a.h.cfg.Store.GetAgent(ctx, a.id.ID)
	if err != nil || ag.State != queue.Offline {
		return
	}
	if _, err := a.h.cfg.Store.SetAgentState(ctx, a.id.ID, a.chosen, a.chosenReason); err != nil {
		a.log.Warn("restore the agent's state", "error", err)
		return
	}
	if err := a.h.cfg.Store.SetAgentInstance(ctx, a.id.ID, true); err != nil {
		a.log.Warn("restore the agent's instance", "error", err)
	}
	a.log.Info("agent state restored after Redis lost it", "state", a.chosen)
	a.sendState()
	if a.chosen == queue.Available {
		a.h.cfg.Kick()
	}
}

// wantsAudio: the agent is in a state where calls may come.
func (a *agent) wantsAudio() bool {
	ctx, cancel := a.ctx()
	defer cancel()
	ag, err := a.h.cfg.Store.GetAgent(ctx, a.id.ID)
	return err == nil && ag.State != queue.Offline && ag.State != queue.NotReady
}

func (a *agent) broadcast(v any) {
	for c := range a.conns {
		c.send(v)
	}
}

// hello greets a new connection with the agent's state, and the ringing or
// connected call if there is one.
func (a *agent) hello(c *conn) {
	ctx, cancel := a.ctx()
	defer cancel()
	ag, err := a.h.cfg.Store.GetAgent(ctx, a.id.ID)
	if err != nil {
		c.send(errorMsg{Type: MsgError, Message: "you are not an agent of this queue: " + err.Error()})
		c.close("not an agent")
		return
	}
	m := helloMsg{
		Type: MsgHello, Agent: AgentInfo{ID: a.id.ID, Name: a.id.Name, Skills: ag.Skills},
		State: string(ag.State), Since: stamp(ag.Since), Reason: ag.Reason,
	}
	if a.ring != nil {
		info := a.ring.info
		m.Call = &info
	} else if a.call != nil {
		info := a.call.info
		m.Call = &info
	}
	c.send(m)
	if a.wrap != "" {
		c.send(wrapUpMsg{Type: MsgWrapUp, CallID: a.wrap, TimeoutS: a.h.cfg.WrapUpTimeout.Seconds()})
	}
	if ag.State != queue.Offline && ag.State != queue.NotReady {
		a.ensureAudio(c)
	}
}

func (a *agent) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.h.ctx, 3*time.Second)
}

// sendState reads the agent's state from Redis and tells every connection.
func (a *agent) sendState() {
	ctx, cancel := a.ctx()
	defer cancel()
	ag, err := a.h.cfg.Store.GetAgent(ctx, a.id.ID)
	if err != nil {
		a.log.Warn("read agent state", "error", err)
		return
	}
	a.broadcast(stateMsg{Type: MsgState, State: string(ag.State), Since: stamp(ag.Since), Reason: ag.Reason})
}

// ensureAudio makes sure the agent has a working audio path, offering a
// new one to c (or any connection) when there is none.
func (a *agent) ensureAudio(c *conn) {
	if a.peer != nil {
		return
	}
	if c == nil {
		for cc := range a.conns {
			c = cc
			break
		}
	}
	if c == nil {
		return
	}
	p, err := a.h.cfg.NewPeer(a.id.ID, a.log)
	if err != nil {
		a.log.Error("create the agent's audio path", "error", err)
		c.send(errorMsg{Type: MsgError, Message: "audio unavailable: " + err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(a.h.ctx, 10*time.Second)
	sdp, err := p.Offer(ctx)
	cancel()
	if err != nil {
		_ = p.Close()
		a.log.Error("offer the agent's audio path", "error", err)
		c.send(errorMsg{Type: MsgError, Message: "audio unavailable: " + err.Error()})
		return
	}
	a.peer, a.peerConn, a.pending = p, c, true
	c.send(offerMsg{Type: MsgOffer, SDP: sdp})
}

func (a *agent) message(c *conn, m ClientMessage) {
	fail := func(msg string) { c.send(errorMsg{Type: MsgError, Message: msg}) }
	switch m.Type {
	case MsgState:
		if a.ring != nil || a.call != nil || a.accepted {
			fail("finish the call first")
			return
		}
		if a.wrap != "" {
			a.endWrapUp("", "", false)
		}
		ctx, cancel := a.ctx()
		_, err := a.h.cfg.Store.SetAgentState(ctx, a.id.ID, queue.AgentState(m.State), m.Reason)
		cancel()
		if err != nil {
			fail("cannot change state: " + err.Error())
			a.sendState()
			return
		}
		a.log.Info("agent state", "state", m.State, "reason", m.Reason)
		a.chosen, a.chosenReason = queue.AgentState(m.State), m.Reason
		a.sendState()
		if m.State == string(queue.Available) {
			a.ensureAudio(c)
			a.h.cfg.Kick()
		}
	case MsgAnswer:
		if a.peer == nil || a.peerConn != c || !a.pending {
			fail("no offer is waiting for an answer on this connection")
			return
		}
		if err := a.peer.SetAnswer(m.SDP); err != nil {
			fail("answer refused: " + err.Error())
			return
		}
		a.pending = false
	case MsgAccept, MsgDecline:
		if a.ring == nil || a.accepted || a.ring.info.CallID != m.CallID {
			fail("no such call is ringing")
			return
		}
		if m.Type == MsgDecline {
			a.ring.decide(decision{kind: "decline"})
			return
		}
		a.accepted = true
		a.ring.decide(decision{kind: "accept", peer: a.peer})
	case MsgHangup, MsgHold:
		if a.call == nil || a.call.info.CallID != m.CallID {
			fail("no such call is connected")
			return
		}
		if m.Type == MsgHangup {
			a.call.decide(decision{kind: "hangup"})
		} else {
			a.call.decide(decision{kind: "hold", on: *m.On})
		}
	case MsgWrapUpDone:
		if a.wrap == "" || a.wrap != m.CallID {
			fail("no wrap-up for that call")
			return
		}
		a.endWrapUp(m.Disposition, m.Notes, false)
	}
}

func (a *agent) offered(o *offer) {
	if a.leaving {
		o.decide(decision{kind: "lost"})
		return
	}
	if a.ring != nil || a.call != nil || a.accepted {
		a.deferred = append(a.deferred, o)
		return
	}
	a.ring = o
	a.sendState()
	a.broadcast(callOfferedMsg{Type: MsgCallOffered, CallInfo: o.info})
}

func (a *agent) ended(ev evEnded) {
	if ev.o == a.ring {
		a.ring, a.accepted = nil, false
	}
	if ev.o == a.call {
		a.call = nil
	}
	a.broadcast(callMsg{Type: MsgCallEnded, CallID: ev.o.info.CallID, Reason: ev.reason})
	if ev.wrap {
		a.wrap = ev.o.info.CallID
		a.wrapT = time.NewTimer(a.h.cfg.WrapUpTimeout)
		a.broadcast(wrapUpMsg{Type: MsgWrapUp, CallID: a.wrap, TimeoutS: a.h.cfg.WrapUpTimeout.Seconds()})
	}
	a.sendState()
	if a.ring == nil && a.call == nil && !a.accepted && len(a.deferred) > 0 {
		o := a.deferred[0]
		a.deferred = a.deferred[1:]
		a.offered(o)
	}
}

// endWrapUp records the wrap-up and makes the agent available again
// (unless the agent is leaving).
func (a *agent) endWrapUp(disposition, notes string, auto bool) {
	if a.wrap == "" {
		return
	}
	if a.wrapT != nil {
		a.wrapT.Stop()
		a.wrapT = nil
	}
	w := WrapUp{CallID: a.wrap, Agent: a.id.ID, Disposition: disposition, Notes: notes, Ended: time.Now(), AutoEnded: auto}
	a.wrap = ""
	a.log.Info("wrap-up done", "call_id", w.CallID, "disposition", disposition, "auto", auto)
	if a.h.cfg.OnWrapUp != nil {
		a.h.cfg.OnWrapUp(w)
	}
	if a.leaving {
		return
	}
	ctx, cancel := a.ctx()
	_, err := a.h.cfg.Store.SetAgentState(ctx, a.id.ID, queue.Available, "")
	cancel()
	if err != nil {
		a.log.Warn("end wrap-up", "error", err)
	}
	a.chosen, a.chosenReason = queue.Available, ""
	a.sendState()
	a.ensureAudio(nil)
	a.h.cfg.Kick()
}

// graceExpired: every connection has been gone for the grace period.
func (a *agent) graceExpired() {
	if len(a.conns) > 0 {
		return
	}
	a.leaving = true
	for _, o := range append([]*offer{a.ring, a.call}, a.deferred...) {
		if o != nil {
			o.decide(decision{kind: "lost"})
		}
	}
	a.endWrapUp("", "", true)
}

// goOffline logs the agent out in Redis and closes its audio.
func (a *agent) goOffline() {
	if a.peer != nil {
		_ = a.peer.Close()
		a.peer, a.peerConn = nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := a.h.cfg.Store.SetAgentState(ctx, a.id.ID, queue.Offline, ""); err != nil && !errors.Is(err, queue.ErrNoAgent) {
		a.log.Warn("log the agent out", "error", err)
	}
	if err := a.h.cfg.Store.SetAgentInstance(ctx, a.id.ID, false); err != nil && !errors.Is(err, queue.ErrNoAgent) {
		a.log.Warn("clear the agent's instance", "error", err)
	}
}

// shutdown ends everything for an ivrd shutdown.
func (a *agent) shutdown() {
	a.leaving = true
	for _, o := range append([]*offer{a.ring, a.call}, a.deferred...) {
		if o != nil {
			o.decide(decision{kind: "lost"})
			a.broadcast(callMsg{Type: MsgCallEnded, CallID: o.info.CallID, Reason: EndShutdown})
		}
	}
	for c := range a.conns {
		c.closeAfter("server shutting down")
	}
	a.conns = map[*conn]struct{}{}
	a.endWrapUp("", "", true)
	a.goOffline()
}
