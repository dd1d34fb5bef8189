package sim

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"ivrd/agents/agentbot"
)

// agentLeg is what one agent saw of one offered call.
type agentLeg struct {
	agent     string
	callID    string
	number    string
	offeredAt time.Time
	acceptAt  time.Time
	connected time.Time
	endedAt   time.Time
	endReason string

	firstAudioAt time.Time  // the caller's first stamped packet at the agent
	fromCaller   *StreamLeg // the caller's audio as the agent heard it (nil: none)
	stream       int        // the caller's stream heard first; -1 none
}

// agent is one agent bot taking calls: it accepts each offered call after
// the accept delay, talks (its Speaker stamps what it says) until the
// caller hangs up, and ends wrap-up after the wrap-up time. Its goroutine
// owns its legs; the bot's audio goroutine reads the caller's stamps into
// rx from the accept to the call's end.
type agent struct {
	cfg  *Config
	acct Account
	log  *slog.Logger
	bot  *agentbot.Bot
	legs []agentLeg
	busy atomic.Bool // a call offered and its wrap-up not yet done
	c2a  *dirSum     // the run's caller → agent audio

	mu sync.Mutex
	rx *receiver // the call being heard; nil between calls
}

// startAgent logs the agent in, makes it available and waits for its
// audio to connect. Each call's audio is added to c2a when it ends.
func startAgent(ctx context.Context, cfg *Config, index int, acct Account, c2a *dirSum) (*agent, error) {
	a := &agent{cfg: cfg, acct: acct, log: cfg.Logger.With("agent", acct.User), c2a: c2a}
	spk := NewSpeaker(KindAgent, uint16(index), nil)
	bot, err := agentbot.Start(ctx, agentbot.Config{BaseURL: cfg.HTTP, Username: acct.User, Password: acct.Password,
		Say: spk.Fill, OnAudio: a.onAudio, QuietIdle: cfg.AgentsQuietIdle, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("agent %s: log in: %w", acct.User, err)
	}
	a.bot = bot
	if err := bot.SetState(ctx, "available", ""); err != nil {
		bot.Close()
		return nil, fmt.Errorf("agent %s: go available: %w", acct.User, err)
	}
	if _, _, err := bot.WaitState(ctx, 0, "available"); err != nil {
		bot.Close()
		return nil, fmt.Errorf("agent %s: go available: %w", acct.User, err)
	}
	for !bot.Connected() {
		select {
		case <-ctx.Done():
			bot.Close()
			return nil, fmt.Errorf("agent %s: audio did not connect: %w", acct.User, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return a, nil
}

// run takes calls until ctx ends.
func (a *agent) run(ctx context.Context) {
	from := 0
	var cur *agentLeg
	for {
		m, i, err := a.bot.Wait(ctx, from, func(agentbot.Message) bool { return true })
		if err != nil {
			return
		}
		from = i + 1
		now := time.Now()
		id := m.Str("call_id")
		switch m.Type() {
		case "call_offered":
			a.busy.Store(true)
			cur = &agentLeg{agent: a.acct.User, callID: id, offeredAt: now, stream: -1}
			if c, ok := m["caller"].(map[string]any); ok {
				cur.number, _ = c["number"].(string)
			}
			if !sleep(ctx, a.cfg.AcceptDelay) {
				return
			}
			a.listen(newReceiver(KindCaller))
			cur.acceptAt = time.Now()
			if err := a.bot.Call(ctx, "accept", id); err != nil {
				a.log.Warn("accept", "call_id", id, "error", err)
			}
		case "call_connected":
			if cur != nil && cur.callID == id {
				cur.connected = now
			}
		case "call_ended":
			if cur == nil || cur.callID != id {
				continue
			}
			cur.endedAt, cur.endReason = now, m.Str("reason")
			if rx := a.listen(nil); rx != nil {
				cur.firstAudioAt, cur.fromCaller, cur.stream = rx.meter.FirstAt(), rx.result(), rx.stream
				a.c2a.add(&rx.meter)
			}
			a.legs = append(a.legs, *cur)
			if cur.connected.IsZero() {
				a.busy.Store(false) // no wrap-up after a call that never connected
			}
			cur = nil
		case "wrapup":
			if !sleep(ctx, a.cfg.WrapUp) {
				return
			}
			if err := a.bot.WrapUpDone(ctx, id, "callsim", ""); err != nil {
				a.log.Warn("wrap-up done", "call_id", id, "error", err)
			}
			a.busy.Store(false)
		case "error":
			a.log.Warn("ivrd refused a message", "message", m.Str("message"))
		case "closed":
			a.log.Error("signalling connection closed", "error", m.Str("error"))
			return
		}
	}
}

// listen makes rx the receiver of the caller's audio (nil: none) and
// returns the one it replaces, which the audio goroutine no longer uses.
func (a *agent) listen(rx *receiver) *receiver {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.rx
	a.rx = rx
	return old
}

// onAudio takes each packet the bot receives, on the bot's audio
// goroutine. Stamps are µ-law bytes: an A-law leg means ivrd transcoded,
// and they would not have survived.
func (a *agent) onAudio(at time.Time, payload []byte, alaw bool) {
	if alaw {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rx != nil {
		a.rx.packet(payload, at)
	}
}

// stop makes the agent offline and closes its bot.
func (a *agent) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.bot.SetState(ctx, "offline", "")
	a.bot.Close()
	// Log out, as an agent ends a shift: the session ends now rather
	// than when it expires, and the server forgets the agent at once.
	if err := agentbot.Logout(ctx, a.cfg.HTTP, a.bot.Token()); err != nil {
		a.log.Warn("log out", "error", err)
	}
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
