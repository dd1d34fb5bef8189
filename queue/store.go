package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel errors the store's callers branch on.
var (
	// ErrGone: the call is not in Redis (it ended, or Redis lost it).
	ErrGone = errors.New("call not in the queue")
	// ErrBusy: the call or agent is in a state that does not allow the
	// change (an agent with a call cannot go offline).
	ErrBusy = errors.New("busy")
	// ErrNoAgent: no such agent.
	ErrNoAgent = errors.New("no such agent")
	// ErrNotOffered: the call is not offered to this agent (another agent
	// has it, or it went back to the queue).
	ErrNotOffered = errors.New("call not offered to this agent")
	// ErrBadState: an agent state that cannot be chosen.
	ErrBadState = errors.New("invalid agent state")
)

// AgentState is where an agent stands.
type AgentState string

// Agent states. Agents choose Available, NotReady and Offline; the others
// follow from calls.
const (
	Offline   AgentState = "offline"
	Available AgentState = "available"
	Reserved  AgentState = "reserved" // a call is being offered
	OnCall    AgentState = "on_call"
	WrapUp    AgentState = "wrap_up"
	NotReady  AgentState = "not_ready"
)

// AgentStates lists every state, in the order reports show them.
var AgentStates = []AgentState{Available, Reserved, OnCall, WrapUp, NotReady, Offline}

// Agent is an agent as Redis knows it.
type Agent struct {
	ID     string
	Name   string
	Skills map[string]int // skill → proficiency 1..100 (higher is better)
	State  AgentState
	Since  time.Time // when the state began
	Reason string    // why not_ready
	Call   string    // the call reserved for or connected to the agent
	// Instance is the ivrd instance the agent is logged in on ("" none).
	Instance string
}

// Entry is a call as it waits in a queue.
type Entry struct {
	ID       string
	Skill    string
	Priority int       // higher is served first
	Enqueued time.Time // arrival in this skill's queue; ties in priority go to the earliest
	Fields   map[string]string
}

// Match is one caller paired with one agent by Dispatch.
type Match struct {
	Call, Agent, Skill string
	Owner              string // the instance that holds the caller's call
}

// MaxPriority bounds priorities (both signs) so that priority and arrival
// fit one exact sorted-set score.
const MaxPriority = 255

// StoreConfig configures a Store.
type StoreConfig struct {
	Prefix       string           // key prefix; keys are "<prefix>:{q}:…"; default "ivrd"
	Owner        string           // this instance's id; its calls are marked with it
	ServiceLevel time.Duration    // answered within this counts for service level (default 20 s)
	Window       time.Duration    // sliding window of the throughput measure (default 30 min)
	Location     *time.Location   // where a day starts, for daily counters (default Local)
	Now          func() time.Time // clock (default time.Now)
	// OpTimeout bounds every Redis operation (default 2 s): when Redis is
	// unreachable a caller hears "we cannot take your call" in seconds,
	// not after the client's retries.
	OpTimeout time.Duration
}

// Store is the queue's state in Redis: every transition is one Lua script.
// It is safe for concurrent use; it holds no state of its own besides its
// configuration.
type Store struct {
	rdb    redis.UniversalClient
	cfg    StoreConfig
	prefix string
	s      *scripts
}

// NewStore returns a store on rdb.
func NewStore(rdb redis.UniversalClient, cfg StoreConfig) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "ivrd"
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("queue: key prefix %q must not contain braces (the hash tag is added)", cfg.Prefix)
	}
	if cfg.Owner == "" {
		return nil, errors.New("queue: StoreConfig.Owner is required")
	}
	if cfg.ServiceLevel <= 0 {
		cfg.ServiceLevel = 20 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 30 * time.Minute
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 2 * time.Second
	}
	s, err := loadScripts()
	if err != nil {
		return nil, err
	}
	return &Store{rdb: rdb, cfg: cfg, prefix: cfg.Prefix + ":{q}", s: s}, nil
}

// Owner is this instance's id.
func (st *Store) Owner() string { return st.cfg.Owner }

// Client is the Redis client the store uses.
func (st *Store) Client() redis.UniversalClient { return st.rdb }

// Key returns the full Redis key for the parts, e.g. Key("wait", "billing").
func (st *Store) Key(parts ...string) string {
	return st.prefix + ":" + strings.Join(parts, ":")
}

func (st *Store) now() time.Time { return st.cfg.Now() }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }

func (st *Store) day(t time.Time) string { return t.In(st.cfg.Location).Format("2006-01-02") }

// run runs a script with the prefix as ARGV[1]; KEYS[1] routes it to the
// slot of the hash tag.
func (st *Store) run(ctx context.Context, sc *redis.Script, args ...any) *redis.Cmd {
	ctx, cancel := st.op(ctx)
	defer cancel()
	return sc.Run(ctx, st.rdb, []string{st.Key("agents")}, append([]any{st.prefix}, args...)...)
}

// op bounds one Redis operation by OpTimeout.
func (st *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, st.cfg.OpTimeout)
}

// scriptErr turns the scripts' error replies into sentinel errors.
func scriptErr(op string, err error) error {
	if err == nil {
		return nil
	}
	// Redis 7 prefixes a script's error_reply with "ERR " unless it
	// starts with an error code of its own; miniredis does the same.
	msg := strings.TrimPrefix(err.Error(), "ERR ")
	word, rest, _ := strings.Cut(msg, " ")
	var base error
	switch word {
	case "GONE":
		base = ErrGone
	case "BUSY", "NOTCONNECTED":
		base = ErrBusy
	case "NOAGENT":
		base = ErrNoAgent
	case "NOTOFFERED", "NOTRESERVED":
		base = ErrNotOffered
	case "BADSTATE":
		base = ErrBadState
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
	if rest != "" {
		return fmt.Errorf("%s: %w (%s)", op, base, rest)
	}
	return fmt.Errorf("%s: %w", op, base)
}

// Score is the sorted-set score of a waiting call: priority first (higher
// first), then arrival (earlier first). Both fit a float64 exactly.
func Score(priority int, enqueued time.Time) float64 {
	priority = max(-MaxPriority, min(MaxPriority, priority))
	return float64(-priority)*math.Exp2(44) + float64(ms(enqueued))
}

func encodeSkills(skills map[string]int) (string, error) {
	names := make([]string, 0, len(skills))
	for n := range skills {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		lvl := skills[n]
		if n == "" || strings.ContainsAny(n, ",=: {}") {
			return "", fmt.Errorf("skill name %q: letters, digits, - and _ only", n)
		}
		if lvl < 1 || lvl > 100 {
			return "", fmt.Errorf("skill %s: proficiency %d is not in 1..100", n, lvl)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%d", n, lvl)
	}
	return b.String(), nil
}

func decodeSkills(s string) map[string]int {
	out := make(map[string]int)
	for _, part := range strings.Split(s, ",") {
		name, lvl, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(lvl)
		if err == nil {
			out[name] = n
		}
	}
	return out
}

// SetRouting sets how a skill picks among available agents: "idle"
// (longest idle first, the default) or "proficiency" (highest proficiency
// first, then longest idle).
func (st *Store) SetRouting(ctx context.Context, skill, mode string) error {
	ctx, cancel := st.op(ctx)
	defer cancel()
	switch mode {
	case "idle", "":
		return st.rdb.HDel(ctx, st.Key("routing"), skill).Err()
	case "proficiency":
		return st.rdb.HSet(ctx, st.Key("routing"), skill, mode).Err()
	}
	return fmt.Errorf("routing for %s: %q is neither idle nor proficiency", skill, mode)
}

// UpsertAgent creates an agent (offline) or updates its name and skills,
// keeping its state. It returns the agent's state.
func (st *Store) UpsertAgent(ctx context.Context, a Agent) (AgentState, error) {
	if a.ID == "" || strings.ContainsAny(a.ID, ": {}") {
		return "", fmt.Errorf("upsert agent: invalid id %q", a.ID)
	}
	skills, err := encodeSkills(a.Skills)
	if err != nil {
		return "", fmt.Errorf("upsert agent %s: %w", a.ID, err)
	}
	res, err := st.run(ctx, st.s.upsertAgent, a.ID, a.Name, skills, ms(st.now())).Text()
	if err != nil {
		return "", scriptErr("upsert agent "+a.ID, err)
	}
	return AgentState(res), nil
}

// RemoveAgent deletes an agent that has no call.
func (st *Store) RemoveAgent(ctx context.Context, id string) error {
	return scriptErr("remove agent "+id, st.run(ctx, st.s.removeAgent, id).Err())
}

// SetAgentState moves an agent to available, not_ready (with a reason) or
// offline; from wrap_up it also ends the wrap-up. It returns the previous
// state.
func (st *Store) SetAgentState(ctx context.Context, id string, state AgentState, reason string) (AgentState, error) {
	res, err := st.run(ctx, st.s.agentState, id, string(state), reason, ms(st.now())).Text()
	if err != nil {
		return "", scriptErr(fmt.Sprintf("agent %s to %s", id, state), err)
	}
	return AgentState(res), nil
}

// SetAgentInstance records that the agent is logged in on this instance
// (on false: on none): dispatch then offers the agent only callers this
// instance holds, since the audio bridge joins the two here.
func (st *Store) SetAgentInstance(ctx context.Context, id string, here bool) error {
	inst := ""
	if here {
		inst = st.cfg.Owner
	}
	return scriptErr("agent "+id+" instance", st.run(ctx, st.s.agentInstance, id, inst).Err())
}

// GetAgent reads one agent.
func (st *Store) GetAgent(ctx context.Context, id string) (Agent, error) {
	ctx, cancel := st.op(ctx)
	defer cancel()
	m, err := st.rdb.HGetAll(ctx, st.Key("agent", id)).Result()
	if err != nil {
		return Agent{}, fmt.Errorf("read agent %s: %w", id, err)
	}
	if len(m) == 0 {
		return Agent{}, fmt.Errorf("read agent %s: %w", id, ErrNoAgent)
	}
	return agentFromHash(m), nil
}

func agentFromHash(m map[string]string) Agent {
	since, _ := strconv.ParseInt(m["since"], 10, 64)
	return Agent{
		ID: m["id"], Name: m["name"], Skills: decodeSkills(m["skills"]),
		State: AgentState(m["state"]), Since: fromMS(since), Reason: m["reason"], Call: m["call"],
		Instance: m["inst"],
	}
}

// Agents reads every agent, sorted by id.
func (st *Store) Agents(ctx context.Context) ([]Agent, error) {
	ctx, cancel := st.op(ctx)
	defer cancel()
	ids, err := st.rdb.SMembers(ctx, st.Key("agents")).Result()
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	sort.Strings(ids)
	pipe := st.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, st.Key("agent", id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read agents: %w", err)
	}
	out := make([]Agent, 0, len(ids))
	for _, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			out = append(out, agentFromHash(m))
		}
	}
	return out, nil
}

func (st *Store) enqueueArgs(e Entry, count bool) []any {
	c := "0"
	if count {
		c = "1"
	}
	args := []any{e.ID, e.Skill, strconv.FormatFloat(Score(e.Priority, e.Enqueued), 'f', 0, 64),
		ms(e.Enqueued), st.cfg.Owner, st.day(st.now()), c}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "f_"+k, e.Fields[k])
	}
	args = append(args, "prio", e.Priority)
	return args
}

// Enqueue puts a call in its skill's queue (or moves it there from another
// skill) and counts it offered to the skill. It returns the call's position
// (1 is next).
func (st *Store) Enqueue(ctx context.Context, e Entry) (int, error) {
	pos, err := st.run(ctx, st.s.enqueue, st.enqueueArgs(e, true)...).Int()
	if err != nil {
		return 0, scriptErr(fmt.Sprintf("enqueue %s to %s", e.ID, e.Skill), err)
	}
	return pos, nil
}

// Restore puts a call back in its queue with its original place after
// Redis lost it; it is not counted again.
func (st *Store) Restore(ctx context.Context, e Entry) (int, error) {
	pos, err := st.run(ctx, st.s.enqueue, st.enqueueArgs(e, false)...).Int()
	if err != nil {
		return 0, scriptErr(fmt.Sprintf("restore %s to %s", e.ID, e.Skill), err)
	}
	return pos, nil
}

// Dispatch pairs up to max waiting callers of the skills with available
// agents, best caller first.
func (st *Store) Dispatch(ctx context.Context, skills []string, max int) ([]Match, error) {
	if len(skills) == 0 {
		return nil, nil
	}
	args := []any{ms(st.now()), max}
	for _, s := range skills {
		args = append(args, s)
	}
	res, err := st.run(ctx, st.s.dispatch, args...).StringSlice()
	if err != nil {
		return nil, scriptErr("dispatch", err)
	}
	out := make([]Match, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		out = append(out, Match{Call: res[i], Agent: res[i+1], Skill: res[i+2], Owner: res[i+3]})
	}
	return out, nil
}

// Accept connects an offered call to its agent and counts it answered. It
// returns how long the caller waited in the skill's queue.
func (st *Store) Accept(ctx context.Context, callID, agentID string) (time.Duration, error) {
	now := st.now()
	w, err := st.run(ctx, st.s.accept, callID, agentID, ms(now), st.day(now),
		st.cfg.ServiceLevel.Milliseconds(), st.cfg.Window.Milliseconds()).Int64()
	if err != nil {
		return 0, scriptErr(fmt.Sprintf("accept %s by %s", callID, agentID), err)
	}
	return time.Duration(w) * time.Millisecond, nil
}

// Requeue undoes an offer: the caller goes back to the head of its queue,
// the agent to agentState (Available or NotReady with reason). It returns
// the caller's new position.
func (st *Store) Requeue(ctx context.Context, callID, agentID string, agentState AgentState, reason string) (int, error) {
	if agentState != Available && agentState != NotReady {
		return 0, fmt.Errorf("requeue %s: agent state %q: %w", callID, agentState, ErrBadState)
	}
	pos, err := st.run(ctx, st.s.requeue, callID, agentID, string(agentState), reason, ms(st.now())).Int()
	if err != nil {
		return 0, scriptErr(fmt.Sprintf("requeue %s from %s", callID, agentID), err)
	}
	return pos, nil
}

// Abandon removes a caller who hung up before reaching an agent and counts
// the call abandoned with its wait (a connected call is completed). It
// returns the state the call was in ("" when Redis did not have it).
func (st *Store) Abandon(ctx context.Context, callID string) (string, error) {
	now := st.now()
	res, err := st.run(ctx, st.s.abandon, callID, ms(now), st.day(now), "abandoned").Text()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", scriptErr("abandon "+callID, err)
	}
	return res, nil
}

// Complete ends a connected call; the agent goes to wrap-up. It returns the
// agent's id.
func (st *Store) Complete(ctx context.Context, callID string) (string, error) {
	res, err := st.run(ctx, st.s.complete, callID, ms(st.now())).Text()
	if err != nil {
		return "", scriptErr("complete "+callID, err)
	}
	return res, nil
}

// Reasons a waiting caller leaves the queue on purpose, counted per skill.
const (
	LeftOverflow = "overflowed" // max wait reached, sent to a flow node
	LeftMenu     = "to_menu"    // pressed the key back to the menu
)

// Leave takes a waiting caller out of the queue on purpose (reason is one
// of the Left* constants).
func (st *Store) Leave(ctx context.Context, callID, reason string) error {
	now := st.now()
	err := st.run(ctx, st.s.leave, callID, ms(now), st.day(now), reason).Err()
	return scriptErr("leave "+callID, err)
}

// Callback turns a waiting caller into a callback request that keeps the
// caller's place, and takes the caller out of the queue. It returns the
// request's position among the skill's callbacks.
func (st *Store) Callback(ctx context.Context, callID, number string) (int, error) {
	now := st.now()
	pos, err := st.run(ctx, st.s.callback, callID, number, ms(now), st.day(now)).Int()
	if err != nil {
		return 0, scriptErr("callback "+callID, err)
	}
	return pos, nil
}

// CallbackRequest is a caller's request to be called back.
type CallbackRequest struct {
	ID, Skill, Number, Name, CustomerID string
	Requested, Enqueued                 time.Time
}

// Callbacks lists a skill's callback requests in the order they are owed.
func (st *Store) Callbacks(ctx context.Context, skill string) ([]CallbackRequest, error) {
	ctx, cancel := st.op(ctx)
	defer cancel()
	ids, err := st.rdb.ZRange(ctx, st.Key("callbacks", skill), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list callbacks of %s: %w", skill, err)
	}
	out := make([]CallbackRequest, 0, len(ids))
	for _, id := range ids {
		m, err := st.rdb.HGetAll(ctx, st.Key("callback", id)).Result()
		if err != nil {
			return nil, fmt.Errorf("read callback %s: %w", id, err)
		}
		req, _ := strconv.ParseInt(m["requested_at"], 10, 64)
		enq, _ := strconv.ParseInt(m["enq"], 10, 64)
		out = append(out, CallbackRequest{ID: id, Skill: m["skill"], Number: m["number"], Name: m["name"],
			CustomerID: m["customer_id"], Requested: fromMS(req), Enqueued: fromMS(enq)})
	}
	return out, nil
}

// CallState is where a call stands in Redis.
type CallState struct {
	State string // waiting, offered, connected; "" when Redis does not have it
	Skill string
	Agent string
}

// Call reads a call's state.
func (st *Store) Call(ctx context.Context, callID string) (CallState, error) {
	ctx, cancel := st.op(ctx)
	defer cancel()
	v, err := st.rdb.HMGet(ctx, st.Key("call", callID), "state", "skill", "agent").Result()
	if err != nil {
		return CallState{}, fmt.Errorf("read call %s: %w", callID, err)
	}
	str := func(x any) string { s, _ := x.(string); return s }
	return CallState{State: str(v[0]), Skill: str(v[1]), Agent: str(v[2])}, nil
}

// Position is a waiting call's place in its queue (1 is next), or
// ErrGone.
func (st *Store) Position(ctx context.Context, skill, callID string) (int, error) {
	ctx, cancel := st.op(ctx)
	defer cancel()
	r, err := st.rdb.ZRank(ctx, st.Key("wait", skill), callID).Result()
	if errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("position of %s: %w", callID, ErrGone)
	}
	if err != nil {
		return 0, fmt.Errorf("position of %s: %w", callID, err)
	}
	return int(r) + 1, nil
}

// Heartbeat tells other instances this one is alive; an instance silent
// longer than the reconciler's stale limit has its calls cleaned up.
func (st *Store) Heartbeat(ctx context.Context) error {
	ctx, cancel := st.op(ctx)
	defer cancel()
	return st.rdb.ZAdd(ctx, st.Key("instances"), redis.Z{Score: float64(ms(st.now())), Member: st.cfg.Owner}).Err()
}

// ReconcileReport says what Reconcile repaired.
type ReconcileReport struct {
	Lost     int      // calls removed: no longer held by their instance
	Removed  int      // queue entries removed: call missing or not waiting
	Repaired int      // agents freed from a reservation or call that was not theirs
	Missing  []string // live calls Redis did not have (the caller restores them)
	// Abandoned counts callers who hung up while Redis was unreachable,
	// removed now (Queue.Reconcile only).
	Abandoned int
}

// Reconcile repairs Redis after a start or a reconnect: live lists the
// calls this instance holds now; instances silent since staleBefore are
// treated as crashed.
func (st *Store) Reconcile(ctx context.Context, live []string, staleBefore time.Time) (ReconcileReport, error) {
	now := st.now()
	args := []any{st.cfg.Owner, ms(now), st.day(now), ms(staleBefore)}
	for _, id := range live {
		args = append(args, id)
	}
	res, err := st.run(ctx, st.s.reconcile, args...).Slice()
	if err != nil {
		return ReconcileReport{}, scriptErr("reconcile", err)
	}
	var r ReconcileReport
	if len(res) >= 3 {
		r.Lost = toInt(res[0])
		r.Removed = toInt(res[1])
		r.Repaired = toInt(res[2])
		for _, v := range res[3:] {
			if s, ok := v.(string); ok {
				r.Missing = append(r.Missing, s)
			}
		}
	}
	sort.Strings(r.Missing)
	return r, nil
}

func toInt(v any) int {
	switch x := v.(type) {
	case int64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}
