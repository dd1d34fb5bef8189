package queue

import (
	"context"
	"math"
	"time"
)

// Report is one skill's queue as /api/v1/queues shows it.
type Report struct {
	Skill        string      `json:"skill"`
	Waiting      int         `json:"waiting"`
	LongestWaitS float64     `json:"longest_wait_s"`
	EWTS         float64     `json:"ewt_s"`     // estimated wait of a caller joining now
	EWTKnown     bool        `json:"ewt_known"` // false: no agent staffed and nothing measured
	Agents       AgentCounts `json:"agents"`
	Offered      int         `json:"offered"`
	Answered     int         `json:"answered"`
	Abandoned    int         `json:"abandoned"`
	Lost         int         `json:"lost"`
	Overflowed   int         `json:"overflowed"`
	ToMenu       int         `json:"to_menu"`
	Callbacks    int         `json:"callbacks"`
	AvgWaitS     float64     `json:"avg_wait_s"`
	// ServiceLevel is the share of today's answered callers answered
	// within ServiceLevelS, 0..1.
	ServiceLevel  float64 `json:"service_level"`
	ServiceLevelS float64 `json:"service_level_threshold_s"`
}

// AgentCounts counts a skill's agents by state; busy is reserved (an offer
// ringing) plus on_call.
type AgentCounts struct {
	Available int `json:"available"`
	Busy      int `json:"busy"`
	WrapUp    int `json:"wrap_up"`
	NotReady  int `json:"not_ready"`
	Offline   int `json:"offline"`
}

func (a AgentCounts) byState() map[string]int {
	return map[string]int{"available": a.Available, "busy": a.Busy, "wrap_up": a.WrapUp, "not_ready": a.NotReady, "offline": a.Offline}
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*10) / 10 }

// Report reads one skill's figures.
func (q *Queue) Report(ctx context.Context, skill string) (Report, error) {
	s, err := q.st.Snapshot(ctx, skill)
	if err != nil {
		return Report{}, err
	}
	r := Report{
		Skill: skill, Waiting: s.Waiting, LongestWaitS: seconds(s.LongestWait()),
		Agents: AgentCounts{
			Available: s.AgentsIn(Available), Busy: s.AgentsIn(Reserved) + s.AgentsIn(OnCall),
			WrapUp: s.AgentsIn(WrapUp), NotReady: s.AgentsIn(NotReady), Offline: s.AgentsIn(Offline),
		},
		Offered: s.Stats.Offered, Answered: s.Stats.Answered, Abandoned: s.Stats.Abandoned,
		Lost: s.Stats.Lost, Overflowed: s.Stats.Overflowed, ToMenu: s.Stats.ToMenu, Callbacks: s.Stats.Callbacks,
		AvgWaitS: seconds(s.Stats.AvgWait()), ServiceLevel: math.Round(s.Stats.ServiceLevel()*1000) / 1000,
		ServiceLevelS: q.st.cfg.ServiceLevel.Seconds(),
	}
	if ewt, ok := Estimate(&s, s.Waiting+1, q.cfg.Estimate); ok {
		r.EWTS, r.EWTKnown = seconds(ewt), true
	}
	return r, nil
}

// Reports reads every configured skill's figures, in skill order.
func (q *Queue) Reports(ctx context.Context) ([]Report, error) {
	out := make([]Report, 0, len(q.cfg.Skills))
	for _, skill := range q.Skills() {
		r, err := q.Report(ctx, skill)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
