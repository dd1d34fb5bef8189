// Command loadbench measures ivrd's capacity on this machine: it starts
// ivrd (the binary given) on a real Redis with a configuration sized for
// load, drives it with callsim's load generator in steps — call setups per
// second through the first prompt, callers at once in the IVR and queue,
// calls at once bridged to agent bots and recorded — and measures ivrd's
// CPU time and peak RSS at each step, a CPU profile at each plateau, the
// SIP-only ceiling with SIPp, and whether goroutines, sockets, Redis keys
// and RSS come back to their idle level after a quiet minute. It prints
// each figure next to its target (docs/BENCHMARKS.md).
//
//	go build -o bin/ivrd ./cmd/ivrd && go run ./cmd/loadbench -ivrd bin/ivrd
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/cmd/callsim/sim"
)

// options are loadbench's flags.
type options struct {
	ivrd, repo, redisURL, out, jsonOut string
	setupRate                          int
	setupFor                           time.Duration
	ivrSteps, bridgedSteps             []int
	arrival                            float64
	plateau, quiet, profile            time.Duration
	sippRates                          []float64
	quick, sharedRTP                   bool
	nice                               int
	passes                             int
}

func main() {
	var o options
	var ivrSteps, bridgedSteps, sippRates string
	flag.StringVar(&o.ivrd, "ivrd", "bin/ivrd", "the ivrd binary to measure (build it without -race)")
	flag.StringVar(&o.repo, "repo", ".", "the repository root (configs/ has the demo flow and prompts)")
	flag.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/0", "the Redis ivrd uses; the bench's keys get their own prefix and are deleted at the end")
	flag.StringVar(&o.out, "out", "", "keep ivrd's config, log, recordings and profiles here (default: a temporary directory, removed)")
	flag.StringVar(&o.jsonOut, "json", "", "also write every figure as JSON here")
	flag.IntVar(&o.setupRate, "setup-rate", 500, "call setups per second offered in the setup step (0: skip)")
	flag.DurationVar(&o.setupFor, "setup-for", 10*time.Second, "how long the setup step offers calls")
	flag.StringVar(&ivrSteps, "ivr", "500,1000,2000,3000", "callers at once in the IVR and queue, step by step (empty: skip)")
	flag.StringVar(&bridgedSteps, "bridged", "250,500,1000,1500,2000", "calls at once bridged to agents and recorded, step by step (empty: skip)")
	flag.Float64Var(&o.arrival, "arrival", 100, "calls per second while a concurrency step ramps up")
	flag.DurationVar(&o.plateau, "plateau", 15*time.Second, "how long every call of a concurrency step overlaps")
	flag.DurationVar(&o.quiet, "quiet", time.Minute, "rest after the load before the leak check")
	flag.DurationVar(&o.profile, "profile", 10*time.Second, "CPU profile of ivrd this long at each plateau (0: none)")
	flag.StringVar(&sippRates, "sipp", "200,400,600,800,1000,1200,1500", "SIPp call rates for the SIP-only ceiling (empty: skip)")
	flag.IntVar(&o.passes, "passes", 1, "run the steps this many times on the same ivrd, each followed by the quiet wait and the leak check: memory that grows pass after pass is a leak, memory that stays at the first pass's level is the runtime's high-water mark")
	flag.IntVar(&o.nice, "nice", 10, "run the load generator (and SIPp) at this nice level once ivrd has started, so ivrd gets the CPU first as it would on a box of its own (0: share it equally)")
	flag.BoolVar(&o.sharedRTP, "shared-rtp", true, "the load generator's callers send and read their RTP on one socket, in batches, as a trunk's media gateway may: the generator takes half as much of the machine; ivrd still gives each call a port of its own (false: a socket per caller, as phones)")
	flag.BoolVar(&o.quick, "quick", false, "a small run that checks the bench works (tens of calls, no SIPp)")
	flag.Parse()

	var err error
	if o.ivrSteps, err = parseInts(ivrSteps); err != nil {
		fatal("-ivr: %v", err)
	}
	if o.bridgedSteps, err = parseInts(bridgedSteps); err != nil {
		fatal("-bridged: %v", err)
	}
	if o.sippRates, err = parseFloats(sippRates); err != nil {
		fatal("-sipp: %v", err)
	}
	if o.passes < 1 {
		fatal("-passes %d: at least 1", o.passes)
	}
	if o.quick {
		o = quickOptions(o)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runBench(ctx, o)
	if res != nil {
		res.print(os.Stdout)
		if o.jsonOut != "" {
			if werr := writeJSON(o.jsonOut, res); werr != nil {
				fmt.Fprintln(os.Stderr, "loadbench:", werr)
			}
		}
	}
	if err != nil {
		fatal("%v", err)
	}
}

// writeJSON writes every figure of res to path as JSON.
func writeJSON(path string, res *results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("results as JSON: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}

// quickOptions shrinks a run to tens of calls: it checks the bench works.
func quickOptions(o options) options {
	o.quick = true
	o.setupRate, o.setupFor = 50, 3*time.Second
	o.ivrSteps, o.bridgedSteps = []int{50}, []int{20}
	o.arrival, o.plateau, o.quiet, o.profile = 50, 3*time.Second, 10*time.Second, 0
	o.sippRates = nil
	o.passes = 2 // the passes' own leak check runs too
	return o
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "loadbench: "+format+"\n", a...)
	os.Exit(1)
}

// runBench runs every step against one ivrd.
func runBench(ctx context.Context, o options) (*results, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := o.out
	if dir == "" {
		d, err := os.MkdirTemp("", "loadbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(o.ivrd)
	if err != nil {
		return nil, err
	}
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return nil, err
	}
	ropts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis %s: %w (start one: redis-server --daemonize yes)", o.redisURL, err)
	}

	agents := 0
	for _, n := range o.bridgedSteps {
		agents = max(agents, n)
	}
	srv, err := startServer(ctx, serverConfig{Binary: bin, Repo: repo, RedisURL: o.redisURL, Agents: agents, Dir: dir})
	if err != nil {
		return nil, err
	}
	defer func() {
		srv.stop()
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := deleteKeys(cctx, rdb, srv.prefix); err != nil {
			log.Warn("deleting the bench's Redis keys", "prefix", srv.prefix, "error", err)
		}
	}()
	if o.nice != 0 {
		if err := niceSelf(o.nice); err != nil {
			return nil, err
		}
	}
	res := &results{Started: time.Now(), Machine: machine(), Options: o.describe()}
	fmt.Fprintf(os.Stderr, "loadbench: ivrd pid %d, SIP %s, HTTP %s, Redis %s prefix %s, files in %s\n",
		srv.pid, srv.sipAddr, srv.httpAddr, o.redisURL, srv.prefix, dir)

	time.Sleep(3 * time.Second) // let start-up settle before reading the idle state
	if res.Idle, err = readIdle(ctx, srv, rdb); err != nil {
		return res, err
	}
	// The base to compare the heap after the load with: `go tool pprof
	// -sample_index=inuse_space -base heap-idle.pprof bin/ivrd heap-after-quiet.pprof`.
	if err := srv.saveHeapProfile(ctx, filepath.Join(srv.dir, "heap-idle.pprof")); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench: heap profile at idle:", err)
	}
	b := &bench{srv: srv, log: log, progress: prefixWriter{os.Stderr, "  "}, profile: o.profile, binary: bin, shared: o.sharedRTP}

	for pass := 1; pass <= o.passes && ctx.Err() == nil; pass++ {
		if o.passes > 1 {
			fmt.Fprintf(os.Stderr, "loadbench: pass %d of %d\n", pass, o.passes)
		}
		b.pass = pass
		res.Steps = append(res.Steps, b.steps(ctx, o)...)
		if ctx.Err() != nil {
			break
		}
		after, err := b.quietWait(ctx, rdb, o.quiet, pass == o.passes)
		if err != nil {
			return res, err
		}
		res.Passes = append(res.Passes, after)
		res.After = &res.Passes[len(res.Passes)-1]
	}

	if len(o.sippRates) > 0 && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "loadbench: SIPp SIP-only ceiling")
		host, _, _ := strings.Cut(srv.sipAddr, ":")
		runs, best, err := sippCeiling(ctx, sippConfig{Target: srv.sipAddr, Service: "support", LocalIP: host,
			Calls: 0, Hold: 0, Timeout: 2 * time.Minute, Dir: dir}, o.sippRates,
			func(format string, a ...any) { fmt.Fprintf(os.Stderr, "  "+format+"\n", a...) })
		if err != nil {
			res.SIPpErr = err.Error()
		}
		res.SIPp, res.SIPpBest = runs, &best
	}
	return res, ctx.Err()
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseFloat(f, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// steps runs the setup, IVR and bridged steps once.
func (b *bench) steps(ctx context.Context, o options) []stepResult {
	var out []stepResult
	if o.setupRate > 0 && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "loadbench: setup step, %d calls/s for %v\n", o.setupRate, o.setupFor)
		calls := int(float64(o.setupRate) * o.setupFor.Seconds())
		out = append(out, b.run(ctx, "setup", o.setupRate, 0, sim.Config{
			Calls: calls, Rate: float64(o.setupRate), Concurrency: 5000, FirstPrompt: true,
			AnswerTimeout: 5 * time.Second,
		}))
	}
	for _, n := range o.ivrSteps {
		if ctx.Err() != nil {
			break
		}
		ramp := time.Duration(float64(n) / o.arrival * float64(time.Second))
		fmt.Fprintf(os.Stderr, "loadbench: IVR/queue step, %d callers at once (ramp %v, plateau %v)\n", n, ramp, o.plateau)
		out = append(out, b.run(ctx, "ivr", n, n, sim.Config{
			Calls: n, Rate: o.arrival, Path: "1", Talk: ramp + o.plateau,
		}))
	}
	for _, n := range o.bridgedSteps {
		if ctx.Err() != nil {
			break
		}
		ramp := time.Duration(float64(n) / o.arrival * float64(time.Second))
		fmt.Fprintf(os.Stderr, "loadbench: bridged step, %d calls at once with %d agents (ramp %v, plateau %v)\n", n, n, ramp, o.plateau)
		accts := make([]sim.Account, n)
		for i := range accts {
			accts[i] = sim.Account{User: agentName(i + 1), Password: agentName(i + 1)}
		}
		out = append(out, b.run(ctx, "bridged", n, n, sim.Config{
			Calls: n, Rate: o.arrival, Path: "1", Talk: ramp + o.plateau, Agents: accts,
			AgentTimeout: 2 * time.Minute,
			// Agents send audio only in calls: at the plateau every agent
			// is in a call, so this changes nothing there, but 2,000
			// idle agents each sending 50 packets/s while the others log
			// in would swamp both processes before the first call.
			AgentsQuietIdle: true,
		}))
	}
	return out
}

// quietWait rests for quiet, then reads the server's state for the leak
// check and saves its heap profile (heap-after-quiet.pprof after the
// last pass, heap-after-pass<n>.pprof after the others).
func (b *bench) quietWait(ctx context.Context, rdb *redis.Client, quiet time.Duration, last bool) (idleState, error) {
	fmt.Fprintf(os.Stderr, "loadbench: quiet for %v, then the leak check\n", quiet)
	select {
	case <-time.After(quiet):
	case <-ctx.Done():
		return idleState{}, ctx.Err()
	}
	// The bench's own idle keep-alive connections (agents' logins,
	// metrics) are the client's, not the server's: close them first.
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(time.Second)
	after, err := readIdle(ctx, b.srv, rdb)
	if err != nil {
		return after, err
	}
	name := fmt.Sprintf("heap-after-pass%d.pprof", b.pass)
	if last {
		name = "heap-after-quiet.pprof"
	}
	// What the heap still holds, by where it was allocated.
	if err := b.srv.saveHeapProfile(ctx, filepath.Join(b.srv.dir, name)); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench: heap profile after the quiet wait:", err)
	}
	return after, nil
}
