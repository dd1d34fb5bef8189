package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Config is one load run: who calls whom, how the calls behave, and the
// agents who take them. Zero values take the defaults Validate fills in.
type Config struct {
	// Target is the SIP URI every call dials, e.g. sip:support@127.0.0.1:5060.
	Target string
	// Transport is "udp" (default) or "tcp"; LocalIP is the address the
	// callers use for SIP and RTP (default 127.0.0.1, for a remote target
	// an address it can reach).
	Transport string
	LocalIP   string
	// SharedRTP gives every caller's RTP one socket, read in batches, as
	// a trunk's media gateway may (testcaller.PhoneConfig.SharedRTP):
	// the load generator then costs the machine less per call. The
	// server still gives each call a port of its own.
	SharedRTP bool
	// FromPrefix and a number unique in the run make each caller's number
	// (ivrd limits calls per number).
	FromPrefix string

	// Calls is how many calls to place. Rate starts them at this many per
	// second; Concurrency keeps this many in progress. With both, the rate
	// holds unless Concurrency calls are already in progress.
	Calls       int
	Rate        float64
	Concurrency int
	// Duration stops starting new calls after this long (0: no limit);
	// calls in progress finish.
	Duration time.Duration

	// Path is the keys pressed (RFC 4733) once the call is answered: the
	// first DigitDelay after the answer, the next ones DigitGap apart.
	// Servers with type-ahead (ivrd keeps keys pressed during a prompt for
	// the next menu) take them at once; others need a DigitDelay that
	// reaches their menu.
	Path       string
	DigitDelay time.Duration
	DigitGap   time.Duration
	// Talk is how long the caller stays once it hears the agent; then it
	// hangs up.
	Talk time.Duration
	// Abandon is the share (0…1) of callers who hang up while waiting:
	// each of them at a random moment within AbandonAfter of the last key.
	Abandon      float64
	AbandonAfter time.Duration
	// AnswerTimeout bounds INVITE → 200; AgentTimeout the wait from the
	// last key to the agent's audio.
	AnswerTimeout time.Duration
	AgentTimeout  time.Duration
	// FirstPrompt measures how fast calls are set up through their first
	// prompt: each caller hangs up as soon as it hears sound, and fails
	// (no_prompt) when it hears none within AnswerTimeout of the answer.
	// Path and Talk are not used; Agents must be empty.
	FirstPrompt bool

	// HTTP is ivrd's base URL for the agents (e.g. http://127.0.0.1:8080);
	// empty with no Agents: the calls are not meant to reach agents.
	HTTP   string
	Agents []Account
	// AcceptDelay is how long an agent lets an offered call ring; WrapUp
	// how long it stays in wrap-up before wrapup_done.
	AcceptDelay time.Duration
	WrapUp      time.Duration
	// AgentsQuietIdle makes the agents send audio only during calls (a
	// softphone that attaches its microphone per call). By default they
	// send every 20 ms while logged in, as ivrd's agent page does.
	AgentsQuietIdle bool

	// Seed makes the choice of abandoning callers repeatable (0: random).
	Seed uint64
	// Progress is how often Run reports progress (default 1 s).
	Progress time.Duration
	Logger   *slog.Logger
}

// Account is one agent's login.
type Account struct {
	User     string
	Password string
}

// ParseAccounts reads "user:pass,user2:pass2"; a user without ":pass"
// has its name for a password (the demo's convention).
func ParseAccounts(s string) ([]Account, error) {
	var out []Account
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		user, pass, ok := strings.Cut(f, ":")
		if !ok {
			pass = user
		}
		if user == "" {
			return nil, fmt.Errorf("agent %q: no user name", f)
		}
		out = append(out, Account{User: user, Password: pass})
	}
	return out, nil
}

// Validate fills in defaults and checks the configuration; errors name
// the field (and callsim's flag).
func (c *Config) Validate() error {
	var target sip.Uri
	if c.Target == "" {
		return errors.New("target (-sip): required, e.g. sip:support@127.0.0.1:5060")
	}
	if err := sip.ParseUri(c.Target, &target); err != nil {
		return fmt.Errorf("target (-sip) %q: %w", c.Target, err)
	}
	switch c.Transport {
	case "":
		c.Transport = "udp"
	case "udp", "tcp":
	default:
		return fmt.Errorf("transport (-transport) %q: udp or tcp", c.Transport)
	}
	if c.LocalIP == "" {
		c.LocalIP = "127.0.0.1"
	}
	if c.FromPrefix == "" {
		c.FromPrefix = "+1555"
	}
	if c.Calls <= 0 {
		return fmt.Errorf("calls (-calls) %d: at least 1", c.Calls)
	}
	if c.Calls > 1<<16 {
		return fmt.Errorf("calls (-calls) %d: at most %d per run (the stamps number calls in 16 bits)", c.Calls, 1<<16)
	}
	if c.Rate < 0 || c.Concurrency < 0 {
		return errors.New("rate (-rate) and concurrency (-concurrency) cannot be negative")
	}
	if c.Rate == 0 && c.Concurrency == 0 {
		c.Concurrency = 10
	}
	for _, r := range c.Path {
		if !strings.ContainsRune("0123456789*#ABCD", r) {
			return fmt.Errorf("path (-path) %q: %q is not a DTMF key", c.Path, r)
		}
	}
	if c.DigitDelay == 0 {
		c.DigitDelay = 1500 * time.Millisecond
	}
	if c.DigitGap == 0 {
		c.DigitGap = 300 * time.Millisecond
	}
	if c.Talk == 0 {
		c.Talk = 5 * time.Second
	}
	if c.Abandon < 0 || c.Abandon > 1 {
		return fmt.Errorf("abandon (-abandon) %g: a share from 0 to 1", c.Abandon)
	}
	if c.AbandonAfter == 0 {
		c.AbandonAfter = 10 * time.Second
	}
	if c.AnswerTimeout == 0 {
		c.AnswerTimeout = 10 * time.Second
	}
	if c.AgentTimeout == 0 {
		c.AgentTimeout = 2 * time.Minute
	}
	if c.FirstPrompt && len(c.Agents) > 0 {
		return errors.New("first-prompt (-first-prompt): callers hang up at the first prompt, so no call reaches the agents (-agents, -agent-count): leave them out")
	}
	if len(c.Agents) > 0 && c.HTTP == "" {
		return errors.New("http (-http): required with agents, e.g. http://127.0.0.1:8080")
	}
	c.HTTP = strings.TrimRight(c.HTTP, "/")
	if len(c.Agents) > 1<<16 {
		return fmt.Errorf("agents (-agents): at most %d", 1<<16)
	}
	if c.Progress == 0 {
		c.Progress = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
