package queue

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"time"

	"ivrd/ivr"
)

// session is one call's stay in the queue, run by the call's goroutine.
type session struct {
	q    *Queue
	ch   ivr.Channel
	call *ivr.Call
	req  ivr.QueueRequest
	w    *waiter
	log  *slog.Logger

	inQueue  bool // Redis holds the call as waiting or offered: on exit it must be removed
	lastPos  int  // the last position announced; a larger one is never said
	lastWait int  // the last estimate announced, rounded minutes; -1: none yet
}

// playback is prompts playing while the session listens for digits,
// offers and timers; on a media channel the pacer plays them, with no
// goroutine of the call's own.
type playback struct {
	pb   ivr.Playback
	done <-chan error
}

func (s *session) play(ctx context.Context, prompts []string) *playback {
	pb := ivr.StartPlay(ctx, s.ch, prompts...)
	return &playback{pb: pb, done: pb.Done()}
}

// stop ends the playback and waits for its result.
func (p *playback) stop() {
	if p == nil {
		return
	}
	p.pb.Stop()
	<-p.done
}

func (s *session) announceEvery() time.Duration {
	if s.req.AnnounceEvery > 0 {
		return s.req.AnnounceEvery
	}
	if sk := s.q.cfg.Skills[s.w.entry.Skill]; sk.AnnounceEvery > 0 {
		return sk.AnnounceEvery
	}
	return s.q.cfg.AnnounceEvery
}

// run waits until the call is connected and over, leaves the queue (an
// option, max wait), or ctx ends. It returns the node to continue with.
func (s *session) run(ctx context.Context) (string, error) {
	s.inQueue = true
	s.lastPos = math.MaxInt
	s.lastWait = -1
	var maxWait <-chan time.Time
	if s.req.MaxWait > 0 {
		maxWait = s.q.after(s.req.MaxWait)
	}
	announceAt := s.q.after(s.q.cfg.FirstAnnounceAfter)
	poll := s.q.after(s.q.cfg.StatePoll)
	announceDue := false

	for {
		var prompts []string
		announcing := false
		if announceDue {
			announceDue = false
			prompts = s.announcement(ctx)
			announcing = len(prompts) > 0
		}
		if !announcing {
			prompts = []string{PromptHoldMusic}
		}
		p := s.play(ctx, prompts)

	segment:
		for {
			select {
			case err := <-p.done:
				if err != nil && ctx.Err() == nil {
					return "", err
				}
				break segment

			case <-ctx.Done():
				p.stop()
				return "", ctx.Err()

			case m := <-s.w.offers:
				p.stop()
				if done, err := s.connect(ctx, m); done || err != nil {
					return "", err
				}
				announceAt = s.q.after(s.announceEvery())
				break segment

			case d := <-s.ch.Digits():
				target, ok := s.req.Options[d.Key]
				if !ok {
					s.log.Debug("key ignored while waiting", "key", string(d.Key))
					continue
				}
				p.stop()
				if target == ivr.QueueCallbackOption {
					done, err := s.callback(ctx)
					if done || err != nil {
						return "", err
					}
					break segment
				}
				s.leave(ctx, LeftMenu)
				s.log.Info("caller left the queue by key", "key", string(d.Key), "next", target)
				return target, nil

			case <-announceAt:
				announceAt = s.q.after(s.announceEvery())
				announceDue = true
				if !announcing {
					p.stop() // interrupt the music, not an announcement
					break segment
				}

			case <-poll:
				poll = s.q.after(s.q.cfg.StatePoll)
				if s.checkEntry(ctx) {
					announceDue = true
					if !announcing {
						p.stop()
						break segment
					}
				}

			case <-maxWait:
				maxWait = nil
				p.stop()
				if next, leave := s.maxWaitReached(ctx); leave {
					return next, nil
				}
				announceAt = s.q.after(s.q.cfg.FirstAnnounceAfter)
				break segment
			}
		}
	}
}

// announcement builds what the caller hears about their place: the
// position (never a larger number than last time: a caller inserted ahead
// with priority must not make the count go up), the estimate, and the
// options. It returns nil for a caller about to be answered.
func (s *session) announcement(ctx context.Context) []string {
	skill := s.w.entry.Skill
	pos, err := s.q.st.Position(ctx, skill, s.call.ID)
	if err != nil {
		if !errors.Is(err, ErrGone) { // Redis trouble: keep the caller company
			s.log.Warn("no position to announce", "error", err)
		}
		return []string{PromptPleaseHold}
	}
	snap, err := s.q.snapshot(ctx, skill)
	if err != nil {
		s.log.Warn("no estimate to announce", "error", err)
		return []string{PromptPleaseHold}
	}
	wait, ok := Estimate(&snap, pos, s.q.cfg.Estimate)
	if pos == 1 && (snap.AgentsIn(Available) > 0 || (ok && wait < 30*time.Second)) {
		return nil // about to be answered: music, not a speech cut off mid-sentence
	}
	var out []string
	if pos <= s.lastPos {
		if pp := PositionPrompts(pos); pp != nil {
			out = append(out, pp...)
			s.lastPos = pos
		}
	}
	if ok {
		if wp := WaitPrompts(wait); wp != nil {
			out = append(out, wp...)
			s.lastWait = RoundWait(wait)
		}
	}
	if len(out) == 0 {
		out = append(out, PromptPleaseHold)
	}
	s.log.Info("announcing", "position", pos, "estimate", wait.Round(time.Second), "estimated", ok)
	return append(out, s.req.OptionsPrompt...)
}

// checkEntry looks at the call's entry in Redis: an offer this instance
// did not hear about (published while the subscription was down) is taken
// up; an entry Redis lost is restored. It reports whether the estimate
// changed enough to announce it now.
func (s *session) checkEntry(ctx context.Context) bool {
	cs, err := s.q.st.Call(ctx, s.call.ID)
	if err != nil {
		return false // Redis unreachable: the caller keeps hearing music
	}
	switch cs.State {
	case "":
		if _, err := s.q.st.Restore(ctx, s.w.entry); err == nil {
			s.log.Warn("Redis had lost the waiting caller: restored with the original place")
			s.q.cfg.Metrics.repair("restored")
			s.q.Kick()
		}
		return false
	case "offered":
		if cs.Agent != "" {
			s.q.deliver(Match{Call: s.call.ID, Agent: cs.Agent, Skill: cs.Skill, Owner: s.q.st.Owner()})
		}
		return false
	}
	if s.lastWait < 0 {
		return false
	}
	pos, err := s.q.st.Position(ctx, s.w.entry.Skill, s.call.ID)
	if err != nil {
		return false
	}
	snap, err := s.q.snapshot(ctx, s.w.entry.Skill)
	if err != nil {
		return false
	}
	wait, ok := Estimate(&snap, pos, s.q.cfg.Estimate)
	if !ok {
		return false
	}
	now := RoundWait(wait)
	if now < 0 {
		return false
	}
	diff := now - s.lastWait
	if diff < 0 {
		diff = -diff
	}
	// A lot: at least 2 minutes and at least half the last estimate.
	return diff >= 2 && float64(diff) >= 0.5*float64(max(s.lastWait, 1))
}

// connect hands a matched caller to the connector. It reports whether the
// call is over.
func (s *session) connect(ctx context.Context, m Match) (bool, error) {
	log := s.log.With("agent", m.Agent)
	if s.q.cfg.Connector == nil {
		// Another instance matched our caller, but this one cannot reach
		// agents: give the agent back and keep the caller's place.
		log.Warn("matched, but this instance has no agent connector: back to the queue")
		if _, err := s.q.st.Requeue(ctx, m.Call, m.Agent, Available, ""); err != nil {
			log.Warn("requeue", "error", err)
		}
		return false, nil
	}
	log.Info("agent matched: offering the call")
	res, err := s.q.cfg.Connector.Connect(ctx, s.ch, s.call, m)
	switch {
	case res == Connected:
		s.inQueue = false
		s.q.cfg.Metrics.result(m.Skill, "answered")
		return true, nil
	case ctx.Err() != nil:
		return true, ctx.Err() // the caller hung up: run's caller removes what is left
	case err != nil:
		return true, err
	}
	log.Info("offer failed: the caller waits again at the head of the queue")
	s.q.Kick()
	return false, nil
}

// leave takes the caller out of the queue on purpose.
// The reason (a Left* constant) is also the metric's result label.
func (s *session) leave(ctx context.Context, reason string) {
	s.inQueue = false
	if err := s.q.st.Leave(ctx, s.call.ID, reason); err != nil && !errors.Is(err, ErrGone) {
		s.log.Warn("could not take the caller out of the queue now; the reconciler will", "error", err)
		s.q.markGone(s.call.ID)
	}
	s.q.cfg.Metrics.result(s.w.entry.Skill, reason)
}

// maxWaitReached moves the caller on after the queue node's max_wait: to
// another skill (keeping the caller's arrival, so they do not start over)
// or out of the queue to a node.
func (s *session) maxWaitReached(ctx context.Context) (string, bool) {
	if s.req.OverflowSkill == "" {
		s.leave(ctx, LeftOverflow)
		s.log.Info("max wait reached: leaving the queue", "next", s.req.OnMaxWait)
		return s.req.OnMaxWait, true
	}
	e := s.w.entry
	old := e.Skill
	e.Skill = s.req.OverflowSkill
	pos, err := s.q.st.Enqueue(ctx, e)
	if err != nil {
		s.log.Warn("overflow failed: the caller stays where they are", "to", e.Skill, "error", err)
		return "", false
	}
	s.q.setEntry(s.w, e)
	s.call.Skill = e.Skill
	s.call.Mark("queue", e.Skill)
	s.lastPos = math.MaxInt
	s.log.Info("max wait reached: overflowed", "from", old, "to", e.Skill, "position", pos)
	s.q.cfg.Metrics.result(old, "overflowed")
	s.q.Kick()
	return "", false
}

// callback lets the caller leave a number to be called back on: the
// caller's number is read back for confirmation (1) or another one entered
// (2). It reports whether the call is over (request stored, goodbye said).
func (s *session) callback(ctx context.Context) (bool, error) {
	number := s.call.Caller.Number
	if number == "" {
		number = s.call.Number
	}
	number = dialable(number)
	s.log.Info("callback option chosen", "number", number)
	for attempt := 0; attempt < 3; attempt++ {
		if number == "" {
			digits, err := s.collect(ctx, []string{PromptCallbackEnter}, 15, 8*time.Second)
			if err != nil {
				return false, err
			}
			if len(digits) >= 3 {
				number = digits
			}
			continue
		}
		prompts := append([]string{PromptCallbackAt}, readBack(number)...)
		key, err := s.ask(ctx, append(prompts, PromptCallbackChoice), 8*time.Second)
		if err != nil {
			return false, err
		}
		switch key {
		case '1':
			pos, err := s.q.st.Callback(ctx, s.call.ID, number)
			if err != nil {
				s.log.Warn("callback request not stored: the caller keeps waiting", "error", err)
				return false, nil
			}
			s.inQueue = false
			s.q.cfg.Metrics.result(s.w.entry.Skill, "callback")
			s.log.Info("callback requested", "number", number, "position", pos)
			if err := s.ch.Play(ctx, PromptCallbackDone); err != nil && ctx.Err() == nil {
				return true, err
			}
			return true, ctx.Err()
		case '2':
			number = ""
		}
	}
	s.log.Info("callback not confirmed: back to waiting")
	return false, nil
}

// ask plays prompts (a key stops them) and waits up to timeout for one
// key; 0 when none came.
func (s *session) ask(ctx context.Context, prompts []string, timeout time.Duration) (byte, error) {
	p := s.play(ctx, prompts)
	select {
	case d := <-s.ch.Digits():
		p.stop()
		return d.Key, nil
	case err := <-p.done:
		if err != nil && ctx.Err() == nil {
			return 0, err
		}
	case <-ctx.Done():
		p.stop()
		return 0, ctx.Err()
	}
	select {
	case d := <-s.ch.Digits():
		return d.Key, nil
	case <-s.q.after(timeout):
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// collect plays prompts and reads digits until #, max digits or a pause
// of timeout.
func (s *session) collect(ctx context.Context, prompts []string, max int, timeout time.Duration) (string, error) {
	var b strings.Builder
	first, err := s.ask(ctx, prompts, timeout)
	if err != nil || first == 0 || first == '#' {
		return "", err
	}
	b.WriteByte(first)
	for b.Len() < max {
		select {
		case d := <-s.ch.Digits():
			if d.Key == '#' {
				return digitsOnly(b.String()), nil
			}
			b.WriteByte(d.Key)
		case <-s.q.after(timeout):
			return digitsOnly(b.String()), nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return digitsOnly(b.String()), nil
}

// dialable keeps a leading + and the digits of a number; "" when it has
// too few digits to call back (anonymous, withheld).
func dialable(n string) string {
	d := digitsOnly(n)
	if len(d) < 3 {
		return ""
	}
	if strings.HasPrefix(n, "+") {
		return "+" + d
	}
	return d
}

func digitsOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// readBack says a number digit by digit.
func readBack(number string) []string {
	var out []string
	for i := 0; i < len(number); i++ {
		if c := number[i]; c >= '0' && c <= '9' {
			out = append(out, PromptDigitPrefix+string(c))
		}
	}
	return out
}
