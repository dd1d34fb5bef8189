package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/queue"
)

// maxWaitingListed bounds the waiting callers listed per skill: a
// wallboard needs the head of a queue, not all of a flood.
const maxWaitingListed = 500

// callJSON is a call in progress as GET /api/v1/calls shows it.
type callJSON struct {
	ID       string     `json:"call_id"`
	State    string     `json:"state"` // waiting, offered (ringing at an agent), connected
	Skill    string     `json:"skill"`
	Position int        `json:"position,omitempty"` // in its queue, 1 is next (waiting only)
	Priority int        `json:"priority"`
	Enqueued time.Time  `json:"enqueued"` // arrival in the skill's queue
	WaitedS  float64    `json:"waited_s"` // in the queue: so far, or until an agent answered
	Since    time.Time  `json:"since"`    // in this state since
	InStateS float64    `json:"in_state_s"`
	Caller   callerJSON `json:"caller"`
	Agent    *agentRef  `json:"agent,omitempty"`
	Instance string     `json:"instance,omitempty"` // the ivrd holding the SIP call
}

type callerJSON struct {
	Number     string `json:"number,omitempty"`
	Name       string `json:"name,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	Tier       string `json:"tier,omitempty"`
}

type agentRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// calls is GET /api/v1/calls: every call in a queue or with an agent,
// read from Redis (so every instance's calls): the waiting callers of
// each configured skill in queue order, then the calls agents have
// (ringing or connected), longest first. Callers still in the IVR menus
// are not in Redis and not listed.
func (s *Server) calls(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	out, err := s.readCalls(ctx, time.Now())
	if err != nil {
		s.log.Warn("GET /api/v1/calls", "error", err)
		writeError(w, http.StatusServiceUnavailable, "queue state unavailable: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// readCalls reads the waiting entries (wait:<skill>) and the agents'
// calls, then every listed call's hash (call:<id>) in one pipeline. The
// key layout is docs/queue.md's; nothing is written.
func (s *Server) readCalls(ctx context.Context, now time.Time) ([]callJSON, error) {
	st := s.cfg.Queue.Store()
	rdb := st.Client()
	skills := s.cfg.Queue.Skills()
	agents, err := st.Agents(ctx)
	if err != nil {
		return nil, err
	}

	pipe := rdb.Pipeline()
	waits := make([]*redis.StringSliceCmd, len(skills))
	for i, sk := range skills {
		waits[i] = pipe.ZRange(ctx, st.Key("wait", sk), 0, maxWaitingListed-1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read waiting callers: %w", err)
	}

	type want struct {
		id, skill string
		pos       int
		agent     *queue.Agent
	}
	var list []want
	for i, sk := range skills {
		for j, id := range waits[i].Val() {
			list = append(list, want{id: id, skill: sk, pos: j + 1})
		}
	}
	for i := range agents {
		a := &agents[i]
		if a.Call != "" && (a.State == queue.Reserved || a.State == queue.OnCall) {
			list = append(list, want{id: a.Call, agent: a})
		}
	}
	if len(list) == 0 {
		return []callJSON{}, nil
	}

	pipe = rdb.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, len(list))
	for i, c := range list {
		hashes[i] = pipe.HGetAll(ctx, st.Key("call", c.id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read calls: %w", err)
	}

	out := make([]callJSON, 0, len(list))
	var withAgents []callJSON
	for i, c := range list {
		h := hashes[i].Val()
		if len(h) == 0 {
			continue // gone between the two reads
		}
		cj := callJSON{
			ID: c.id, State: h["state"], Skill: h["skill"], Position: c.pos, Instance: h["owner"],
			Caller: callerJSON{Number: h["f_number"], Name: h["f_name"], CustomerID: h["f_customer_id"], Tier: h["f_tier"]},
		}
		cj.Priority, _ = strconv.Atoi(h["prio"])
		enq := msTime(h["enq"])
		cj.Enqueued = enq.UTC()
		since := enq
		switch {
		case c.agent == nil:
			if cj.State != "waiting" {
				continue // offered meanwhile: listed with its agent next time
			}
			cj.WaitedS = secondsSince(enq, now)
		default:
			cj.Agent = &agentRef{ID: c.agent.ID, Name: c.agent.Name}
			if cj.State == "" {
				cj.State = map[queue.AgentState]string{queue.Reserved: "offered", queue.OnCall: "connected"}[c.agent.State]
			}
			end := now
			switch cj.State {
			case "connected":
				since = msTime(h["connected_at"])
				end = since
			case "offered":
				since = msTime(h["offered_at"])
			}
			cj.Position = 0
			cj.WaitedS = secondsSince(enq, end)
		}
		cj.Since = since.UTC()
		cj.InStateS = secondsSince(since, now)
		if c.agent == nil {
			out = append(out, cj)
		} else {
			withAgents = append(withAgents, cj)
		}
	}
	slices.SortStableFunc(withAgents, func(a, b callJSON) int { return cmp.Compare(b.InStateS, a.InStateS) })
	return append(out, withAgents...), nil
}

// msTime reads a millisecond timestamp field; zero time when absent.
func msTime(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// secondsSince is whole seconds from t to now; 0 for an unknown t.
func secondsSince(t, now time.Time) float64 {
	if t.IsZero() || now.Before(t) {
		return 0
	}
	return float64(now.Sub(t).Round(time.Second) / time.Second)
}
