// Command callsim is a load generator and test tool for ivrd: it places SIP
// calls that press keys along a menu path and wait for an agent, runs agent
// bots that take them, and reports setup latency, time to the first prompt
// and to an agent, RTP loss, jitter and relay latency each way, and failures
// by reason. It can target any ivrd. docs/callsim.md explains the figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/emiago/sipgo/sip"

	"ivrd/cmd/callsim/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "callsim:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg sim.Config
	var agents, agentPrefix, jsonOut, logLevel string
	var agentCount int
	flag.StringVar(&cfg.Target, "sip", "sip:support@127.0.0.1:5060", "the SIP URI every call dials")
	flag.StringVar(&cfg.Transport, "transport", "udp", "SIP transport: udp or tcp")
	flag.StringVar(&cfg.LocalIP, "local-ip", "127.0.0.1", "the callers' address for SIP and RTP (one the target can reach)")
	flag.BoolVar(&cfg.SharedRTP, "shared-rtp", false, "every caller's RTP on one socket of callsim's, read in batches, as a trunk's media gateway may (cheaper for a big run); the server still gives each call its own port")
	flag.StringVar(&cfg.FromPrefix, "from-prefix", "+1555", "caller numbers are this and 7 digits, unique in the run")
	flag.StringVar(&cfg.HTTP, "http", "http://127.0.0.1:8080", "ivrd's base URL, for the agents")
	flag.StringVar(&agents, "agents", "", "agents to log in: user:password,… (a user alone: the password is the name)")
	flag.StringVar(&agentPrefix, "agent-prefix", "", "with -agent-count: agents <prefix>1…<prefix>N, each with its name as password")
	flag.IntVar(&agentCount, "agent-count", 0, "how many -agent-prefix agents")
	flag.IntVar(&cfg.Calls, "calls", 10, "how many calls to place")
	flag.Float64Var(&cfg.Rate, "rate", 0, "start calls at this many per second (with -concurrency: no more than that many at once)")
	flag.IntVar(&cfg.Concurrency, "concurrency", 0, "keep this many calls in progress (default 10 without -rate)")
	flag.DurationVar(&cfg.Duration, "duration", 0, "stop starting calls after this long (calls in progress finish); 0: no limit")
	flag.StringVar(&cfg.Path, "path", "1", "keys pressed after the answer, as RFC 4733 events")
	flag.DurationVar(&cfg.DigitDelay, "digit-delay", 0, "from the answer to the first key (default 1.5s)")
	flag.DurationVar(&cfg.DigitGap, "digit-gap", 0, "between keys (default 300ms)")
	flag.DurationVar(&cfg.Talk, "talk", 0, "how long a caller stays once it hears the agent (default 5s)")
	flag.Float64Var(&cfg.Abandon, "abandon", 0, "share of callers (0-1) who hang up while waiting for an agent")
	flag.DurationVar(&cfg.AbandonAfter, "abandon-after", 0, "abandoning callers hang up at a random moment within this of the last key (default 10s)")
	flag.DurationVar(&cfg.AnswerTimeout, "answer-timeout", 0, "INVITE → final answer limit (default 10s)")
	flag.DurationVar(&cfg.AgentTimeout, "agent-timeout", 0, "last key → agent heard limit (default 2m)")
	flag.BoolVar(&cfg.FirstPrompt, "first-prompt", false, "hang up as soon as the first prompt is heard (setup rate through the first prompt; no path, no agents)")
	flag.DurationVar(&cfg.AcceptDelay, "accept-delay", 0, "how long agents let an offered call ring before accepting")
	flag.DurationVar(&cfg.WrapUp, "wrapup", 0, "how long agents stay in wrap-up before wrapup_done")
	flag.BoolVar(&cfg.AgentsQuietIdle, "agents-quiet-idle", false, "agents send audio only during calls (default: always, as the agent page does)")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "seed for choosing who abandons (0: random)")
	flag.StringVar(&jsonOut, "json", "", "also write the report as JSON to this file (- for stdout)")
	flag.DurationVar(&cfg.Progress, "progress", 0, "how often to print the progress line to stderr (default 1s)")
	flag.StringVar(&logLevel, "log", "warn", "log level on stderr: debug, info, warn, error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log %q: %w", logLevel, err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// sipgo's package logger warns about its UDP reference counts when a
	// phone closes; only its errors mean something to callsim's users.
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: max(level, slog.LevelError)})))
	accts, err := sim.ParseAccounts(agents)
	if err != nil {
		return fmt.Errorf("-agents: %w", err)
	}
	for i := 1; i <= agentCount; i++ {
		name := fmt.Sprintf("%s%d", agentPrefix, i)
		accts = append(accts, sim.Account{User: name, Password: name})
	}
	cfg.Agents = accts
	if len(accts) == 0 {
		cfg.HTTP = ""
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := sim.Run(ctx, cfg, os.Stderr)
	if err != nil {
		return err
	}
	if err := report.WriteTable(os.Stdout); err != nil {
		return err
	}
	switch jsonOut {
	case "":
	case "-":
		return report.WriteJSON(os.Stdout)
	default:
		f, err := os.Create(jsonOut)
		if err != nil {
			return err
		}
		if err := report.WriteJSON(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}
