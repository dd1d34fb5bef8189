package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ivrd/ivr"
)

// Prompt names the queue plays; the demo's configs/prompts has them all.
const (
	PromptHoldMusic      = "hold_music"
	PromptPleaseHold     = "please_hold"
	PromptCannotTake     = "cannot_take_call"
	PromptConnecting     = "connecting"
	PromptCallbackAt     = "callback_at"      // "we will call you back at"
	PromptCallbackChoice = "callback_confirm" // "press 1 to confirm, or 2 to enter another number"
	PromptCallbackEnter  = "callback_enter"   // "enter the number, then press pound"
	PromptCallbackDone   = "callback_done"    // "we will call you back… goodbye"
	PromptDigitPrefix    = "num_"             // num_0 … num_9 read a number back
)

// Prompts lists every prompt the queue may play besides those of
// PositionPrompts and WaitPrompts, for checking at start.
func Prompts() []string {
	out := []string{PromptHoldMusic, PromptPleaseHold, PromptCannotTake, PromptConnecting,
		PromptCallbackAt, PromptCallbackChoice, PromptCallbackEnter, PromptCallbackDone,
		"you_are_caller", "ewt_intro", "minute", "minutes", "less_than_a_minute"}
	for i := range 60 {
		out = append(out, fmt.Sprint(PromptDigitPrefix, i))
	}
	return out
}

// Connector brings a matched caller and agent together (the agent side:
// offer, accept, media bridge). It returns when the call is over or the
// caller is back in the queue.
type Connector interface {
	// Connect offers the call to the agent Redis reserved for it. It
	// returns Connected when the caller reached the agent and the call has
	// ended (the store's Complete was called), or Requeued when the offer
	// failed and the caller waits again (the store's Requeue was called).
	Connect(ctx context.Context, ch ivr.Channel, call *ivr.Call, m Match) (ConnectResult, error)
}

// ConnectResult is how a Connect ended.
type ConnectResult int

// Connect results.
const (
	Connected ConnectResult = iota // the caller talked to the agent; the call is over
	Requeued                       // the offer failed; the caller is back at the head of the queue
)

// SkillConfig is one skill's settings.
type SkillConfig struct {
	Routing       string        // idle or proficiency
	AnnounceEvery time.Duration // 0: Config.AnnounceEvery
}

// Config configures a Queue.
type Config struct {
	Store         *Store
	Skills        map[string]SkillConfig
	AnnounceEvery time.Duration // default 45 s
	Estimate      EstimateConfig
	Connector     Connector // nil: callers wait but this instance matches nobody
	Logger        *slog.Logger
	Metrics       *Metrics
	// StatePoll is how often a waiting caller checks its entry in Redis (an
	// offer published by another instance, an entry Redis lost). Default 2 s.
	StatePoll time.Duration
	// FirstAnnounceAfter lets a caller who can be answered at once be
	// answered before hearing any announcement. Default 1 s.
	FirstAnnounceAfter time.Duration
	// After makes timers; tests may speed them up. Default time.After.
	After func(time.Duration) <-chan time.Time
}

// Queue is the waiting side of the call queue: it implements
// ivr.QueueHandler. Each waiting call runs in its own call's goroutine; the
// Queue keeps a registry of them (for offers and reconciliation).
type Queue struct {
	cfg   Config
	st    *Store
	log   *slog.Logger
	kick  chan struct{} // wakes the dispatcher
	after func(time.Duration) <-chan time.Time

	mu    sync.Mutex
	calls map[string]*waiter // by call id: calls this instance has in a queue

	// joins is held for reading from a call's enqueue in Redis until it
	// is in calls, and for writing by a reconciliation from its view of
	// calls until its script has run, and by a match for a call not in
	// calls before it concludes the call ended: a caller being enqueued
	// meanwhile would be in Redis and not in calls — taken for one this
	// instance lost (or one that hung up as it was matched, counted
	// abandoned), removed, and put back moments later.
	joins sync.RWMutex
	gone  map[string]bool // calls that ended while Redis was unreachable

	snapMu sync.Mutex
	snaps  map[string]cachedSnap

	onReconcile atomic.Pointer[func(context.Context) error]
}

// New returns a queue; Run its dispatcher and reconciler with Run.
func New(cfg Config) (*Queue, error) {
	if cfg.Store == nil {
		return nil, errors.New("queue: Config.Store is required")
	}
	if cfg.AnnounceEvery <= 0 {
		cfg.AnnounceEvery = 45 * time.Second
	}
	if cfg.StatePoll <= 0 {
		cfg.StatePoll = 2 * time.Second
	}
	if cfg.FirstAnnounceAfter <= 0 {
		cfg.FirstAnnounceAfter = time.Second
	}
	if cfg.Estimate.DefaultHandleTime <= 0 {
		cfg.Estimate.DefaultHandleTime = 3 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	return &Queue{
		cfg: cfg, st: cfg.Store, log: cfg.Logger, after: cfg.After,
		kick:  make(chan struct{}, 1),
		calls: make(map[string]*waiter),
		gone:  make(map[string]bool),
		snaps: make(map[string]cachedSnap),
	}, nil
}

// SetConnector sets the agent side (before Run): with one, this instance's
// dispatcher matches callers with agents.
func (q *Queue) SetConnector(c Connector) { q.cfg.Connector = c }

// Skills lists the configured skills, sorted.
func (q *Queue) Skills() []string { return slices.Sorted(maps.Keys(q.cfg.Skills)) }

// Store is the queue's Redis state.
func (q *Queue) Store() *Store { return q.st }

// Kick wakes the dispatcher (an agent became available, a caller arrived).
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// waiter is one call in a queue, owned by the call's goroutine; others
// reach it only through offers.
type waiter struct {
	entry  Entry
	offers chan Match
}

func (q *Queue) register(w *waiter) {
	q.mu.Lock()
	q.calls[w.entry.ID] = w
	q.mu.Unlock()
}

// setEntry records where the call waits now (after an overflow).
func (q *Queue) setEntry(w *waiter, e Entry) {
	q.mu.Lock()
	w.entry = e
	q.mu.Unlock()
}

// markGone remembers a call that ended while Redis could not be told; the
// next reconciliation removes it.
func (q *Queue) markGone(id string) {
	q.mu.Lock()
	q.gone[id] = true
	q.mu.Unlock()
}

func (q *Queue) unregister(id string) {
	q.mu.Lock()
	delete(q.calls, id)
	q.mu.Unlock()
}

// deliver hands a match to the waiting call; false when this instance does
// not hold the call.
func (q *Queue) deliver(m Match) bool {
	q.mu.Lock()
	w := q.calls[m.Call]
	q.mu.Unlock()
	if w == nil {
		return false
	}
	select {
	case w.offers <- m:
	default: // an offer is already pending; the same match again is harmless to drop
	}
	return true
}

// live returns the entries of the calls this instance holds.
func (q *Queue) live() map[string]Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[string]Entry, len(q.calls))
	for id, w := range q.calls {
		out[id] = w.entry
	}
	return out
}

// Queue runs a call's time in a queue: it enqueues the call, plays
// position, estimate and hold music, handles the options of the queue
// node, and hands the call to the Connector when an agent is matched.
func (q *Queue) Queue(ctx context.Context, ch ivr.Channel, call *ivr.Call, req ivr.QueueRequest) (string, error) {
	// The call's goroutine waits in s.run for the whole of the call's time
	// in the queue and with the agent: enqueueing is done in join, whose
	// stack frame is gone by then, so that the waiting goroutine's stack
	// is shallow enough for the garbage collector to shrink it.
	s, err := q.join(ctx, ch, call, req)
	if s == nil {
		return "", err
	}
	next, err := s.run(ctx)
	q.unregister(call.ID)
	if s.inQueue {
		// The caller hung up (or the flow failed) while still queued.
		s.abandon()
	}
	return next, err
}

// join puts the call in the queue and returns its session, or nil when it
// could not be queued (the caller was told so; err says why the flow
// cannot go on, if it cannot).
func (q *Queue) join(ctx context.Context, ch ivr.Channel, call *ivr.Call, req ivr.QueueRequest) (*session, error) {
	log := q.log.With("call_id", call.ID, "skill", req.Skill)
	if _, ok := q.cfg.Skills[req.Skill]; !ok {
		return nil, fmt.Errorf("queue: unknown skill %q", req.Skill)
	}
	if call.Queued.IsZero() {
		call.Queued = q.st.now()
	}
	e := Entry{ID: call.ID, Skill: req.Skill, Priority: req.Priority, Enqueued: q.st.now(), Fields: callFields(call)}
	q.joins.RLock()
	pos, err := q.st.Enqueue(ctx, e)
	if err != nil {
		q.joins.RUnlock()
		// Redis is unreachable (or refused): tell the caller plainly.
		log.Error("cannot queue the call", "error", err)
		q.cfg.Metrics.result(req.Skill, "not_queued")
		if perr := ch.Play(ctx, PromptCannotTake); perr != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("play %s: %w", PromptCannotTake, perr)
		}
		return nil, nil
	}
	if hook := testHookEnqueued.Load(); hook != nil {
		(*hook)(call.ID)
	}
	log.Info("caller queued", "position", pos, "priority", req.Priority)
	q.cfg.Metrics.result(req.Skill, "queued")
	w := &waiter{entry: e, offers: make(chan Match, 1)}
	q.register(w)
	q.joins.RUnlock()
	q.Kick()
	return &session{q: q, ch: ch, call: call, req: req, w: w, log: log, lastPos: pos + 1}, nil
}

// testHookEnqueued, when a test sets it, runs between a call's enqueue
// in Redis and its registration here.
var testHookEnqueued atomic.Pointer[func(callID string)]

// callFields is what the agent's screen and the records need about a call.
func callFields(c *ivr.Call) map[string]string {
	f := map[string]string{
		"number": c.Number, "name": c.Caller.Name, "customer_id": c.Caller.CustomerID,
		"tier": c.Caller.Tier, "dialed": c.Dialed,
	}
	if c.Caller.Name == "" {
		f["name"] = c.DisplayName
	}
	for k, v := range f {
		if v == "" {
			delete(f, k)
		}
	}
	return f
}

// abandon removes a caller who is gone. When Redis cannot be reached, the
// call is remembered and removed by the next reconciliation.
func (s *session) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	prev, err := s.q.st.Abandon(ctx, s.call.ID)
	if err != nil {
		s.log.Warn("could not remove the caller from the queue now; the reconciler will", "error", err)
		s.q.markGone(s.call.ID)
		return
	}
	waited := s.q.st.now().Sub(s.w.entry.Enqueued).Round(time.Millisecond)
	s.log.Info("caller abandoned the queue", "state", prev, "waited", waited)
	s.q.cfg.Metrics.result(s.w.entry.Skill, "abandoned")
	s.q.Kick() // an agent reserved for the caller is free again
}
