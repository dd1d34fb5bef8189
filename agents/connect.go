package agents

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ivrd/ivr"
	"ivrd/media"
	"ivrd/queue"
)

// sessionChannel is an ivr.Channel that can give its media session
// (ivr.MediaChannel does).
type sessionChannel interface {
	Session() *media.Session
}

// Connect implements queue.Connector. It runs in the caller's goroutine:
// it offers the call to the agent Redis reserved, waits for the agent's
// decision, bridges the media, and stays until the call ends or the
// caller must wait again. Every Redis transition of the call is made here;
// the agent's goroutine only talks to the agent.
func (h *Hub) Connect(ctx context.Context, ch ivr.Channel, call *ivr.Call, m queue.Match) (queue.ConnectResult, error) {
	st := h.cfg.Store
	log := h.log.With("call_id", call.ID, "agent", m.Agent, "skill", m.Skill)
	requeue := func(state queue.AgentState, reason string) (queue.ConnectResult, error) {
		rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := st.Requeue(rctx, call.ID, m.Agent, state, reason); err != nil {
			return queue.Requeued, fmt.Errorf("requeue after %s: %w", reason, err)
		}
		h.cfg.Kick()
		return queue.Requeued, nil
	}
	sc, ok := ch.(sessionChannel)
	if !ok {
		return queue.Requeued, errors.New("agents: the call's channel has no media session")
	}
	a := h.lookup(m.Agent)
	o := &offer{info: callInfo(call, m, h.cfg.RingTimeout), decided: make(chan decision, 1)}
	if a == nil || !a.send(evOffer{o: o}) {
		// Redis had the agent available, but the agent has no session here
		// (stale state, or logged in on another instance).
		log.Warn("matched agent has no session on this instance: back to the queue")
		h.cfg.Metrics.offer("failed")
		return requeue(queue.NotReady, "not connected")
	}
	ended := func(reason string, wrap bool) { a.send(evEnded{o: o, reason: reason, wrap: wrap}) }
	// callerGone: the caller hung up before the call was connected. The
	// agent is freed now, so the agent's screen and Redis agree at once.
	callerGone := func() (queue.ConnectResult, error) {
		rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := st.Abandon(rctx, call.ID)
		cancel()
		ended(EndCallerGone, false)
		h.cfg.Metrics.offer("caller_gone")
		h.cfg.Kick()
		return queue.Requeued, errors.Join(ctx.Err(), err)
	}
	log.Info("call offered to the agent")

	// Ringing.
	ring := time.NewTimer(h.cfg.RingTimeout)
	defer ring.Stop()
	var d decision
	select {
	case <-ctx.Done():
		return callerGone()
	case <-ring.C:
		log.Info("no answer: the agent missed the call")
		h.cfg.Metrics.offer("missed")
		res, err := requeue(queue.NotReady, "missed call")
		ended(EndMissed, false)
		return res, err
	case d = <-o.decided:
	}
	switch d.kind {
	case "decline":
		log.Info("the agent declined")
		h.cfg.Metrics.offer("declined")
		state, reason := queue.Available, ""
		if h.cfg.DeclineNotReady {
			state, reason = queue.NotReady, "declined"
		}
		res, err := requeue(state, reason)
		ended(EndDeclined, false)
		return res, err
	case "lost":
		log.Warn("the agent's connection was lost while the call rang")
		h.cfg.Metrics.offer("agent_lost")
		res, err := requeue(queue.NotReady, "connection lost")
		ended(EndAgentLost, false)
		return res, err
	}

	// Accepted: the audio path must be up.
	accepted := time.Now()
	if d.peer == nil {
		h.cfg.Metrics.offer("agent_lost")
		res, err := requeue(queue.NotReady, "no audio")
		ended(EndAgentLost, false)
		return res, err
	}
	select {
	case <-d.peer.Ready():
	case <-time.After(h.cfg.ReadyTimeout):
		log.Warn("the agent accepted but its audio never came up")
		h.cfg.Metrics.offer("agent_lost")
		res, err := requeue(queue.NotReady, "no audio")
		ended(EndAgentLost, false)
		return res, err
	case <-ctx.Done():
		return callerGone()
	}
	waited, err := st.Accept(ctx, call.ID, m.Agent)
	if err != nil {
		// The caller left just as the agent accepted.
		log.Info("accept came too late", "error", err)
		ended(EndCallerGone, false)
		h.cfg.Metrics.offer("caller_gone")
		if ctx.Err() != nil {
			return queue.Requeued, ctx.Err()
		}
		return queue.Requeued, err
	}
	bridge, err := d.peer.Bridge(sc.Session())
	if err != nil {
		log.Error("bridge the call to the agent", "error", err)
		h.cfg.Metrics.offer("failed")
		res, rerr := requeue(queue.NotReady, "audio failed")
		ended(EndAgentLost, false)
		return res, errors.Join(err, rerr)
	}
	h.cfg.Metrics.offer("accepted")
	call.Mark("agent", m.Agent)
	a.send(evConnected{o: o})
	log.Info("caller connected to the agent", "waited", waited)
	go func() {
		select {
		case <-bridge.FirstAudio():
			lat := time.Since(accepted)
			h.cfg.Metrics.audio(lat.Seconds())
			log.Info("first caller audio sent to the agent", "after_accept", lat)
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
	}()

	// Connected.
	var hold *holdMusic
	defer func() {
		hold.stop()
		call.Mark("agent_end", m.Agent)
	}()
	for {
		select {
		case <-ctx.Done():
			hold.stop()
			bridge.Stop()
			h.complete(call.ID, log)
			ended(EndCallerHangup, true)
			return queue.Connected, nil
		case d := <-o.decided:
			switch d.kind {
			case "hangup":
				hold.stop()
				bridge.Stop()
				h.complete(call.ID, log)
				ended(EndAgentHangup, true)
				log.Info("the agent hung up")
				return queue.Connected, nil
			case "hold":
				bridge.Hold(d.on)
				if d.on && hold == nil {
					hold = startHold(ctx, ch, h.cfg.HoldPrompt)
					call.Mark("hold", "")
				} else if !d.on && hold != nil {
					hold.stop()
					hold = nil
					call.Mark("hold_end", "")
				}
				log.Info("hold", "on", d.on)
			case "lost":
				hold.stop()
				hold = nil
				bridge.Stop()
				log.Warn("the agent's connection was lost mid-call: the caller goes back to the head of the queue")
				h.cfg.Metrics.offer("agent_lost")
				if err := ch.Play(ctx, h.cfg.LostPrompt); err != nil && ctx.Err() != nil {
					h.complete(call.ID, log)
					ended(EndCallerHangup, false)
					return queue.Connected, nil
				}
				res, err := requeue(queue.NotReady, "connection lost")
				call.Mark("queue", m.Skill)
				ended(EndAgentLost, false)
				return res, err
			}
		}
	}
}

// complete ends the call in Redis: the agent goes to wrap-up.
func (h *Hub) complete(callID string, log interface{ Warn(string, ...any) }) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := h.cfg.Store.Complete(ctx, callID); err != nil {
		log.Warn("complete the call", "error", err)
	}
}

// holdMusic plays a prompt in a loop to a caller on hold.
type holdMusic struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startHold(ctx context.Context, ch ivr.Channel, prompt string) *holdMusic {
	hctx, cancel := context.WithCancel(ctx)
	hm := &holdMusic{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(hm.done)
		for hctx.Err() == nil {
			if err := ch.Play(hctx, prompt); err != nil {
				return
			}
		}
	}()
	return hm
}

func (hm *holdMusic) stop() {
	if hm == nil {
		return
	}
	hm.cancel()
	<-hm.done
}

// callInfo is the screen pop for a call.
func callInfo(call *ivr.Call, m queue.Match, ring time.Duration) CallInfo {
	info := CallInfo{
		CallID: call.ID, Skill: m.Skill,
		Caller:       CallerInfo{Number: call.Number, Name: call.Caller.Name, CustomerID: call.Caller.CustomerID, Tier: call.Caller.Tier},
		IVR:          IVRInfo{Choices: []Choice{}, Vars: call.Vars},
		RingTimeoutS: ring.Seconds(),
	}
	if call.Caller.Number != "" {
		info.Caller.Number = call.Caller.Number
	}
	if info.Caller.Name == "" {
		info.Caller.Name = call.DisplayName
	}
	for _, c := range call.Choices {
		info.IVR.Choices = append(info.IVR.Choices, Choice{Node: c.Node, Input: c.Input})
	}
	if !call.Queued.IsZero() {
		info.WaitedS = time.Since(call.Queued).Round(time.Second).Seconds()
	}
	return info
}
