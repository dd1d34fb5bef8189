package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"ivrd/agents"
	"ivrd/configs"
	"ivrd/ivr"
	"ivrd/ivr/callerid"
	"ivrd/media"
	"ivrd/queue"
	"ivrd/recordings"
	"ivrd/sip"
)

// app holds what every call shares: prompts, flows, caller identification,
// media ports. It is the SIP handler: each answered call runs its flow.
type app struct {
	log        *slog.Logger
	prompts    *media.Library
	ports      *media.PortPool
	flows      map[string]*ivr.Runner // by dialled user
	def        *ivr.Runner
	queue      ivr.QueueHandler
	recordings *recordings.Library // nil: no call is recorded
}

// loadApp loads and checks everything the configuration names, so a bad
// prompt, flow or directory stops ivrd at start (and fails -check-config),
// never mid-call. q handles queue nodes; nil (for -check-config) checks the
// flows without one.
func loadApp(cfg *configs.Config, log *slog.Logger, reg prometheus.Registerer, q ivr.QueueHandler) (*app, error) {
	a := &app{log: log, flows: make(map[string]*ivr.Runner), queue: q}
	var err error
	a.prompts, err = media.LoadLibrary(cfg.IVR.Prompts)
	if err != nil {
		return nil, fmt.Errorf("load prompts: %w", err)
	}
	a.ports, err = media.NewPortPool(cfg.Media.RTPPorts.Min, cfg.Media.RTPPorts.Max)
	if err != nil {
		return nil, fmt.Errorf("media.rtp_ports: %w", err)
	}

	var dir *callerid.Directory
	if cfg.IVR.Directory != "" {
		dir, err = callerid.LoadDirectory(cfg.IVR.Directory, cfg.IVR.DefaultCountry)
		if err != nil {
			return nil, fmt.Errorf("load directory: %w", err)
		}
	}
	var crm *callerid.CRM
	if cfg.IVR.CRM.URL != "" {
		crm, err = callerid.NewCRM(callerid.CRMConfig{URL: cfg.IVR.CRM.URL, Headers: cfg.IVR.CRM.Headers, Timeout: cfg.IVR.CRM.Timeout})
		if err != nil {
			return nil, fmt.Errorf("ivr.crm: %w", err)
		}
	}
	ident, err := callerid.NewIdentifier(callerid.IdentifierConfig{
		DefaultCountry: cfg.IVR.DefaultCountry, Directory: dir, CRM: crm, Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	metrics, err := ivr.NewMetrics(reg)
	if err != nil {
		return nil, err
	}

	var missing []string
	for _, name := range append(append(queue.Prompts(), agents.Prompts()...), callBackLater) {
		if _, ok := a.prompts.Get(name); !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: the queue needs these prompts: %v", cfg.IVR.Prompts, missing)
	}
	if q == nil {
		q = ivr.QueueFunc(func(context.Context, ivr.Channel, *ivr.Call, ivr.QueueRequest) (string, error) {
			return "", errors.New("no queue")
		})
	}
	loaded := make(map[string]*ivr.Runner)
	load := func(path string) (*ivr.Runner, error) {
		if r, ok := loaded[path]; ok {
			return r, nil
		}
		flow, err := ivr.LoadFlow(path)
		if err != nil {
			return nil, err
		}
		if err := flow.Validate(func(name string) bool { _, ok := a.prompts.Get(name); return ok }); err != nil {
			return nil, err
		}
		if err := flow.CheckSkills(func(s string) bool { _, ok := cfg.Queue.Skills[s]; return ok }); err != nil {
			return nil, err
		}
		r, err := ivr.NewRunner(ivr.RunnerConfig{Flow: flow, Identifier: ident, Queue: q, Logger: log, Metrics: metrics})
		if err != nil {
			return nil, err
		}
		loaded[path] = r
		return r, nil
	}
	var errs []error
	a.def, err = load(cfg.IVR.Flow)
	if err != nil {
		errs = append(errs, err)
	}
	numbers := make([]string, 0, len(cfg.IVR.Numbers))
	for n := range cfg.IVR.Numbers {
		numbers = append(numbers, n)
	}
	sort.Strings(numbers)
	for _, n := range numbers {
		r, err := load(cfg.IVR.Numbers[n])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a.flows[n] = r
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// callBackLater is what a caller over the per-number limit hears.
const callBackLater = "call_back_later"

// HandleCall runs the flow for the number the caller dialled.
func (a *app) HandleCall(ctx context.Context, c *sip.Call) {
	if c.Refused != nil {
		ch := ivr.NewMediaChannel(c.Media, a.prompts)
		if err := ch.Play(ctx, callBackLater); err != nil && ctx.Err() == nil {
			c.Log.Warn("play refusal", "error", err)
		}
		return
	}
	r := a.flows[c.Dialed]
	if r == nil {
		r = a.def
	}
	call := &ivr.Call{
		ID:          c.ID,
		Number:      c.Caller.Number,
		DisplayName: c.Caller.DisplayName,
		Dialed:      c.Dialed,
	}
	defer a.record(c, call)()
	res, err := r.Run(ctx, ivr.NewMediaChannel(c.Media, a.prompts), call)
	if err != nil {
		c.Log.Error("ivr flow failed", "node", res.Node, "error", err)
	}
}
