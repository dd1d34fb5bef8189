package ivr

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"ivrd/media"
)

// RunnerConfig wires a Runner.
type RunnerConfig struct {
	Flow       *Flow        // required; validated by NewRunner if Validate was not called
	Identifier Identifier   // for lookup nodes; nil leaves callers unidentified
	Queue      QueueHandler // for queue nodes; required when the flow has one
	// Now is the clock for schedules and Choice times; nil: time.Now.
	Now func() time.Time
	// After starts menu and collect timeouts; nil: time.After. Tests
	// shorten or script timeouts with it.
	After     func(time.Duration) <-chan time.Time
	Logger    *slog.Logger // nil: slog.Default()
	Metrics   *Metrics     // nil: not counted
	MaxVisits int          // node visits before a call is ended as a loop; 0: 1000
}

// Runner runs calls through one flow. It is safe for concurrent use: each
// Run owns its call.
type Runner struct {
	flow      *Flow
	id        Identifier
	queue     QueueHandler
	now       func() time.Time
	after     func(time.Duration) <-chan time.Time
	log       *slog.Logger
	metrics   *Metrics
	maxVisits int
}

// NewRunner checks the configuration. A flow that has not passed Validate is
// validated here without a prompt check.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Flow == nil {
		return nil, fmt.Errorf("new runner: no flow")
	}
	if !cfg.Flow.validated {
		if err := cfg.Flow.Validate(nil); err != nil {
			return nil, fmt.Errorf("new runner: %w: %w", ErrNotValidated, err)
		}
	}
	if cfg.Queue == nil {
		for _, name := range cfg.Flow.order {
			if cfg.Flow.nodes[name].typ == typeQueue {
				return nil, fmt.Errorf("new runner: flow %s has queue node %q but no QueueHandler is configured", cfg.Flow.file, name)
			}
		}
	}
	r := &Runner{
		flow:      cfg.Flow,
		id:        cfg.Identifier,
		queue:     cfg.Queue,
		now:       cfg.Now,
		after:     cfg.After,
		log:       cfg.Logger,
		metrics:   cfg.Metrics,
		maxVisits: cfg.MaxVisits,
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.after == nil {
		r.after = time.After
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.maxVisits <= 0 {
		r.maxVisits = defaultMaxNodeVisits
	}
	return r, nil
}

// Run walks call through the flow from its start node until a hangup node,
// the end of a queue, the caller hanging up (ctx cancelled) or a failure.
// It returns a non-nil error only with Outcome Failed. Run does not hang up:
// the caller of Run ends the call after it returns. When Run returns, no
// goroutine it started is left and no Play is in progress.
func (r *Runner) Run(ctx context.Context, ch Channel, call *Call) (Result, error) {
	if call.Vars == nil {
		call.Vars = make(map[string]string)
	}
	// The call's goroutine waits below here for the whole call (in a
	// queue, with an agent): what is logged at the start and the end is
	// built in functions of their own, so that this frame stays small and
	// the garbage collector can shrink the waiting goroutine's stack.
	s := r.start(ch, call)
	res, err := s.run(ctx)
	s.ended(res)
	return res, err
}

// start begins a call's walk through the flow.
func (r *Runner) start(ch Channel, call *Call) *session {
	s := &session{
		r:      r,
		ch:     ch,
		call:   call,
		log:    r.log.With("call_id", call.ID),
		digits: ch.Digits(),
	}
	s.log.Info("ivr flow started", "flow", r.flow.file, "number", call.Number, "dialed", call.Dialed)
	return s
}

// ended counts and logs how the walk ended.
func (s *session) ended(res Result) {
	s.r.metrics.outcome(res.Outcome)
	s.log.Info("ivr flow ended", "outcome", string(res.Outcome), "node", res.Node, "visits", res.Visits,
		"skill", s.call.Skill, "priority", s.call.Priority)
}

// step is what a node tells the loop: go on to next, or end with outcome.
type step struct {
	next    string
	outcome Outcome
}

// session is one call's walk through the flow; only Run's goroutine uses it.
type session struct {
	r      *Runner
	ch     Channel
	call   *Call
	log    *slog.Logger
	digits <-chan media.Digit
	ahead  []byte // type-ahead: keys pressed and not yet consumed
}

func (s *session) run(ctx context.Context) (Result, error) {
	f := s.r.flow
	cur, last := f.start, ""
	for visits := 1; ; visits++ {
		if ctx.Err() != nil {
			return Result{Outcome: CallerGone, Node: last, Visits: visits - 1}, nil
		}
		if visits > s.r.maxVisits {
			return Result{Outcome: Failed, Node: last, Visits: visits - 1},
				fmt.Errorf("run flow %s for call %s: %w: %d without ending, at node %q", f.file, s.call.ID, ErrTooManyVisits, s.r.maxVisits, last)
		}
		last = cur
		n := f.nodes[cur]
		s.log.Debug("ivr node", "node", cur, "type", string(n.typ))
		st, err := s.exec(ctx, n)
		switch {
		case err != nil && ctx.Err() != nil:
			return Result{Outcome: CallerGone, Node: cur, Visits: visits}, nil
		case err != nil:
			return Result{Outcome: Failed, Node: cur, Visits: visits},
				fmt.Errorf("run flow %s for call %s: node %s: %w", f.file, s.call.ID, cur, err)
		case st.outcome != "":
			return Result{Outcome: st.outcome, Node: cur, Visits: visits}, nil
		}
		if f.nodes[st.next] == nil {
			return Result{Outcome: Failed, Node: cur, Visits: visits},
				fmt.Errorf("run flow %s for call %s: node %s: go to unknown node %q", f.file, s.call.ID, cur, st.next)
		}
		cur = st.next
	}
}

func (s *session) exec(ctx context.Context, n *node) (step, error) {
	switch n.typ {
	case typePlay:
		if err := s.play(ctx, n.prompts.names, n.bargeIn); err != nil {
			return step{}, err
		}
		return step{next: n.next}, nil
	case typeMenu:
		return s.menu(ctx, n)
	case typeCollect:
		return s.collect(ctx, n)
	case typeLookup:
		return s.lookup(ctx, n), nil
	case typeBranch:
		return s.branch(n), nil
	case typeSet:
		s.set(n)
		return step{next: n.next}, nil
	case typeQueue:
		return s.enqueue(ctx, n)
	case typeHangup:
		if err := s.play(ctx, n.prompts.names, false); err != nil {
			return step{}, err
		}
		return step{outcome: Hangup}, nil
	}
	return step{}, fmt.Errorf("node type %q cannot run", n.typ)
}

func (s *session) lookup(ctx context.Context, n *node) step {
	if s.r.id == nil {
		s.log.Debug("no identifier configured; caller stays unidentified")
		return step{next: n.next}
	}
	c := s.r.id.Identify(ctx, s.call.ID, s.call.Number)
	s.call.Caller = c
	s.log.Info("caller lookup", "identified", c.Identified, "source", c.Source, "number", c.Number,
		"customer_id", c.CustomerID, "tier", c.Tier)
	return step{next: n.next}
}

func (s *session) branch(n *node) step {
	for i, c := range n.cases {
		if s.matches(c) {
			s.log.Debug("branch case matched", "node", n.name, "case", i, "next", c.next)
			return step{next: c.next}
		}
	}
	s.log.Debug("branch default", "node", n.name, "next", n.def)
	return step{next: n.def}
}

// matches reports whether every condition of a case holds.
func (s *session) matches(c branchCase) bool {
	for _, cond := range c.when {
		if !slices.Contains(cond.values, s.resolve(cond.ref)) {
			return false
		}
	}
	return true
}

// resolve reads a reference for this call now.
func (s *session) resolve(r ref) string {
	c := s.call
	switch r.kind {
	case refCaller:
		switch r.field {
		case "number":
			return c.Caller.Number
		case "name":
			return c.Caller.Name
		case "customer_id":
			return c.Caller.CustomerID
		case "tier":
			return c.Caller.Tier
		case "identified":
			return strconv.FormatBool(c.Caller.Identified)
		case "source":
			return c.Caller.Source
		}
	case refCall:
		switch r.field {
		case "number":
			return c.Number
		case "display_name":
			return c.DisplayName
		case "dialed":
			return c.Dialed
		case "id":
			return c.ID
		}
	case refVar:
		return c.Vars[r.field]
	case refSchedule:
		if r.sched.openAt(s.r.now()) {
			return "open"
		}
		return "closed"
	}
	return ""
}

func (s *session) set(n *node) {
	for _, v := range n.values {
		val := v.tmpl.expand(s.resolve)
		s.call.Vars[v.name] = val
		if v.name == "priority" {
			p, err := strconv.Atoi(val)
			if err != nil {
				s.log.Warn("priority is not a whole number; keeping the current one", "node", n.name, "value", val, "priority", s.call.Priority)
				continue
			}
			s.call.Priority = p
		}
		s.log.Debug("variable set", "node", n.name, "name", v.name, "value", val)
	}
}

func (s *session) enqueue(ctx context.Context, n *node) (step, error) {
	// As in Run: the goroutine waits in Queue; the request is built and
	// the answer read in functions of their own.
	req := s.queueRequest(n)
	next, err := s.r.queue.Queue(ctx, s.ch, s.call, req)
	return s.dequeued(n, next, err)
}

// queueRequest sets the call's skill and priority for queue node n and
// says what the queue is asked.
func (s *session) queueRequest(n *node) QueueRequest {
	prio := s.call.Priority
	if n.priority != nil {
		val := n.priority.expand(s.resolve)
		if p, err := strconv.Atoi(val); err == nil {
			prio = p
		} else {
			s.log.Warn("queue priority is not a whole number; using the call's", "node", n.name, "value", val, "priority", prio)
		}
	}
	s.call.Skill = n.skill
	s.call.Priority = prio
	s.log.Info("queueing call", "node", n.name, "skill", n.skill, "priority", prio)
	req := QueueRequest{
		Skill: n.skill, Priority: prio, AnnounceEvery: n.announce, MaxWait: n.maxWait,
		OverflowSkill: n.overflowSkill, OnMaxWait: n.onMaxWait,
		Options: n.optionKeys, OptionsPrompt: n.optionsPrompts.names,
	}
	s.call.Mark("queue", n.skill)
	return req
}

// dequeued is where the flow goes after queue node n: the queue's answer
// (next, err) read.
func (s *session) dequeued(n *node, next string, err error) (step, error) {
	if next != "" && err == nil {
		s.call.Mark("ivr", "") // back in the flow
	}
	switch {
	case err != nil:
		return step{}, fmt.Errorf("queue to %s: %w", n.skill, err)
	case next == "":
		return step{outcome: QueueDone}, nil
	case next == QueueNext && n.next == "":
		return step{}, fmt.Errorf("queue %s handed the call back but the node has no next", n.skill)
	case next == QueueNext:
		next = n.next
	}
	s.log.Info("queue handed the call back", "node", n.name, "skill", n.skill, "next", next)
	return step{next: next}, nil
}
