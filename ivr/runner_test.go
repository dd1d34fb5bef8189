package ivr

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ivrd/ivr/callerid"
)

// demo is the demo flow wired to the demo directory, a recording queue and
// fast timeouts.
type demo struct {
	runner  *Runner
	queue   *testQueue
	logs    *logBuffer
	metrics *Metrics
}

func newDemo(t *testing.T) *demo {
	t.Helper()
	f, err := LoadFlow(demoFlowPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(hasDemoPrompt); err != nil {
		t.Fatal(err)
	}
	dir, err := callerid.LoadDirectory("../configs/directory.csv", "US")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	id, err := callerid.NewIdentifier(callerid.IdentifierConfig{DefaultCountry: "US", Directory: dir, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d := &demo{queue: &testQueue{}, logs: logs, metrics: m}
	d.runner, err = NewRunner(RunnerConfig{
		Flow: f, Identifier: id, Queue: d.queue, After: fastTimeouts,
		Logger: logs.logger(), Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *demo) run(t *testing.T, ch *scriptChannel, number string) (*Call, Result) {
	t.Helper()
	call := &Call{ID: "call-" + t.Name(), Number: number, Dialed: "support"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := d.runner.Run(ctx, ch, call)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := ch.playing(); n != 0 {
		t.Errorf("Run returned with %d Plays in progress", n)
	}
	return call, res
}

func TestDemoVIPCallerGetsBillingWithHigherPriority(t *testing.T) {
	checkGoroutines(t)
	d := newDemo(t)
	ch := newScriptChannel().onPrompt("main_menu", "1")
	call, res := d.run(t, ch, "sip:+14155550100@carrier.example.com;user=phone")

	if want := []string{"welcome", "recording_notice", "welcome_back", "main_menu"}; !slices.Equal(ch.played(), want) {
		t.Errorf("played %v, want %v", ch.played(), want)
	}
	if want := []queueCall{{"billing", 10}}; !slices.Equal(d.queue.got(), want) {
		t.Errorf("queued %v, want %v", d.queue.got(), want)
	}
	if res.Outcome != QueueDone || res.Node != "billing" {
		t.Errorf("result %+v, want queue_done at billing", res)
	}
	if !call.Caller.Identified || call.Caller.Name != "Ada Lovelace" || call.Caller.Tier != "vip" {
		t.Errorf("caller %+v, want Ada Lovelace, vip", call.Caller)
	}
	if call.Skill != "billing" || call.Priority != 10 || call.Vars["priority"] != "10" {
		t.Errorf("call skill %q priority %d vars %v", call.Skill, call.Priority, call.Vars)
	}
	if len(call.Choices) != 1 || call.Choices[0].Node != "main_menu" || call.Choices[0].Input != "1" || call.Choices[0].At.IsZero() {
		t.Errorf("choices %+v, want main_menu=1", call.Choices)
	}
	if got := testutil.ToFloat64(d.metrics.outcomes.WithLabelValues("queue_done")); got != 1 {
		t.Errorf("queue_done outcomes = %v, want 1", got)
	}
}

func TestDemoStandardCaller(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel().onPrompt("main_menu", "2")
	call, _ := d.run(t, ch, "4155550101")
	if !slices.Contains(ch.played(), "welcome_back") {
		t.Errorf("identified caller did not hear welcome_back: %v", ch.played())
	}
	if want := []queueCall{{"support", 0}}; !slices.Equal(d.queue.got(), want) {
		t.Errorf("queued %v, want %v (standard tier keeps priority 0)", d.queue.got(), want)
	}
	if call.Caller.Tier != "standard" {
		t.Errorf("tier %q", call.Caller.Tier)
	}
}

func TestDemoUnknownCaller(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel().onPrompt("main_menu", "0")
	call, res := d.run(t, ch, "+12125550199")
	if want := []string{"welcome", "recording_notice", "main_menu"}; !slices.Equal(ch.played(), want) {
		t.Errorf("played %v, want %v (no welcome_back)", ch.played(), want)
	}
	if want := []queueCall{{"general", 0}}; !slices.Equal(d.queue.got(), want) || res.Node != "general" {
		t.Errorf("queued %v at %s, want general", d.queue.got(), res.Node)
	}
	if call.Caller.Identified || call.Caller.Number != "+12125550199" {
		t.Errorf("caller %+v, want unidentified with the number", call.Caller)
	}
}

func TestDemoAnonymousCaller(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel().onPrompt("main_menu", "2")
	call, res := d.run(t, ch, "anonymous")
	if res.Outcome != QueueDone || call.Caller.Identified || slices.Contains(ch.played(), "welcome_back") {
		t.Errorf("anonymous caller: result %+v caller %+v played %v", res, call.Caller, ch.played())
	}
}

func TestDemoNineSaysGoodbye(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel().onPrompt("main_menu", "9")
	_, res := d.run(t, ch, "+12125550199")
	if res.Outcome != Hangup || res.Node != "bye" {
		t.Errorf("result %+v, want hangup at bye", res)
	}
	if got := ch.played(); got[len(got)-1] != "goodbye" {
		t.Errorf("played %v, want goodbye last", got)
	}
	if len(d.queue.got()) != 0 {
		t.Errorf("queued %v after 9", d.queue.got())
	}
}

func TestDemoThreeInvalidEntriesHangUp(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel().onPrompt("main_menu", "5", "7", "*")
	call, res := d.run(t, ch, "+12125550199")
	want := []string{"welcome", "recording_notice", "main_menu", "invalid", "main_menu", "invalid", "main_menu", "goodbye"}
	if !slices.Equal(ch.played(), want) {
		t.Errorf("played %v, want %v", ch.played(), want)
	}
	if res.Outcome != Hangup || res.Node != "bye" {
		t.Errorf("result %+v, want hangup at bye", res)
	}
	if len(call.Choices) != 0 {
		t.Errorf("invalid keys recorded as choices: %+v", call.Choices)
	}
	if got := testutil.ToFloat64(d.metrics.inputs.WithLabelValues("menu", "invalid")); got != 3 {
		t.Errorf("invalid inputs = %v, want 3", got)
	}
}

func TestDemoThreeTimeoutsGoToGeneral(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel()
	start := time.Now()
	_, res := d.run(t, ch, "+12125550199")
	want := []string{"welcome", "recording_notice", "main_menu", "main_menu", "main_menu"}
	if !slices.Equal(ch.played(), want) {
		t.Errorf("played %v, want %v", ch.played(), want)
	}
	if want := []queueCall{{"general", 0}}; !slices.Equal(d.queue.got(), want) || res.Outcome != QueueDone {
		t.Errorf("queued %v, result %+v; want the general queue", d.queue.got(), res)
	}
	// Three 5 s timeouts at 1/100 speed: at least 150 ms.
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("three timeouts took %s: the menu did not wait", took)
	}
}

// An invalid key then a valid one: the counters are separate, so a timeout
// and two invalid keys still leave the caller in the menu.
func TestMenuCountersAreSeparate(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel().onPrompt("main_menu", "", "5", "", "6", "2")
	_, res := d.run(t, ch, "+12125550199")
	if res.Node != "support" {
		t.Errorf("result %+v, want support after 2 timeouts and 2 invalid keys; played %v", res, ch.played())
	}
}

func TestMenuBargeIn(t *testing.T) {
	checkGoroutines(t)
	d := newDemo(t)
	ch := newScriptChannel().long("main_menu", 30*time.Second).onPrompt("main_menu", "2")
	start := time.Now()
	_, res := d.run(t, ch, "+12125550199")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s: the key did not stop the 30 s menu prompt", took)
	}
	recs := ch.records()
	last := recs[len(recs)-1]
	if !slices.Equal(last.prompts, []string{"main_menu"}) || !last.cancelled {
		t.Errorf("last play %+v: want main_menu with its context cancelled by the key", last)
	}
	if res.Node != "support" {
		t.Errorf("result %+v, want support", res)
	}
}

// Keys pressed during a prompt without barge-in do not stop it; they wait
// for the next menu, which then does not play its prompt.
func TestTypeAheadDuringWelcome(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel().long("welcome", 50*time.Millisecond).onPrompt("welcome", "1")
	call, res := d.run(t, ch, "+12125550199")
	recs := ch.records()
	if recs[0].cancelled {
		t.Error("welcome (no barge-in) was cut short by a key")
	}
	if want := []string{"welcome", "recording_notice"}; !slices.Equal(ch.played(), want) {
		t.Errorf("played %v, want %v: the menu prompt is skipped when the caller typed ahead", ch.played(), want)
	}
	if res.Node != "billing" || len(call.Choices) != 1 || call.Choices[0].Input != "1" {
		t.Errorf("result %+v choices %+v, want billing via type-ahead 1", res, call.Choices)
	}
}

func TestCallerHangsUpMidPrompt(t *testing.T) {
	checkGoroutines(t)
	d := newDemo(t)
	ch := newScriptChannel().long("welcome", 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	res, err := d.runner.Run(ctx, ch, &Call{ID: "gone", Number: "+12125550199"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run took %s after the caller hung up", took)
	}
	if res.Outcome != CallerGone || res.Node != "welcome" {
		t.Errorf("result %+v, want caller_gone at welcome", res)
	}
	if recs := ch.records(); !recs[0].cancelled || ch.playing() != 0 {
		t.Errorf("welcome not cancelled (%+v) or still playing (%d)", recs, ch.playing())
	}
}

func TestCallerHangsUpWhileMenuWaits(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel()
	ctx, cancel := context.WithCancel(context.Background())
	ch.onPrompt("main_menu", "")
	go func() {
		// Hang up once the menu prompt has played and the menu waits.
		for !slices.Contains(ch.played(), "main_menu") {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	r, err := NewRunner(RunnerConfig{Flow: d.runner.flow, Queue: d.queue, Logger: d.logs.logger()}) // real 5 s timeout
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := r.Run(ctx, ch, &Call{ID: "gone2", Number: "x"})
	if err != nil || res.Outcome != CallerGone || res.Node != "main_menu" {
		t.Errorf("Run = %+v, %v; want caller_gone at main_menu", res, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("menu kept waiting %s after the hangup", took)
	}
}

func TestEveryLogLineHasCallID(t *testing.T) {
	d := newDemo(t)
	ch := newScriptChannel().onPrompt("main_menu", "4", "1")
	d.run(t, ch, "+14155550100")
	lines := d.logs.lines(t)
	var nodes, choices int
	for _, l := range lines {
		if l["call_id"] != "call-"+t.Name() {
			t.Errorf("log line without call_id: %v", l)
		}
		switch l["msg"] {
		case "ivr node":
			nodes++
			if l["level"] != "DEBUG" {
				t.Errorf("node line at %v, want DEBUG", l["level"])
			}
		case "menu choice":
			choices++
			if l["level"] != "INFO" || l["key"] != "1" {
				t.Errorf("choice line %v, want INFO with key 1", l)
			}
		}
	}
	// welcome identify greet welcome_back vip_check set_vip main_menu billing
	if nodes != 8 || choices != 1 {
		t.Errorf("%d node lines and %d choice lines, want 8 and 1", nodes, choices)
	}
}

const collectFlow = `
start: acct
nodes:
  acct:
    type: collect
    prompt: enter_account
    invalid_prompt: too_short
    max_digits: 8
    min_digits: 4
    terminator: "#"
    timeout: 5s
    inter_digit_timeout: 3s
    retries: 2
    into: account
    next: done
    on_timeout: timeout
    on_invalid: invalid
  done: {type: hangup}
  timeout: {type: hangup}
  invalid: {type: hangup}
`

func runCollect(t *testing.T, ch *scriptChannel) (*Call, Result) {
	t.Helper()
	r, err := NewRunner(RunnerConfig{Flow: mustParse(t, collectFlow), After: fastTimeouts, Logger: (&logBuffer{}).logger()})
	if err != nil {
		t.Fatal(err)
	}
	call := &Call{ID: "collect"}
	res, err := r.Run(context.Background(), ch, call)
	if err != nil {
		t.Fatal(err)
	}
	return call, res
}

func TestCollect(t *testing.T) {
	tests := []struct {
		name    string
		keys    []string // pressed at each start of enter_account
		want    string   // Vars["account"]
		node    string   // where the flow ended
		played  []string
		minTime time.Duration
	}{
		{"terminator", []string{"1234#"}, "1234", "done", []string{"enter_account"}, 0},
		{"max length ends entry", []string{"123456789"}, "12345678", "done", []string{"enter_account"}, 0},
		{"inter-digit timeout ends entry", []string{"12345"}, "12345", "done", []string{"enter_account"}, 30 * time.Millisecond},
		{"too short then good", []string{"12#", "98765#"}, "98765", "done", []string{"enter_account", "too_short", "enter_account"}, 0},
		{"too short twice", []string{"1#", "123"}, "", "invalid", []string{"enter_account", "too_short", "enter_account"}, 0},
		{"silence twice", nil, "", "timeout", []string{"enter_account", "enter_account"}, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := newScriptChannel().onPrompt("enter_account", tt.keys...)
			start := time.Now()
			call, res := runCollect(t, ch)
			if call.Vars["account"] != tt.want || res.Node != tt.node {
				t.Errorf("account %q ended at %s; want %q at %s", call.Vars["account"], res.Node, tt.want, tt.node)
			}
			if !slices.Equal(ch.played(), tt.played) {
				t.Errorf("played %v, want %v", ch.played(), tt.played)
			}
			if tt.want != "" && (len(call.Choices) != 1 || call.Choices[0].Input != tt.want || call.Choices[0].Node != "acct") {
				t.Errorf("choices %+v, want acct=%s", call.Choices, tt.want)
			}
			if took := time.Since(start); took < tt.minTime {
				t.Errorf("took %s, want at least %s of waiting", took, tt.minTime)
			}
		})
	}
}

// The entry ends at the inter-digit timeout, not the first-digit one.
func TestCollectInterDigitTimeoutIsUsed(t *testing.T) {
	var waits []time.Duration
	r, err := NewRunner(RunnerConfig{Flow: mustParse(t, collectFlow), Logger: (&logBuffer{}).logger(),
		After: func(d time.Duration) <-chan time.Time {
			waits = append(waits, d)
			return time.After(time.Millisecond)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ch := newScriptChannel().onPrompt("enter_account", "1234")
	call := &Call{ID: "c"}
	if _, err := r.Run(context.Background(), ch, call); err != nil {
		t.Fatal(err)
	}
	// Keys already typed need no timer; any wait before the first key is
	// the 5 s timeout, every wait after a key the 3 s inter-digit one, and
	// the entry ends on one.
	for i, w := range waits {
		if (i > 0 || w != 5*time.Second) && w != 3*time.Second {
			t.Errorf("timeouts started %v: wait %d is %s", waits, i, w)
		}
	}
	if len(waits) == 0 || waits[len(waits)-1] != 3*time.Second {
		t.Errorf("timeouts started %v, want the entry to end on the 3 s inter-digit timeout", waits)
	}
	if call.Vars["account"] != "1234" {
		t.Errorf("account %q", call.Vars["account"])
	}
}

const scheduleFlow = `
start: hours
schedules:
  support_hours:
    timezone: America/New_York
    open: {mon-fri: "08:00-20:00", sat: "09:00-13:00"}
    holidays: ["2026-12-25", "2027-01-01"]
nodes:
  hours:
    type: branch
    cases:
      - when: {schedule.support_hours: open}
        next: open
    default: closed
  open: {type: hangup}
  closed: {type: hangup}
`

func TestBranchOnSchedule(t *testing.T) {
	f := mustParse(t, scheduleFlow)
	tests := []struct {
		at   string // UTC
		want string
	}{
		{"2026-03-06T12:30:00Z", "closed"}, // Fri 07:30 EST
		{"2026-03-06T13:00:00Z", "open"},   // Fri 08:00 EST
		{"2026-03-09T12:30:00Z", "open"},   // Mon 08:30 EDT: after the DST change the same UTC time is open
		{"2026-03-09T23:59:00Z", "open"},   // Mon 19:59 EDT
		{"2026-03-10T00:00:00Z", "closed"}, // Mon 20:00 EDT
		{"2026-03-07T13:59:00Z", "closed"}, // Sat 08:59 EST
		{"2026-03-07T14:00:00Z", "open"},   // Sat 09:00 EST
		{"2026-03-07T18:00:00Z", "closed"}, // Sat 13:00 EST
		{"2026-03-08T15:00:00Z", "closed"}, // Sun
		{"2026-12-25T15:00:00Z", "closed"}, // Fri 10:00, Christmas
		{"2026-12-24T15:00:00Z", "open"},   // Thu 10:00
		{"2027-01-01T04:30:00Z", "closed"}, // Thu 23:30 Dec 31 local: closed by the hours, not the holiday
		{"2027-01-01T14:00:00Z", "closed"}, // Fri 09:00 local, New Year
	}
	for _, tt := range tests {
		at, err := time.Parse(time.RFC3339, tt.at)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewRunner(RunnerConfig{Flow: f, Now: func() time.Time { return at }, Logger: (&logBuffer{}).logger()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Run(context.Background(), newScriptChannel(), &Call{ID: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Node != tt.want {
			t.Errorf("at %s (%s New York): %s, want %s", tt.at, at.In(f.schedules["support_hours"].loc).Format("Mon 15:04 MST"), res.Node, tt.want)
		}
	}
}

func TestLoopWithoutInputIsStopped(t *testing.T) {
	f := mustParse(t, `
start: a
nodes:
  a: {type: play, prompts: [x], next: b}
  b: {type: set, values: {n: "1"}, next: a}
`)
	m, _ := NewMetrics(nil)
	r, err := NewRunner(RunnerConfig{Flow: f, MaxVisits: 50, Logger: (&logBuffer{}).logger(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ch := newScriptChannel()
	res, err := r.Run(context.Background(), ch, &Call{ID: "loop"})
	if !errors.Is(err, ErrTooManyVisits) || res.Outcome != Failed || res.Visits != 50 {
		t.Errorf("Run = %+v, %v; want failed after 50 visits with ErrTooManyVisits", res, err)
	}
	if len(ch.played()) != 25 {
		t.Errorf("played %d prompts, want 25", len(ch.played()))
	}
	if got := testutil.ToFloat64(m.outcomes.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed outcomes = %v", got)
	}
}

func TestSetExpandsAndQueueHandsBack(t *testing.T) {
	f := mustParse(t, `
start: s
nodes:
  s:
    type: set
    values: {tag: "${caller.tier}/${call.dialed}/${var.missing}", level: "7"}
    next: q
  q: {type: queue, skill: billing, priority: "${var.level}", next: after}
  after: {type: play, prompts: [sorry], next: q2}
  q2: {type: queue, skill: general}
`)
	q := &testQueue{next: QueueNext}
	r, err := NewRunner(RunnerConfig{Flow: f, Queue: q, Logger: (&logBuffer{}).logger()})
	if err != nil {
		t.Fatal(err)
	}
	call := &Call{ID: "x", Dialed: "800", Caller: callerid.Caller{Tier: "gold"}}
	var marks []string // the recording's segment markers
	call.Segment = func(kind, detail string) { marks = append(marks, kind+":"+detail) }
	ch := newScriptChannel()
	res, err := r.Run(context.Background(), ch, call)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"queue:billing", "ivr:", "queue:general"}; !slices.Equal(marks[:min(3, len(marks))], want) {
		t.Errorf("segments %v, want %v first", marks, want)
	}
	if call.Vars["tag"] != "gold/800/" {
		t.Errorf("tag = %q, want gold/800/", call.Vars["tag"])
	}
	// The priority a queue node sets stays with the call.
	if want := []queueCall{{"billing", 7}, {"general", 7}}; !slices.Equal(q.got(), want) {
		t.Errorf("queued %v, want %v", q.got(), want)
	}
	if res.Node != "q2" || !slices.Equal(ch.played(), []string{"sorry"}) {
		t.Errorf("result %+v played %v", res, ch.played())
	}
}

func TestQueueErrorFailsTheCall(t *testing.T) {
	f := mustParse(t, "start: q\nnodes:\n  q: {type: queue, skill: billing}\n")
	boom := errors.New("redis down")
	r, err := NewRunner(RunnerConfig{Flow: f, Logger: (&logBuffer{}).logger(),
		Queue: QueueFunc(func(context.Context, Channel, *Call, QueueRequest) (string, error) { return "", boom })})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), newScriptChannel(), &Call{ID: "q"})
	if !errors.Is(err, boom) || res.Outcome != Failed || !strings.Contains(err.Error(), "queue to billing") {
		t.Errorf("Run = %+v, %v; want failed wrapping the queue error", res, err)
	}
}

// A queue node's settings reach the queue as one request.
func TestQueueNodeRequest(t *testing.T) {
	f := mustParse(t, `start: q
nodes:
  q:
    type: queue
    skill: billing
    priority: "7"
    announce_every: 30s
    max_wait: 10m
    on_max_wait: voicemail
    options: {"1": callback, "*": menu}
    options_prompt: [queue_options]
  voicemail: {type: hangup, prompts: [goodbye]}
  menu: {type: hangup}
`)
	q := &testQueue{next: "menu"}
	r, err := NewRunner(RunnerConfig{Flow: f, Queue: q, Logger: (&logBuffer{}).logger()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), newScriptChannel(), &Call{ID: "q"})
	if err != nil || res.Outcome != Hangup || res.Node != "menu" {
		t.Fatalf("Run = %+v, %v; want the node the queue handed back", res, err)
	}
	want := QueueRequest{
		Skill: "billing", Priority: 7, AnnounceEvery: 30 * time.Second, MaxWait: 10 * time.Minute,
		OnMaxWait: "voicemail", Options: map[byte]string{'1': QueueCallbackOption, '*': "menu"},
		OptionsPrompt: []string{"queue_options"},
	}
	if got := q.reqs[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("request\n got %+v\nwant %+v", got, want)
	}
}

func TestNewRunnerChecks(t *testing.T) {
	f, err := ParseFlow("t.yaml", []byte("start: q\nnodes:\n  q: {type: queue, skill: billing, next: nowhere}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRunner(RunnerConfig{Flow: f, Queue: &testQueue{}}); !errors.Is(err, ErrNotValidated) || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("invalid flow: err = %v", err)
	}
	ok := mustParse(t, "start: q\nnodes:\n  q: {type: queue, skill: billing}\n")
	if _, err := NewRunner(RunnerConfig{Flow: ok}); err == nil {
		t.Error("queue node without a QueueHandler: no error")
	}
	if _, err := NewRunner(RunnerConfig{}); err == nil {
		t.Error("no flow: no error")
	}
}

// A caller who hangs up while the CRM is being asked ends the flow at the
// lookup node; nothing more is played.
func TestCallerHangsUpDuringLookup(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	crm, err := callerid.NewCRM(callerid.CRMConfig{URL: srv.URL + "/{number}", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	id, err := callerid.NewIdentifier(callerid.IdentifierConfig{DefaultCountry: "US", CRM: crm, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := LoadFlow(demoFlowPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(RunnerConfig{Flow: f, Identifier: id, Queue: &testQueue{}, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	ch := newScriptChannel()
	res, err := r.Run(ctx, ch, &Call{ID: "lookup-gone", Number: "+12125550199"})
	if err != nil || res.Outcome != CallerGone || res.Node != "identify" {
		t.Errorf("Run = %+v, %v; want caller_gone at identify", res, err)
	}
	if want := []string{"welcome", "recording_notice"}; !slices.Equal(ch.played(), want) {
		t.Errorf("played %v, want %v", ch.played(), want)
	}
}
