// Package agents connects matched callers to agents: it runs the agent
// signalling protocol (docs/agent-protocol.md) over any message
// connection, owns each logged-in agent's state on this instance (one
// goroutine per agent), and implements queue.Connector: offer, accept or
// decline, the media bridge, hold, hangup, wrap-up, and what happens when
// an agent does not answer or vanishes.
package agents

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"ivrd/media"
	"ivrd/queue"
)

// Identity is a logged-in agent.
type Identity struct {
	ID     string
	Name   string
	Skills map[string]int
}

// Conn is one signalling connection (a WebSocket): whole text messages.
type Conn interface {
	Read(ctx context.Context) ([]byte, error)
	Write(ctx context.Context, data []byte) error
	Close(reason string)
}

// Peer is one agent's audio path (rtc.Peer through an adapter), kept
// across calls.
type Peer interface {
	Offer(ctx context.Context) (string, error)
	SetAnswer(sdp string) error
	Ready() <-chan struct{}
	Done() <-chan struct{}
	Bridge(sess *media.Session) (Bridge, error)
	Close() error
}

// Bridge is a caller's media relayed to and from an agent's Peer.
type Bridge interface {
	FirstAudio() <-chan struct{}
	Hold(on bool)
	Stop()
}

// PeerFactory makes an agent's Peer.
type PeerFactory func(agentID string, log *slog.Logger) (Peer, error)

// WrapUp is what an agent recorded about a call when wrap-up ended.
type WrapUp struct {
	CallID, Agent      string
	Disposition, Notes string
	Ended              time.Time
	AutoEnded          bool // the wrap-up timed out
}

// Config configures a Hub.
type Config struct {
	Store   *queue.Store
	Kick    func()      // wakes the dispatcher when an agent becomes available
	NewPeer PeerFactory // required

	RingTimeout   time.Duration // no accept this long: missed (default 15 s)
	WrapUpTimeout time.Duration // wrap-up ends by itself after this (default 60 s)
	IdleGrace     time.Duration // every connection gone while idle: offline after this (default 30 s)
	CallGrace     time.Duration // every connection gone during a call: lost after this (default 10 s)
	ReadyTimeout  time.Duration // accept before the audio path is up: wait this long (default 5 s)
	// DeclineNotReady makes an agent who declines not_ready ("declined")
	// instead of available again.
	DeclineNotReady bool

	// Prompts played to the caller: while on hold, and when the agent is
	// lost mid-call (before the caller goes back to the head of the queue).
	HoldPrompt, LostPrompt string

	OnWrapUp func(WrapUp) // optional: where dispositions go
	Metrics  *Metrics
	Logger   *slog.Logger
}

// Hub is every agent logged in on this instance.
type Hub struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	agents map[string]*agent
	wg     sync.WaitGroup
}

// NewHub returns a hub; Close ends it.
func NewHub(cfg Config) (*Hub, error) {
	if cfg.Store == nil || cfg.NewPeer == nil {
		return nil, errors.New("agents: Config.Store and Config.NewPeer are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RingTimeout, 15*time.Second)
	def(&cfg.WrapUpTimeout, 60*time.Second)
	def(&cfg.IdleGrace, 30*time.Second)
	def(&cfg.CallGrace, 10*time.Second)
	def(&cfg.ReadyTimeout, 5*time.Second)
	if cfg.Kick == nil {
		cfg.Kick = func() {}
	}
	if cfg.HoldPrompt == "" {
		cfg.HoldPrompt = queue.PromptHoldMusic
	}
	if cfg.LostPrompt == "" {
		cfg.LostPrompt = PromptAgentLost
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel, agents: make(map[string]*agent)}, nil
}

// PromptAgentLost is what a caller hears when the agent's connection is
// lost mid-call.
const PromptAgentLost = "agent_lost"

// Prompts lists the prompts the hub plays, for checking at start.
func Prompts() []string { return []string{PromptAgentLost} }

// Close logs every agent out and waits for their goroutines.
func (h *Hub) Close() {
	h.cancel()
	h.wg.Wait()
}

// Restore asks every agent logged in here to put its state back in Redis
// if Redis lost it; call it after the configured agents were created again
// (queue.Queue.OnReconcile).
func (h *Hub) Restore() {
	h.mu.Lock()
	as := make([]*agent, 0, len(h.agents))
	for _, a := range h.agents {
		as = append(as, a)
	}
	h.mu.Unlock()
	for _, a := range as {
		select {
		case a.events <- evRestore{}:
		case <-a.done:
		default: // busy: the next reconciliation asks again
		}
	}
}

// lookup returns the agent's goroutine, or nil.
func (h *Hub) lookup(id string) *agent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.agents[id]
}

// attach returns the agent's goroutine, starting it if needed.
func (h *Hub) attach(id Identity) (*agent, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return nil, errors.New("shutting down")
	}
	if a := h.agents[id.ID]; a != nil {
		return a, nil
	}
	a := newAgent(h, id)
	h.agents[id.ID] = a
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		a.run()
	}()
	return a, nil
}

// detach removes a finished agent; false when events are still queued
// (a connection arrived meanwhile), and the agent must go on.
func (h *Hub) detach(a *agent) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(a.events) > 0 && h.ctx.Err() == nil {
		return false
	}
	if h.agents[a.id.ID] == a {
		delete(h.agents, a.id.ID)
	}
	close(a.done)
	return true
}

// Serve runs one signalling connection of an agent until it closes or ctx
// ends.
func (h *Hub) Serve(ctx context.Context, c Conn, id Identity) {
	var a *agent
	var cn *conn
	for {
		var err error
		a, err = h.attach(id)
		if err != nil {
			c.Close(err.Error())
			return
		}
		cn = newConn(c, a.log)
		if a.send(evConn{c: cn}) {
			break
		}
		// The agent's goroutine ended as we arrived: start a new one.
	}
	defer cn.close("")
	go cn.writeLoop(ctx)
	for {
		data, err := c.Read(ctx)
		if err != nil {
			a.send(evConnGone{c: cn})
			return
		}
		m, err := parseClient(data)
		if err != nil {
			cn.send(errorMsg{Type: MsgError, Message: err.Error()})
			continue
		}
		if !a.send(evMsg{c: cn, m: m}) {
			return
		}
	}
}
