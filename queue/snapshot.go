package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Snapshot is one skill's queue at one moment: what the estimate and the
// statistics are computed from. Read it with Store.Snapshot.
type Snapshot struct {
	Skill   string
	At      time.Time
	Waiting int
	Oldest  time.Time // arrival of the longest-waiting caller; zero when none waits

	Stats  Stats       // today's counters
	Agents []AgentLoad // agents who have the skill, any state

	// HandleTimes are the most recent handle times (talk + wrap-up) of the
	// skill's calls, newest first (at most 100).
	HandleTimes []time.Duration
	// WrapTimes are the most recent wrap-up times alone, newest first.
	WrapTimes []time.Duration
	// Served is how many callers left the queue to an agent within the
	// window ending At; FirstServed is the earliest of them (zero when none).
	Served      int
	FirstServed time.Time
	Window      time.Duration
}

// AgentLoad is one agent's state as the estimate sees it.
type AgentLoad struct {
	ID    string
	State AgentState
	Since time.Time
}

// Stats are a skill's counters since the start of the day.
type Stats struct {
	Offered    int // callers who entered the queue
	Answered   int // callers connected to an agent
	AnsweredSL int // of those, answered within the service-level threshold
	Abandoned  int // callers who hung up while waiting
	Lost       int // callers whose instance vanished while they waited
	Overflowed int // callers sent on after the maximum wait
	ToMenu     int // callers who went back to the menu
	Callbacks  int // callers who left a callback request

	WaitSum        time.Duration // total wait of the answered
	AbandonWaitSum time.Duration // total wait of the abandoned
}

// AvgWait is the mean wait of answered callers.
func (s Stats) AvgWait() time.Duration {
	if s.Answered == 0 {
		return 0
	}
	return s.WaitSum / time.Duration(s.Answered)
}

// ServiceLevel is the share of answered calls answered within the
// threshold, 0..1; 1 when nobody was answered yet (nobody waited too long).
func (s Stats) ServiceLevel() float64 {
	if s.Answered == 0 {
		return 1
	}
	return float64(s.AnsweredSL) / float64(s.Answered)
}

// Staffed counts the agents logged in and working the skill: everyone but
// not_ready and offline.
func (s *Snapshot) Staffed() int {
	n := 0
	for _, a := range s.Agents {
		switch a.State {
		case Available, Reserved, OnCall, WrapUp:
			n++
		}
	}
	return n
}

// AgentsIn counts the skill's agents in a state.
func (s *Snapshot) AgentsIn(state AgentState) int {
	n := 0
	for _, a := range s.Agents {
		if a.State == state {
			n++
		}
	}
	return n
}

// LongestWait is how long the longest-waiting caller has waited.
func (s *Snapshot) LongestWait() time.Duration {
	if s.Oldest.IsZero() || s.Waiting == 0 {
		return 0
	}
	return max(0, s.At.Sub(s.Oldest))
}

// Snapshot reads one skill's queue in one script.
func (st *Store) Snapshot(ctx context.Context, skill string) (Snapshot, error) {
	now := st.now()
	res, err := st.run(ctx, st.s.snapshot, skill, ms(now), st.cfg.Window.Milliseconds()).Slice()
	if err != nil {
		return Snapshot{}, scriptErr("snapshot "+skill, err)
	}
	if len(res) < 8 {
		return Snapshot{}, fmt.Errorf("snapshot %s: short reply (%d items)", skill, len(res))
	}
	s := Snapshot{Skill: skill, At: now, Waiting: toInt(res[0]), Window: st.cfg.Window}
	if v := toInt(res[1]); v > 0 {
		s.Oldest = fromMS(int64(v))
	}
	stats, _ := res[2].([]any)
	today := st.day(now)
	fields := make(map[string]int, len(stats)/2)
	day := ""
	for i := 0; i+1 < len(stats); i += 2 {
		k, _ := stats[i].(string)
		if k == "day" {
			day, _ = stats[i+1].(string)
			continue
		}
		fields[k] = toInt(stats[i+1])
	}
	if day == today { // yesterday's counters read as zero until the first event of today
		s.Stats = Stats{
			Offered: fields["offered"], Answered: fields["answered"], AnsweredSL: fields["answered_sl"],
			Abandoned: fields["abandoned"], Lost: fields["lost"], Overflowed: fields[LeftOverflow],
			ToMenu: fields[LeftMenu], Callbacks: fields["callbacks"],
			WaitSum:        time.Duration(fields["wait_ms"]) * time.Millisecond,
			AbandonWaitSum: time.Duration(fields["abandoned_ms"]) * time.Millisecond,
		}
	}
	agents, _ := res[3].([]any)
	for i := 0; i+2 < len(agents); i += 3 {
		id, _ := agents[i].(string)
		state, _ := agents[i+1].(string)
		since, _ := strconv.ParseInt(fmt.Sprint(agents[i+2]), 10, 64)
		s.Agents = append(s.Agents, AgentLoad{ID: id, State: AgentState(state), Since: fromMS(since)})
	}
	hts, _ := res[4].([]any)
	for _, v := range hts {
		s.HandleTimes = append(s.HandleTimes, time.Duration(toInt(v))*time.Millisecond)
	}
	wts, _ := res[7].([]any)
	for _, v := range wts {
		s.WrapTimes = append(s.WrapTimes, time.Duration(toInt(v))*time.Millisecond)
	}
	s.Served = toInt(res[5])
	if v := toInt(res[6]); v > 0 {
		s.FirstServed = fromMS(int64(v))
	}
	return s, nil
}
