package ivr

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ivrd/configs"
)

// demoPrompts are the prompts the demo ships: the WAV files in
// configs/prompts.
var demoPrompts = func() map[string]bool {
	m := make(map[string]bool)
	names, _ := filepath.Glob("../configs/prompts/*.wav")
	for _, n := range names {
		m[strings.TrimSuffix(filepath.Base(n), ".wav")] = true
	}
	return m
}()

func hasDemoPrompt(name string) bool { return demoPrompts[name] }

const demoFlowPath = "../configs/flows/main.yaml"

func TestDemoFlowValidates(t *testing.T) {
	f, err := LoadFlow(demoFlowPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(hasDemoPrompt); err != nil {
		t.Fatal(err)
	}
	want := []string{"goodbye", "invalid", "main_menu", "queue_options", "recording_notice", "welcome", "welcome_back"}
	if got := f.Prompts(); !slices.Equal(got, want) {
		t.Errorf("Prompts() = %v, want %v", got, want)
	}
	if f.Start() != "welcome" || f.File() != demoFlowPath {
		t.Errorf("Start, File = %q, %q", f.Start(), f.File())
	}
}

// mustParse parses and validates a flow written in a test.
func mustParse(t *testing.T, src string) *Flow {
	t.Helper()
	f, err := ParseFlow("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// flowError parses and validates src and returns the error text.
func flowError(t *testing.T, src string, hasPrompt func(string) bool) string {
	t.Helper()
	f, err := ParseFlow("flows/t.yaml", []byte(src))
	if err == nil {
		err = f.Validate(hasPrompt)
	}
	if err == nil {
		t.Fatalf("no error for flow:\n%s", src)
	}
	return err.Error()
}

func TestFlowErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each must appear in the error text
	}{
		{"dangling option", `
start: menu
nodes:
  menu:
    type: menu
    prompt: main_menu
    options:
      "1": biling
      "2": bye
    on_invalid: bye
    on_timeout: bye
  billing: {type: queue, skill: billing}
  bye: {type: hangup}
`, []string{`flows/t.yaml:8: nodes.menu.options.1: unknown node "biling" (did you mean "billing"?)`,
			`flows/t.yaml:12: nodes.billing: unreachable: no path from start (menu) leads here`}},
		{"queue node settings", `
start: q
nodes:
  q:
    type: queue
    skill: billing
    max_wait: 5s
    announce_every: forever
    options: {"1": callback, "2": nowhere, "x": q}
  r: {type: queue, skill: billing, overflow_skill: billing, on_max_wait: q}
`, []string{`flows/t.yaml:7: nodes.q.max_wait: duration 5s out of range: 10s to 24h0m0s`,
			`flows/t.yaml:8: nodes.q.announce_every: invalid duration "forever"`,
			`flows/t.yaml:9: nodes.q.options.2: unknown node "nowhere"`,
			`nodes.q.options.x: invalid key "x"`,
			`nodes.q.options: callers must hear the options: add options_prompt`,
			`flows/t.yaml:10: nodes.r.max_wait: missing: overflow_skill and on_max_wait need a max_wait`,
			`nodes.r.on_max_wait: give overflow_skill or on_max_wait, not both`,
			`nodes.r.overflow_skill: overflows to its own skill "billing"`}},
		{"missing prompt", `
start: a
nodes:
  a: {type: play, prompts: [welcome, welcom], next: b}
  b: {type: hangup, prompts: goodby}
`, []string{`flows/t.yaml:4: nodes.a.prompts.1: unknown prompt "welcom"`, `flows/t.yaml:5: nodes.b.prompts: unknown prompt "goodby"`}},
		{"unreachable", `
start: a
nodes:
  a: {type: hangup}
  b: {type: play, prompts: [welcome], next: a}
`, []string{`flows/t.yaml:5: nodes.b: unreachable`}},
		{"missing start", `
nodes:
  a: {type: hangup}
`, []string{`flows/t.yaml:2: start: missing`}},
		{"unknown start", `
start: welcom
nodes:
  welcome: {type: hangup}
`, []string{`flows/t.yaml:2: start: unknown node "welcom" (did you mean "welcome"?)`}},
		{"bad durations and retries", `
start: m
nodes:
  m:
    type: menu
    prompt: main_menu
    timeout: 5
    retries: -1
    options: {"1": c}
    on_invalid: c
    on_timeout: c
  c:
    type: collect
    prompt: main_menu
    max_digits: 4
    timeout: -3s
    inter_digit_timeout: soon
    into: acct
    next: m
    on_timeout: m
`, []string{`flows/t.yaml:7: nodes.m.timeout: invalid duration "5"`, `flows/t.yaml:8: nodes.m.retries: must be at least 1`,
			`flows/t.yaml:16: nodes.c.timeout: duration -3s out of range`, `flows/t.yaml:17: nodes.c.inter_digit_timeout: invalid duration "soon"`}},
		{"option keys", `
start: m
nodes:
  m:
    type: menu
    prompt: main_menu
    options: {"12": m, "x": m, "#": m, "*": m, "D": m}
    on_invalid: m
    on_timeout: m
`, []string{`nodes.m.options.12: invalid key "12"`, `nodes.m.options.x: invalid key "x"`}},
		{"missing required fields", `
start: m
nodes:
  m: {type: menu, prompt: main_menu, on_invalid: p}
  p: {type: play, next: c}
  c: {type: collect, prompt: main_menu, next: q, on_timeout: q}
  q: {type: queue}
  l: {type: lookup}
`, []string{`flows/t.yaml:4: nodes.m.options: missing`, `flows/t.yaml:4: nodes.m.on_timeout: missing`,
			`flows/t.yaml:5: nodes.p.prompts: missing`, `flows/t.yaml:6: nodes.c.max_digits: missing`,
			`flows/t.yaml:6: nodes.c.into: missing`, `flows/t.yaml:7: nodes.q.skill: missing`, `flows/t.yaml:8: nodes.l.next: missing`}},
		{"schedules", `
start: b
schedules:
  hours:
    timezone: America/New_Yrok
    open: {mon-fry: "08:00-20:00", sat: "13:00-09:00", sun: ["10:00-12:00", "25:00-26:00"]}
    holidays: ["2026-12-25", "2026-02-30"]
  nozone:
    open: {mon: "09:00-17:00"}
nodes:
  b:
    type: branch
    cases:
      - when: {schedule.hours: open, schedule.hour: open}
        next: b
      - when: {schedule.nozone: maybe}
        next: b
    default: b
`, []string{`flows/t.yaml:5: schedules.hours.timezone: unknown time zone "America/New_Yrok"`,
			`flows/t.yaml:6: schedules.hours.open.mon-fry: invalid days "mon-fry"`,
			`flows/t.yaml:6: schedules.hours.open.sat: invalid hours "13:00-09:00": the end must be after the start`,
			`schedules.hours.open.sun.1: invalid hours "25:00-26:00"`,
			`flows/t.yaml:7: schedules.hours.holidays.1: invalid date "2026-02-30"`,
			`schedules.nozone.timezone: missing`,
			`flows/t.yaml:14: nodes.b.cases.0.when.schedule.hour: unknown schedule "hour" (did you mean "hours"?)`,
			`flows/t.yaml:16: nodes.b.cases.1.when.schedule.nozone: want open or closed, not "maybe"`}},
		{"references", `
start: s
nodes:
  s: {type: set, values: {priority: "high", tag: "${caller.colour}", x: "${var.a"}, next: q}
  q: {type: queue, skill: billing, priority: "${var.p}x", next: q2}
  q2: {type: queue, skill: general, priority: urgent}
`, []string{`nodes.s.values.priority: priority must be a whole number, not "high"`,
			`nodes.s.values.tag: unknown caller attribute "colour"`, `nodes.s.values.x: unterminated ${`,
			`flows/t.yaml:6: nodes.q2.priority: want a whole number or ${...}, not "urgent"`}},
		{"collect digits", `
start: c
nodes:
  c: {type: collect, prompt: p, max_digits: 0, min_digits: 5, terminator: "##", into: "1x", next: c, on_timeout: c}
`, []string{`nodes.c.max_digits: must be 1 to 64, not 0`, `nodes.c.terminator: invalid key "##"`, `nodes.c.into: invalid variable name "1x"`}},
		// Parse errors: the file cannot be read as a flow.
		{"unknown keys", `
start: a
version: 2
nodes:
  a: {type: play, prompts: [welcome], next: b, timeout: 5s}
  b: {type: hangup, next: a}
`, []string{`flows/t.yaml:3: version: unknown key`, `flows/t.yaml:5: nodes.a.timeout: unknown key for a play node (allowed: prompt, prompts, barge_in, next)`,
			`flows/t.yaml:6: nodes.b.next: unknown key for a hangup node`}},
		{"unknown type and wrong kinds", `
start: a
nodes:
  a: {type: playback, prompts: [welcome]}
  b: {prompts: [x]}
  c: {type: menu, options: [1, 2], barge_in: yes please, retries: three}
  d: {type: play, next: [a, b]}
`, []string{`flows/t.yaml:4: nodes.a.type: unknown node type "playback"`, `flows/t.yaml:5: nodes.b: missing type`,
			`flows/t.yaml:6: nodes.c.options: want a mapping`, `flows/t.yaml:6: nodes.c.barge_in: want true or false`,
			`flows/t.yaml:6: nodes.c.retries: want a whole number`, `flows/t.yaml:7: nodes.d.next: want a single value, not a list`}},
		{"duplicate key", `
start: a
nodes:
  a: {type: hangup}
  a: {type: hangup}
`, []string{`flows/t.yaml:5: nodes.a: duplicate key (first on line 4)`}},
		{"yaml syntax", "start: a\nnodes:\n  a: {type: hangup\n", []string{"flows/t.yaml:"}},
		{"empty", "", []string{"flows/t.yaml: empty flow"}},
		{"not a mapping", "- a\n- b\n", []string{"flows/t.yaml:1: a flow is a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := flowError(t, tt.src, hasDemoPrompt)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("error does not contain\n  %s\ngot:\n%s", w, got)
				}
			}
		})
	}
}

// Every validation error is a *configs.KeyError (file, line, key), sorted
// by line, and all are reported at once.
func TestFlowErrorsAreKeyErrors(t *testing.T) {
	f, err := ParseFlow("t.yaml", []byte(`
start: a
nodes:
  a: {type: play, prompts: [nope], next: missing}
  b: {type: hangup}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = f.Validate(hasDemoPrompt)
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("want joined errors, got %v", err)
	}
	errs := joined.Unwrap()
	if len(errs) != 3 {
		t.Fatalf("want 3 errors (missing node, unknown prompt, unreachable), got %d: %v", len(errs), err)
	}
	prev := 0
	for _, e := range errs {
		var ke *configs.KeyError
		if !errors.As(e, &ke) || ke.File != "t.yaml" || ke.Line == 0 || ke.Key == "" {
			t.Errorf("not a located KeyError: %#v", e)
			continue
		}
		if ke.Line < prev {
			t.Errorf("errors not sorted by line: %v", err)
		}
		prev = ke.Line
	}
}

func TestParseFlowFull(t *testing.T) {
	f := mustParse(t, `
start: acct
nodes:
  acct:
    type: collect
    prompts: [enter, account]
    invalid_prompt: [too_short]
    timeout_prompt: still_there
    max_digits: 8
    min_digits: 4
    terminator: "#"
    timeout: 4s
    inter_digit_timeout: 1500ms
    retries: 2
    into: account
    next: done
    on_timeout: done
  done: {type: hangup, prompt: bye}
`)
	n := f.nodes["acct"]
	if n.maxDigits != 8 || n.minDigits != 4 || n.terminator != '#' || n.timeout.String() != "4s" ||
		n.interDigit.String() != "1.5s" || n.retries != 2 || n.into != "account" || !n.bargeIn {
		t.Errorf("collect node parsed as %+v", n)
	}
	if got, want := f.Prompts(), []string{"account", "bye", "enter", "still_there", "too_short"}; !slices.Equal(got, want) {
		t.Errorf("Prompts() = %v, want %v", got, want)
	}
}

func FuzzParseFlow(f *testing.F) {
	demo, err := os.ReadFile(demoFlowPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(demo))
	f.Add("start: a\nnodes:\n  a: {type: menu, options: {\"1\": a}, on_invalid: a, on_timeout: a, prompt: x}\n")
	f.Add("start: a\nnodes:\n  a: &x {type: play, prompts: *x, next: a}\n")
	f.Add("start: [a\n")
	f.Add("start: b\nschedules: {s: {timezone: UTC, open: {fri-mon: \"00:00-24:00\"}, holidays: 2026-01-01}}\nnodes:\n  b: {type: branch, cases: [{when: {schedule.s: open}, next: b}], default: b}\n")
	f.Add("start: s\nnodes:\n  s: {type: set, values: {priority: \"${var.p\", a: \"${}\"}, next: s}\n  <<: {}\n")
	f.Add("nodes: {a: {type: collect, max_digits: 99999999999999999999}}\n")
	f.Fuzz(func(t *testing.T, src string) {
		fl, err := ParseFlow("fuzz.yaml", []byte(src))
		if err != nil {
			return
		}
		_ = fl.Prompts()
		if err := fl.Validate(func(string) bool { return true }); err != nil {
			return
		}
		if fl.nodes[fl.Start()] == nil {
			t.Fatalf("validated flow without its start node %q", fl.Start())
		}
	})
}
