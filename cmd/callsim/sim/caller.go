package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ivrd/media"
	"ivrd/sip/testcaller"
)

// callerLeg is what one caller saw of its call.
type callerLeg struct {
	index   int
	from    string
	callID  string
	abandon time.Duration // > 0: hang up this long after the last key unless connected

	inviteAt, answeredAt time.Time
	firstSoundAt         time.Time // first loud frame after the answer
	digitsAt             time.Time // the last key sent (the answer when there is no path)
	heardAgentAt         time.Time
	outcome              Outcome
	reason, detail       string
	status               int // the rejection's status

	fromAgent *StreamLeg // the agent's audio as the caller heard it (nil: none)
}

// runCaller places one call and follows it to its end.
func (s *sim) runCaller(ctx context.Context, leg *callerLeg) {
	s.inProgress.Add(1)
	defer s.inProgress.Add(-1)
	defer s.count(leg)
	cfg := &s.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.AnswerTimeout)
	call, err := s.phone.Dial(dctx, testcaller.DialOptions{
		Target: cfg.Target,
		From:   leg.from,
		Laws:   []media.Law{media.ULaw},
		Source: NewSpeaker(KindCaller, uint16(leg.index), nil),
		// Keep nothing per packet: rx reads what it needs as packets
		// arrive, and the call tracks when it first heard sound.
		Discard: true,
	})
	cancel()
	if err != nil {
		var rej *testcaller.RejectedError
		switch {
		case errors.As(err, &rej):
			leg.fail(ReasonRejected, fmt.Sprintf("%d %s", rej.Status, rej.Reason))
			leg.status = rej.Status
		case ctx.Err() != nil:
			leg.outcome = CutOff
		case errors.Is(err, context.DeadlineExceeded):
			leg.fail(ReasonNoAnswer, err.Error())
		default:
			leg.fail(ReasonDialError, err.Error())
		}
		s.log.Debug("call failed", "call", leg.index, "reason", leg.reason, "error", err)
		return
	}
	leg.callID, leg.inviteAt, leg.answeredAt = call.ID, call.InviteAt, call.AnsweredAt
	rx := newReceiver(KindAgent)
	var stream streamMeter
	call.OnPacket(func(f testcaller.Frame, payload []byte) {
		if f.PT == media.ULaw.PayloadType() {
			stream.add(f.SSRC, f.Seq, f.TS, f.At)
			rx.packet(payload, f.At)
		}
	})
	defer func() {
		hctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = call.Hangup(hctx) // Close inside: rx is ours from here
		leg.firstSoundAt = call.FirstSoundAt()
		leg.fromAgent = rx.result()
		s.agentToCaller.add(&rx.meter)
		s.fromServer.add(&stream)
		s.log.Debug("call ended", "call_id", leg.callID, "outcome", leg.outcome, "reason", leg.reason)
	}()
	if cfg.FirstPrompt {
		s.awaitPrompt(ctx, call, leg)
		return
	}
	s.follow(ctx, call, rx, leg)
}

// awaitPrompt waits for the first sound after the answer (the first
// prompt): the call is completed once it is heard.
func (s *sim) awaitPrompt(ctx context.Context, call *testcaller.Call, leg *callerLeg) {
	t := time.NewTimer(s.cfg.AnswerTimeout)
	defer t.Stop()
	select {
	case <-call.Sound():
		leg.outcome = Completed
	case <-t.C:
		leg.fail(ReasonNoPrompt, fmt.Sprintf("no sound within %v of the answer", s.cfg.AnswerTimeout))
	case <-call.Bye():
		leg.fail(ReasonNoPrompt, "the server hung up before any sound")
	case <-ctx.Done():
		leg.outcome = CutOff
	}
}

// follow presses the path's keys, waits for the agent (or abandons), talks
// and leaves the call for the caller to hang up; it sets the leg's outcome.
func (s *sim) follow(ctx context.Context, call *testcaller.Call, rx *receiver, leg *callerLeg) {
	cfg := &s.cfg
	// wait sleeps d; false when the call or the run ended first.
	wait := func(d time.Duration, during string) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-call.Bye():
			leg.fail(ReasonHungUpBeforeAgent, during)
		case <-ctx.Done():
			leg.outcome = CutOff
		}
		return false
	}
	leg.digitsAt = leg.answeredAt
	for i := 0; i < len(cfg.Path); i++ {
		gap := cfg.DigitGap
		if i == 0 {
			gap = cfg.DigitDelay
		}
		if !wait(gap, "before the keys were pressed") {
			return
		}
		if err := call.SendDigit(cfg.Path[i], 100*time.Millisecond); err != nil {
			leg.fail(ReasonNoDTMF, err.Error())
			return
		}
		leg.digitsAt = time.Now()
	}
	if len(cfg.Agents) == 0 {
		// No agents in this run: stay the talk time, or until the server
		// ends the call (the path may lead to a goodbye).
		t := time.NewTimer(cfg.Talk)
		defer t.Stop()
		select {
		case <-t.C:
			leg.outcome = Completed
		case <-call.Bye():
			leg.outcome = Completed
		case <-ctx.Done():
			leg.outcome = CutOff
		}
		return
	}

	s.waiting.Add(1)
	agentT := time.NewTimer(cfg.AgentTimeout)
	defer agentT.Stop()
	var abandon <-chan time.Time
	if leg.abandon > 0 {
		t := time.NewTimer(leg.abandon)
		defer t.Stop()
		abandon = t.C
	}
	select {
	case <-rx.heard:
		leg.heardAgentAt = time.Now()
	case <-abandon:
		leg.outcome = Abandoned
	case <-agentT.C:
		leg.fail(ReasonNoAgent, fmt.Sprintf("no agent within %v of the last key", cfg.AgentTimeout))
	case <-call.Bye():
		leg.fail(ReasonHungUpBeforeAgent, "waiting for an agent")
	case <-ctx.Done():
		leg.outcome = CutOff
	}
	s.waiting.Add(-1)
	if leg.outcome != "" {
		return
	}

	s.withAgent.Add(1)
	defer s.withAgent.Add(-1)
	t := time.NewTimer(cfg.Talk)
	defer t.Stop()
	select {
	case <-t.C:
		leg.outcome = Completed // checked for audio both ways once the agent's side is known
	case <-call.Bye():
		leg.fail(ReasonHungUpTalking, "")
	case <-ctx.Done():
		leg.outcome = CutOff
	}
}

func (l *callerLeg) fail(reason, detail string) {
	l.outcome, l.reason, l.detail = Failed, reason, detail
}
