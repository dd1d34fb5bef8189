package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Report is what a run measured: counts, the distributions of every
// figure, and each call's own figures.
type Report struct {
	Target   string         `json:"target"`
	Started  time.Time      `json:"started"`
	Elapsed  float64        `json:"elapsed_s"`
	Counts   Counts         `json:"counts"`
	Failures map[string]int `json:"failures"` // by reason; rejections as rejected_<status>

	Setup         Summary `json:"setup"`           // INVITE sent → 200 OK received
	FirstPrompt   Summary `json:"first_prompt"`    // 200 OK → the first loud packet
	TimeToAgent   Summary `json:"time_to_agent"`   // the last key sent → call_connected at the agent
	AcceptToAudio Summary `json:"accept_to_audio"` // the agent's accept → the caller's first packet at the agent

	CallerToAgent Direction `json:"caller_to_agent"`
	AgentToCaller Direction `json:"agent_to_caller"`
	// FromServer is the whole stream the server sent the callers, stamped
	// or not: its loss, jitter and gaps tell how well it was paced.
	FromServer ServerStream `json:"from_server"`
	// StrayRTP is, with Config.SharedRTP, the packets that reached the
	// callers' socket from an address no call knew: sent before the call
	// had read the server's answer, or after it ended.
	StrayRTP int `json:"stray_rtp_packets,omitempty"`
	// GeneratorDrops is, with Config.SharedRTP on Linux, the packets the
	// kernel dropped into the callers' sockets because callsim read them
	// too slowly: loss of its own making, which the loss figures include.
	GeneratorDrops int `json:"generator_rtp_drops,omitempty"`

	Calls []CallResult `json:"calls"`
}

// Counts are the calls by outcome.
type Counts struct {
	Started   int `json:"started"`
	Completed int `json:"completed"`
	Abandoned int `json:"abandoned"`
	Failed    int `json:"failed"`
	CutOff    int `json:"cut_off"`
}

// Direction is one direction of audio over every call that carried it.
type Direction struct {
	Packets int     `json:"packets"` // stamped packets received
	Lost    int     `json:"lost"`
	LossPct float64 `json:"loss_pct"`
	Latency Summary `json:"latency"` // per packet: received − sent
	Jitter  Summary `json:"jitter"`  // per call: the RFC 3550 jitter at the call's end
}

// CallResult is one call's figures (milliseconds; absent: not measured).
type CallResult struct {
	Index           int        `json:"index"`
	CallID          string     `json:"call_id,omitempty"`
	From            string     `json:"from"`
	Outcome         Outcome    `json:"outcome"`
	Reason          string     `json:"reason,omitempty"`
	Detail          string     `json:"detail,omitempty"`
	Agent           string     `json:"agent,omitempty"`
	SetupMs         float64    `json:"setup_ms,omitempty"`
	FirstPromptMs   float64    `json:"first_prompt_ms,omitempty"`
	TimeToAgentMs   float64    `json:"time_to_agent_ms,omitempty"`
	AcceptToAudioMs float64    `json:"accept_to_audio_ms,omitempty"`
	CallerToAgent   *StreamLeg `json:"caller_to_agent,omitempty"`
	AgentToCaller   *StreamLeg `json:"agent_to_caller,omitempty"`
}

// StreamLeg is one direction of one call.
type StreamLeg struct {
	Packets  int     `json:"packets"`
	Lost     int     `json:"lost"`
	JitterMs float64 `json:"jitter_ms"`
	Latency  Summary `json:"latency"`
	Foreign  int     `json:"foreign,omitempty"` // stamped packets of another call or agent: crossed audio
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// span is b − a, 0 when either is unknown.
func span(a, b time.Time) time.Duration {
	if a.IsZero() || b.IsZero() {
		return 0
	}
	return b.Sub(a)
}

// buildReport joins each caller's leg with the agent leg of the same call
// (by call_id, which ivrd takes from the SIP Call-ID, else by the caller's
// stamps heard at the agent) and sums up. c2a and a2c are the audio of
// every call, added up as each call ended.
func buildReport(cfg *Config, start time.Time, elapsed time.Duration, legs []*callerLeg, agentLegs []agentLeg, c2a, a2c *dirSum, fromServer *streamSum) *Report {
	byID := map[string]*agentLeg{}
	byStream := map[int]*agentLeg{}
	for i := range agentLegs {
		al := &agentLegs[i]
		if prev := byID[al.callID]; prev == nil || prev.connected.IsZero() {
			byID[al.callID] = al // a call offered twice (missed, declined): the connected offer
		}
		if al.stream >= 0 && !al.connected.IsZero() {
			byStream[al.stream] = al
		}
	}
	r := &Report{Target: cfg.Target, Started: start, Elapsed: elapsed.Seconds(), Failures: map[string]int{}}
	var setup, prompt, toAgent, toAudio Hist
	for _, leg := range legs {
		al := byID[leg.callID]
		if al == nil {
			al = byStream[leg.index]
		}
		res := CallResult{Index: leg.index, CallID: leg.callID, From: leg.from, Outcome: leg.outcome, Reason: leg.reason, Detail: leg.detail,
			AgentToCaller: leg.fromAgent}
		var connected, acceptAt, audioAt time.Time
		if al != nil {
			res.Agent = al.agent
			res.CallerToAgent = al.fromCaller
			connected, acceptAt, audioAt = al.connected, al.acceptAt, al.firstAudioAt
		}
		for _, f := range []struct {
			d   time.Duration
			dst *float64
			h   *Hist
		}{
			{span(leg.inviteAt, leg.answeredAt), &res.SetupMs, &setup},
			{span(leg.answeredAt, leg.firstSoundAt), &res.FirstPromptMs, &prompt},
			{span(leg.digitsAt, connected), &res.TimeToAgentMs, &toAgent},
			{span(acceptAt, audioAt), &res.AcceptToAudioMs, &toAudio},
		} {
			if f.d != 0 {
				*f.dst = ms(f.d)
				f.h.Add(f.d)
			}
		}
		// What only the two sides together can tell.
		switch {
		case len(cfg.Agents) == 0:
		case res.Outcome == Completed && (res.CallerToAgent == nil || res.CallerToAgent.Packets == 0):
			res.Outcome, res.Reason, res.Detail = Failed, ReasonNoAudioToAgent, ""
		case res.Outcome == Failed && res.Reason == ReasonNoAgent && al != nil && !al.connected.IsZero():
			res.Reason = ReasonNoAudioToCaller
		}
		switch res.Outcome {
		case Completed:
			r.Counts.Completed++
		case Abandoned:
			r.Counts.Abandoned++
		case CutOff:
			r.Counts.CutOff++
		case Failed:
			r.Counts.Failed++
			key := res.Reason
			if key == ReasonRejected {
				key = fmt.Sprintf("%s_%d", key, leg.status)
			}
			r.Failures[key]++
		}
		r.Calls = append(r.Calls, res)
	}
	r.Counts.Started = len(legs)
	r.Setup, r.FirstPrompt, r.TimeToAgent, r.AcceptToAudio = setup.Summary(), prompt.Summary(), toAgent.Summary(), toAudio.Summary()
	r.CallerToAgent, r.AgentToCaller = c2a.direction(), a2c.direction()
	r.FromServer = fromServer.result()
	return r
}

// dirSum adds up one direction of audio over calls as they end: every
// packet's latency and every call's jitter in histograms, so its memory
// stays the same however many calls and packets a run has. Callers and
// agents add to it from their own goroutines.
type dirSum struct {
	mu                      sync.Mutex
	packets, expected, lost int
	latency, jitter         Hist
}

func (d *dirSum) add(m *Meter) {
	if m.Received() == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.packets += m.Received()
	d.expected += m.Expected()
	d.lost += m.Lost()
	d.latency.Merge(m.Latency())
	d.jitter.Add(m.Jitter())
}

func (d *dirSum) direction() Direction {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := Direction{Packets: d.packets, Lost: d.lost, Latency: d.latency.Summary(), Jitter: d.jitter.Summary()}
	if d.expected > 0 {
		out.LossPct = 100 * float64(d.lost) / float64(d.expected)
	}
	return out
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people: counts, a row per figure with
// its percentiles, loss per direction and failures by reason.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	c := r.Counts
	fmt.Fprintf(&b, "callsim: %d calls to %s in %.1f s: %d completed, %d abandoned, %d failed, %d cut off\n\n",
		c.Started, r.Target, r.Elapsed, c.Completed, c.Abandoned, c.Failed, c.CutOff)
	fmt.Fprintf(&b, "%-42s %7s %9s %9s %9s %9s %9s\n", "ms", "n", "mean", "p50", "p95", "p99", "max")
	row := func(name string, s Summary) {
		if s.N == 0 {
			fmt.Fprintf(&b, "%-42s %7d %9s %9s %9s %9s %9s\n", name, 0, "-", "-", "-", "-", "-")
			return
		}
		fmt.Fprintf(&b, "%-42s %7d %9.1f %9.1f %9.1f %9.1f %9.1f\n", name, s.N, s.Mean, s.P50, s.P95, s.P99, s.Max)
	}
	row("call setup (INVITE → 200 OK)", r.Setup)
	row("first prompt audio (200 OK → sound)", r.FirstPrompt)
	row("time to agent (last key → connected)", r.TimeToAgent)
	row("accept → first caller audio at agent", r.AcceptToAudio)
	row("relay latency caller → agent (packets)", r.CallerToAgent.Latency)
	row("relay latency agent → caller (packets)", r.AgentToCaller.Latency)
	row("jitter caller → agent (calls)", r.CallerToAgent.Jitter)
	row("jitter agent → caller (calls)", r.AgentToCaller.Jitter)
	row("server stream jitter (calls)", r.FromServer.Jitter)
	row("server stream longest gap (calls)", r.FromServer.MaxGap)
	b.WriteString("\n")
	for _, d := range []struct {
		name string
		d    Direction
	}{{"caller → agent", r.CallerToAgent}, {"agent → caller", r.AgentToCaller}} {
		fmt.Fprintf(&b, "loss %s: %d of %d packets (%.2f%%)\n", d.name, d.d.Lost, d.d.Packets+d.d.Lost, d.d.LossPct)
	}
	fs := r.FromServer
	fmt.Fprintf(&b, "loss server → callers (whole stream): %d of %d packets (%.2f%%)\n", fs.Lost, fs.Packets+fs.Lost, fs.LossPct)
	if r.GeneratorDrops > 0 {
		fmt.Fprintf(&b, "of which dropped by callsim's own RTP sockets (read too slowly): %d packets\n", r.GeneratorDrops)
	}
	if len(r.Failures) == 0 {
		b.WriteString("failures: none\n")
	} else {
		b.WriteString("failures:")
		for _, k := range slices.Sorted(maps.Keys(r.Failures)) {
			fmt.Fprintf(&b, " %s %d", k, r.Failures[k])
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
