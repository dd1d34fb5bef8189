package ivr

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults and bounds of node settings.
const (
	defaultMenuTimeout   = 5 * time.Second
	defaultInterDigit    = 3 * time.Second
	defaultRetries       = 3
	maxTimeout           = 10 * time.Minute
	maxCollectDigits     = 64
	dtmfKeys             = "0123456789*#ABCD"
	defaultMaxNodeVisits = 1000
)

// nodeName is what a node may be called; "@" is kept for QueueNext.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

// Validate checks that the flow can run every call to an end: the start
// node exists; every next, option, case, default and on_* names a node;
// every node is reachable from start; each node has the fields its type
// needs; durations, retries, digit counts, DTMF keys, references, schedules
// (time zones, days, hours, holiday dates) are valid; and, when hasPrompt
// is not nil, every prompt exists. It reports every problem at once, each
// as a *configs.KeyError naming the file, line and key. A flow that passes
// is ready for NewRunner; Validate must not run while calls use the flow.
func (f *Flow) Validate(hasPrompt func(name string) bool) error {
	v := &validator{f: f}
	f.validated = false

	for _, name := range mapKeys(f.schedules) {
		f.schedules[name].compile(v.errf)
	}
	switch {
	case f.start == "" && f.root != nil:
		v.errf([]string{"start"}, "missing: name the first node")
	case f.nodes[f.start] == nil:
		v.errf([]string{"start"}, "unknown node %q%s", f.start, suggest(f.start, f.order))
	}
	if len(f.nodes) == 0 {
		v.errf([]string{"nodes"}, "missing: a flow needs at least one node")
	}
	for _, name := range f.order {
		if !nodeName.MatchString(name) {
			v.errf([]string{"nodes", name}, "invalid node name %q: letters, digits, _ and -", name)
		}
		v.node(f.nodes[name])
	}
	v.reachable()
	if hasPrompt != nil {
		for _, name := range f.order {
			n := f.nodes[name]
			for _, pl := range n.promptLists() {
				for i, p := range pl.names {
					if !hasPrompt(p) {
						v.errf(v.promptPath(n, pl, i), "unknown prompt %q", p)
					}
				}
			}
		}
	}
	if err := joinSorted(v.errs); err != nil {
		return err
	}
	f.validated = true
	return nil
}

// validator collects the problems Validate finds.
type validator struct {
	f    *Flow
	errs []error
}

func (v *validator) errf(path []string, format string, args ...any) {
	v.errs = append(v.errs, keyError(v.f.file, v.f.root, path, format, args...))
}

func nodePath(n *node, keys ...string) []string {
	return append([]string{"nodes", n.name}, keys...)
}

func (v *validator) promptPath(n *node, pl promptList, i int) []string {
	if pl.list {
		return nodePath(n, pl.key, strconv.Itoa(i))
	}
	return nodePath(n, pl.key)
}

// target checks that a reference to a node names one; required says it
// must be given.
func (v *validator) target(n *node, key, name string, required bool, path ...string) {
	if len(path) == 0 {
		path = nodePath(n, key)
	}
	switch {
	case name == "" && required && !n.present[key]:
		v.errf(path, "missing: name the node to go to")
	case name == "":
	case v.f.nodes[name] == nil:
		v.errf(path, "unknown node %q%s", name, suggest(name, v.f.order))
	}
}

// need reports a missing required key.
func (v *validator) need(n *node, key, what string) bool {
	if !n.present[key] {
		v.errf(nodePath(n, key), "missing: a %s node needs %s", n.typ, what)
		return false
	}
	return true
}

// duration compiles a duration key, or its default when absent.
func (v *validator) duration(n *node, key, text string, def time.Duration) time.Duration {
	if !n.present[key] {
		return def
	}
	d, err := time.ParseDuration(text)
	switch {
	case err != nil:
		v.errf(nodePath(n, key), "invalid duration %q: want e.g. 5s or 1500ms", text)
	case d <= 0 || d > maxTimeout:
		v.errf(nodePath(n, key), "duration %s out of range: more than 0 and at most %s", d, maxTimeout)
	default:
		return d
	}
	return def
}

// longDuration compiles a duration that may be longer than a menu's
// timeout (announcement intervals, maximum waits).
func (v *validator) longDuration(n *node, key, text string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(text)
	switch {
	case err != nil:
		v.errf(nodePath(n, key), "invalid duration %q: want e.g. 45s or 10m", text)
	case d < lo || d > hi:
		v.errf(nodePath(n, key), "duration %s out of range: %s to %s", d, lo, hi)
	default:
		return d
	}
	return 0
}

// CheckSkills checks the skills the flow's queue nodes name (skill and
// overflow_skill) against the configured ones; known reports whether a
// skill exists. Errors name the file, line and key.
func (f *Flow) CheckSkills(known func(skill string) bool) error {
	var errs []error
	for _, name := range f.order {
		n := f.nodes[name]
		if n.typ != typeQueue {
			continue
		}
		if n.skill != "" && !known(n.skill) {
			errs = append(errs, keyError(f.file, f.root, nodePath(n, "skill"), "unknown skill %q (not in queue.skills)", n.skill))
		}
		if n.overflowSkill != "" && !known(n.overflowSkill) {
			errs = append(errs, keyError(f.file, f.root, nodePath(n, "overflow_skill"), "unknown skill %q (not in queue.skills)", n.overflowSkill))
		}
	}
	return joinSorted(errs)
}

func (v *validator) retries(n *node) int {
	if !n.present["retries"] {
		return defaultRetries
	}
	if n.retriesRaw < 1 {
		v.errf(nodePath(n, "retries"), "must be at least 1 (it counts attempts), not %d", n.retriesRaw)
		return defaultRetries
	}
	return n.retriesRaw
}

// dtmfKey checks a single DTMF key.
func (v *validator) dtmfKey(path []string, key string) (byte, bool) {
	if len(key) != 1 || !strings.Contains(dtmfKeys, key) {
		v.errf(path, "invalid key %q: want one of 0-9 * # A-D (quote * and #)", key)
		return 0, false
	}
	return key[0], true
}

func (v *validator) node(n *node) {
	f := v.f
	hasPrompts := len(n.prompts.names) > 0
	promptKey := "prompts"
	if n.present["prompt"] {
		promptKey = "prompt"
	}
	if n.present[promptKey] && !hasPrompts {
		v.errf(nodePath(n, promptKey), "empty: name at least one prompt")
	}
	for _, pl := range n.promptLists() {
		for i, p := range pl.names {
			if p == "" {
				v.errf(v.promptPath(n, pl, i), "empty prompt name")
			}
		}
	}

	switch n.typ {
	case typePlay:
		if !hasPrompts {
			v.need(n, "prompts", "prompts to play")
		}
		v.target(n, "next", n.next, true)

	case typeMenu:
		if !n.present["barge_in"] {
			n.bargeIn = true
		}
		if !hasPrompts && !n.present[promptKey] {
			v.need(n, "prompt", "a prompt that states the options")
		}
		n.timeout = v.duration(n, "timeout", n.timeoutText, defaultMenuTimeout)
		n.retries = v.retries(n)
		n.optionKeys = make(map[byte]string, len(n.options))
		if v.need(n, "options", "options, e.g. {\"1\": billing}") && len(n.options) == 0 {
			v.errf(nodePath(n, "options"), "empty: a menu needs at least one option")
		}
		for _, o := range n.options {
			path := nodePath(n, "options", o.key)
			if k, ok := v.dtmfKey(path, o.key); ok {
				n.optionKeys[k] = o.target
			}
			v.target(n, "options", o.target, true, path...)
		}
		v.target(n, "on_invalid", n.onInvalid, true)
		v.target(n, "on_timeout", n.onTimeout, true)

	case typeCollect:
		if !n.present["barge_in"] {
			n.bargeIn = true
		}
		if !hasPrompts && !n.present[promptKey] {
			v.need(n, "prompt", "a prompt that asks for the digits")
		}
		n.timeout = v.duration(n, "timeout", n.timeoutText, defaultMenuTimeout)
		n.interDigit = v.duration(n, "inter_digit_timeout", n.interDigitText, defaultInterDigit)
		n.retries = v.retries(n)
		if v.need(n, "max_digits", "max_digits") && (n.maxDigits < 1 || n.maxDigits > maxCollectDigits) {
			v.errf(nodePath(n, "max_digits"), "must be 1 to %d, not %d", maxCollectDigits, n.maxDigits)
		}
		if !n.present["min_digits"] {
			n.minDigits = 1
		} else if n.minDigits < 0 || (n.maxDigits > 0 && n.minDigits > n.maxDigits) {
			v.errf(nodePath(n, "min_digits"), "must be 0 to max_digits (%d), not %d", n.maxDigits, n.minDigits)
		}
		n.terminator = 0
		if n.present["terminator"] {
			if k, ok := v.dtmfKey(nodePath(n, "terminator"), n.terminatorText); ok {
				n.terminator = k
			}
		}
		if v.need(n, "into", "a variable to store the digits in (into)") && !varName.MatchString(n.into) {
			v.errf(nodePath(n, "into"), "invalid variable name %q: letters, digits and _", n.into)
		}
		v.target(n, "next", n.next, true)
		v.target(n, "on_timeout", n.onTimeout, true)
		v.target(n, "on_invalid", n.onInvalid, false)

	case typeLookup:
		v.target(n, "next", n.next, true)

	case typeBranch:
		if v.need(n, "cases", "cases") && len(n.cases) == 0 {
			v.errf(nodePath(n, "cases"), "empty: a branch needs at least one case")
		}
		for i := range n.cases {
			c := &n.cases[i]
			cp := nodePath(n, "cases", strconv.Itoa(i))
			if len(c.when) == 0 {
				v.errf(append(cp, "when"), "missing: a case needs at least one condition")
			}
			for j := range c.when {
				if err := f.compileCondition(&c.when[j]); err != nil {
					v.errf(append(slices.Clone(cp), "when", c.when[j].refText), "%v", err)
				}
			}
			if c.next == "" {
				v.errf(append(cp, "next"), "missing: name the node to go to")
			} else {
				v.target(n, "cases", c.next, true, append(cp, "next")...)
			}
		}
		v.target(n, "default", n.def, true)

	case typeSet:
		if v.need(n, "values", "values, e.g. {priority: \"10\"}") && len(n.values) == 0 {
			v.errf(nodePath(n, "values"), "empty: name at least one variable")
		}
		for i := range n.values {
			sv := &n.values[i]
			path := nodePath(n, "values", sv.name)
			if !varName.MatchString(sv.name) {
				v.errf(path, "invalid variable name %q: letters, digits and _", sv.name)
			}
			t, err := f.parseTemplate(sv.text)
			if err != nil {
				v.errf(path, "%v", err)
				continue
			}
			sv.tmpl = t
			if lit, ok := t.literal(); ok && sv.name == "priority" {
				if _, err := strconv.Atoi(lit); err != nil {
					v.errf(path, "priority must be a whole number, not %q", lit)
				}
			}
		}
		v.target(n, "next", n.next, true)

	case typeQueue:
		if v.need(n, "skill", "a skill") && strings.TrimSpace(n.skill) == "" {
			v.errf(nodePath(n, "skill"), "empty skill")
		}
		n.priority = nil
		if n.present["priority"] {
			t, err := f.parseTemplate(n.priorityText)
			if err != nil {
				v.errf(nodePath(n, "priority"), "%v", err)
			} else if lit, ok := t.literal(); ok {
				if _, err := strconv.Atoi(lit); err != nil {
					v.errf(nodePath(n, "priority"), "want a whole number or ${...}, not %q", lit)
				}
			}
			n.priority = &t
		}
		v.target(n, "next", n.next, false)
		n.announce = 0
		if n.present["announce_every"] {
			n.announce = v.longDuration(n, "announce_every", n.announceText, 10*time.Second, time.Hour)
		}
		n.maxWait = 0
		if n.present["max_wait"] {
			n.maxWait = v.longDuration(n, "max_wait", n.maxWaitText, 10*time.Second, 24*time.Hour)
			if n.overflowSkill == "" && n.onMaxWait == "" {
				v.errf(nodePath(n, "max_wait"), "say where callers go after it: overflow_skill or on_max_wait")
			}
		} else if n.present["overflow_skill"] || n.present["on_max_wait"] {
			v.errf(nodePath(n, "max_wait"), "missing: overflow_skill and on_max_wait need a max_wait")
		}
		if n.overflowSkill != "" && n.onMaxWait != "" {
			v.errf(nodePath(n, "on_max_wait"), "give overflow_skill or on_max_wait, not both")
		}
		if n.present["overflow_skill"] && n.overflowSkill == n.skill {
			v.errf(nodePath(n, "overflow_skill"), "overflows to its own skill %q", n.skill)
		}
		v.target(n, "on_max_wait", n.onMaxWait, false)
		n.optionKeys = make(map[byte]string, len(n.options))
		for _, o := range n.options {
			path := nodePath(n, "options", o.key)
			if k, ok := v.dtmfKey(path, o.key); ok {
				n.optionKeys[k] = o.target
			}
			if o.target != QueueCallbackOption {
				v.target(n, "options", o.target, true, path...)
			}
		}
		if len(n.options) > 0 && len(n.optionsPrompts.names) == 0 {
			v.errf(nodePath(n, "options"), "callers must hear the options: add options_prompt")
		}

	case typeHangup:
	}
}

// successors returns the nodes a node can lead to.
func (n *node) successors() []string {
	out := []string{n.next, n.onInvalid, n.onTimeout, n.def, n.onMaxWait}
	for _, o := range n.options {
		if n.typ == typeQueue && o.target == QueueCallbackOption {
			continue
		}
		out = append(out, o.target)
	}
	for _, c := range n.cases {
		out = append(out, c.next)
	}
	return out
}

// reachable reports nodes that no path from start reaches: a typo in a
// next somewhere, or a dead branch the author believes is live.
func (v *validator) reachable() {
	f := v.f
	if f.nodes[f.start] == nil {
		return
	}
	seen := map[string]bool{f.start: true}
	todo := []string{f.start}
	for len(todo) > 0 {
		n := f.nodes[todo[len(todo)-1]]
		todo = todo[:len(todo)-1]
		for _, s := range n.successors() {
			if s != "" && f.nodes[s] != nil && !seen[s] {
				seen[s] = true
				todo = append(todo, s)
			}
		}
	}
	for _, name := range f.order {
		if !seen[name] {
			v.errf([]string{"nodes", name}, "unreachable: no path from start (%s) leads here", f.start)
		}
	}
}

// suggest returns ` (did you mean "x"?)` for the closest known name, when
// one is close enough to be a typo.
func suggest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
