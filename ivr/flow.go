package ivr

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"ivrd/configs"
)

// Flow is a parsed IVR flow file. Build it with ParseFlow or LoadFlow and
// call Validate before handing it to NewRunner; after that it is read-only
// and shared by every call.
type Flow struct {
	file      string
	root      *yaml.Node
	start     string
	schedules map[string]*schedule
	nodes     map[string]*node
	order     []string // node names as written in the file
	validated bool
}

// nodeType is the kind of a node, the value of its `type` key.
type nodeType string

// The node types of a flow.
const (
	typePlay    nodeType = "play"
	typeMenu    nodeType = "menu"
	typeCollect nodeType = "collect"
	typeLookup  nodeType = "lookup"
	typeBranch  nodeType = "branch"
	typeSet     nodeType = "set"
	typeQueue   nodeType = "queue"
	typeHangup  nodeType = "hangup"
)

// nodeKeys lists the keys each node type accepts; any other key is an error.
var nodeKeys = map[nodeType][]string{
	typePlay:    {"type", "prompt", "prompts", "barge_in", "next"},
	typeMenu:    {"type", "prompt", "prompts", "barge_in", "timeout", "retries", "invalid_prompt", "timeout_prompt", "options", "on_invalid", "on_timeout"},
	typeCollect: {"type", "prompt", "prompts", "barge_in", "max_digits", "min_digits", "terminator", "timeout", "inter_digit_timeout", "retries", "invalid_prompt", "timeout_prompt", "into", "next", "on_invalid", "on_timeout"},
	typeLookup:  {"type", "next"},
	typeBranch:  {"type", "cases", "default"},
	typeSet:     {"type", "values", "next"},
	typeQueue:   {"type", "skill", "priority", "next", "announce_every", "max_wait", "overflow_skill", "on_max_wait", "options", "options_prompt"},
	typeHangup:  {"type", "prompt", "prompts"},
}

// nodeTypes lists the types in the order the docs present them.
var nodeTypes = []nodeType{typePlay, typeMenu, typeCollect, typeLookup, typeBranch, typeSet, typeQueue, typeHangup}

// promptList is a prompt-bearing key: one name or a list of names.
type promptList struct {
	key   string // "prompts", "prompt", "invalid_prompt", "timeout_prompt"
	names []string
	list  bool // written as a YAML sequence (errors then name the index)
}

// option is one menu entry: a key and the node it leads to.
type option struct {
	key    string
	target string
}

// branchCase is one entry of a branch node's cases.
type branchCase struct {
	when []condition
	next string
}

// condition is one `ref: value` pair of a case's `when`.
type condition struct {
	refText string
	values  []string // any of these matches
	list    bool
	ref     ref // compiled by Validate
}

// setValue is one `name: value` entry of a set node.
type setValue struct {
	name string
	text string
	tmpl template // compiled by Validate
}

// node is one step of a flow. Raw values are kept as written; Validate
// checks them and fills the compiled fields.
type node struct {
	name    string
	typ     nodeType
	present map[string]bool

	prompts        promptList
	invalidPrompts promptList
	timeoutPrompts promptList
	optionsPrompts promptList // queue: announces the keys that work while waiting
	bargeIn        bool

	next      string
	onInvalid string
	onTimeout string
	def       string

	timeoutText    string
	interDigitText string
	retriesRaw     int
	maxDigits      int
	minDigits      int
	terminatorText string
	into           string

	options []option
	cases   []branchCase
	values  []setValue

	skill         string
	priorityText  string
	announceText  string
	maxWaitText   string
	overflowSkill string
	onMaxWait     string

	// Compiled by Validate.
	timeout    time.Duration
	interDigit time.Duration
	retries    int
	terminator byte
	optionKeys map[byte]string
	priority   *template
	announce   time.Duration // queue: 0 = the queue's default
	maxWait    time.Duration // queue: 0 = no limit
}

// promptLists are every prompt-bearing key of the node.
func (n *node) promptLists() []promptList {
	return []promptList{n.prompts, n.invalidPrompts, n.timeoutPrompts, n.optionsPrompts}
}

// LoadFlow reads and parses a flow file. Call Validate on the result.
func LoadFlow(path string) (*Flow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load flow: %w", err)
	}
	return ParseFlow(path, data)
}

// ParseFlow parses a flow from YAML; file names the source in errors. It
// rejects what cannot be read as a flow: YAML syntax errors, unknown keys,
// unknown node types and values of the wrong kind (a list where a name is
// expected), all at once. Whether the flow makes sense — references,
// durations, schedules, prompts — is Validate's job.
func ParseFlow(file string, data []byte) (*Flow, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	f := &Flow{
		file:      file,
		root:      &doc,
		schedules: make(map[string]*schedule),
		nodes:     make(map[string]*node),
	}
	p := &parser{file: file, root: &doc}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty flow: want keys start and nodes", file)
	}
	top := resolve(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: a flow is a mapping with keys start, schedules and nodes", file, top.Line)
	}
	p.each(top, nil, func(key string, val *yaml.Node, path []string) {
		switch key {
		case "start":
			f.start, _ = p.str(val, path)
		case "schedules":
			p.each(val, path, func(name string, val *yaml.Node, path []string) {
				if s := p.schedule(name, val, path); s != nil {
					f.schedules[name] = s
				}
			})
		case "nodes":
			p.each(val, path, func(name string, val *yaml.Node, path []string) {
				if n := p.node(name, val, path); n != nil {
					f.nodes[name] = n
					f.order = append(f.order, name)
				}
			})
		default:
			p.errf(path, "unknown key (want start, schedules or nodes)")
		}
	})
	if err := p.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// File returns the name the flow was parsed under.
func (f *Flow) File() string { return f.file }

// Start returns the name of the first node.
func (f *Flow) Start() string { return f.start }

// Prompts returns every prompt name the flow uses, sorted, each once.
func (f *Flow) Prompts() []string {
	var out []string
	for _, name := range f.order {
		n := f.nodes[name]
		for _, pl := range n.promptLists() {
			out = append(out, pl.names...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError rewrites a YAML syntax error as "file:line: message".
func yamlError(file string, err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s", file, m[1], m[2])
	}
	return fmt.Errorf("%s: %w", file, err)
}

// parser walks the YAML tree of a flow, collecting every error.
type parser struct {
	file string
	root *yaml.Node
	errs []error
}

func (p *parser) errf(path []string, format string, args ...any) {
	p.errs = append(p.errs, keyError(p.file, p.root, path, format, args...))
}

func (p *parser) err() error {
	return joinSorted(p.errs)
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

// each calls fn for every key of a mapping, reporting non-mappings,
// non-scalar keys and duplicate keys.
func (p *parser) each(n *yaml.Node, path []string, fn func(key string, val *yaml.Node, path []string)) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		if !isNull(n) {
			p.errf(path, "want a mapping of keys to values")
		}
		return
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			p.errf(path, "line %d: a key must be a plain name", n.Content[i].Line)
			continue
		}
		kp := appendPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			p.errs = append(p.errs, &configs.KeyError{File: p.file, Line: k.Line, Key: strings.Join(kp, "."), Msg: fmt.Sprintf("duplicate key (first on line %d)", first)})
			continue
		}
		seen[k.Value] = k.Line
		fn(k.Value, n.Content[i+1], kp)
	}
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// appendPath returns path+key without sharing path's backing array.
func appendPath(path []string, key ...string) []string {
	out := make([]string, 0, len(path)+len(key))
	return append(append(out, path...), key...)
}

// str reads a scalar as text.
func (p *parser) str(n *yaml.Node, path []string) (string, bool) {
	n = resolve(n)
	switch {
	case isNull(n):
		p.errf(path, "empty value")
		return "", false
	case n.Kind != yaml.ScalarNode:
		p.errf(path, "want a single value, not a %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// strs reads a scalar or a sequence of scalars.
func (p *parser) strs(n *yaml.Node, path []string) (vals []string, list, ok bool) {
	n = resolve(n)
	if n != nil && n.Kind == yaml.SequenceNode {
		ok = true
		for i, item := range n.Content {
			if s, good := p.str(item, appendPath(path, fmt.Sprint(i))); good {
				vals = append(vals, s)
			} else {
				ok = false
			}
		}
		return vals, true, ok
	}
	s, ok := p.str(n, path)
	if !ok {
		return nil, false, false
	}
	return []string{s}, false, true
}

func (p *parser) boolean(n *yaml.Node, path []string) (bool, bool) {
	n = resolve(n)
	var b bool
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		p.errf(path, "want true or false")
		return false, false
	}
	return b, true
}

func (p *parser) integer(n *yaml.Node, path []string) (int, bool) {
	n = resolve(n)
	var i int
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		p.errf(path, "want a whole number")
		return 0, false
	}
	return i, true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// node parses one entry under nodes.
func (p *parser) node(name string, val *yaml.Node, path []string) *node {
	m := resolve(val)
	if m == nil || m.Kind != yaml.MappingNode {
		p.errf(path, "want a mapping with a type, e.g. {type: play, prompts: [welcome], next: menu}")
		return nil
	}
	n := &node{name: name, present: make(map[string]bool)}
	// The type decides which keys are allowed, so read it first.
	for i := 0; i+1 < len(m.Content); i += 2 {
		if resolve(m.Content[i]).Value == "type" {
			t, ok := p.str(m.Content[i+1], appendPath(path, "type"))
			if !ok {
				return nil
			}
			n.typ = nodeType(t)
		}
	}
	allowed, known := nodeKeys[n.typ]
	switch {
	case n.typ == "":
		p.errf(path, "missing type (one of %s)", typeList())
		return nil
	case !known:
		p.errf(appendPath(path, "type"), "unknown node type %q (one of %s)", n.typ, typeList())
		return nil
	}
	p.each(m, path, func(key string, v *yaml.Node, kp []string) {
		if !slices.Contains(allowed, key) {
			p.errf(kp, "unknown key for a %s node (allowed: %s)", n.typ, strings.Join(allowed[1:], ", "))
			return
		}
		n.present[key] = true
		p.nodeField(n, key, v, kp)
	})
	if n.present["prompt"] && n.present["prompts"] {
		p.errf(appendPath(path, "prompts"), "give prompt or prompts, not both")
	}
	return n
}

// nodeField reads one key of a node; the key is allowed for the node's type.
func (p *parser) nodeField(n *node, key string, v *yaml.Node, kp []string) {
	switch key {
	case "type":
	case "prompt", "prompts", "invalid_prompt", "timeout_prompt", "options_prompt":
		names, list, _ := p.strs(v, kp)
		pl := promptList{key: key, names: names, list: list}
		switch key {
		case "options_prompt":
			n.optionsPrompts = pl
		case "invalid_prompt":
			n.invalidPrompts = pl
		case "timeout_prompt":
			n.timeoutPrompts = pl
		default:
			n.prompts = pl
		}
	case "barge_in":
		n.bargeIn, _ = p.boolean(v, kp)
	case "next":
		n.next, _ = p.str(v, kp)
	case "on_invalid":
		n.onInvalid, _ = p.str(v, kp)
	case "on_timeout":
		n.onTimeout, _ = p.str(v, kp)
	case "default":
		n.def, _ = p.str(v, kp)
	case "timeout":
		n.timeoutText, _ = p.str(v, kp)
	case "inter_digit_timeout":
		n.interDigitText, _ = p.str(v, kp)
	case "retries":
		n.retriesRaw, _ = p.integer(v, kp)
	case "max_digits":
		n.maxDigits, _ = p.integer(v, kp)
	case "min_digits":
		n.minDigits, _ = p.integer(v, kp)
	case "terminator":
		n.terminatorText, _ = p.str(v, kp)
	case "into":
		n.into, _ = p.str(v, kp)
	case "skill":
		n.skill, _ = p.str(v, kp)
	case "priority":
		n.priorityText, _ = p.str(v, kp)
	case "announce_every":
		n.announceText, _ = p.str(v, kp)
	case "max_wait":
		n.maxWaitText, _ = p.str(v, kp)
	case "overflow_skill":
		n.overflowSkill, _ = p.str(v, kp)
	case "on_max_wait":
		n.onMaxWait, _ = p.str(v, kp)
	case "options":
		p.each(v, kp, func(k string, target *yaml.Node, op []string) {
			t, _ := p.str(target, op)
			n.options = append(n.options, option{key: k, target: t})
		})
	case "values":
		p.each(v, kp, func(k string, val *yaml.Node, vp []string) {
			t, _ := p.str(val, vp)
			n.values = append(n.values, setValue{name: k, text: t})
		})
	case "cases":
		seq := resolve(v)
		if seq == nil || seq.Kind != yaml.SequenceNode {
			p.errf(kp, "want a list of {when: {...}, next: node}")
			return
		}
		for i, item := range seq.Content {
			if c, ok := p.branchCase(item, appendPath(kp, fmt.Sprint(i))); ok {
				n.cases = append(n.cases, c)
			}
		}
	}
}

func (p *parser) branchCase(item *yaml.Node, path []string) (branchCase, bool) {
	var c branchCase
	ok := true
	p.each(item, path, func(key string, v *yaml.Node, kp []string) {
		switch key {
		case "when":
			p.each(v, kp, func(ref string, val *yaml.Node, cp []string) {
				vals, list, good := p.strs(val, cp)
				if good {
					c.when = append(c.when, condition{refText: ref, values: vals, list: list})
				}
			})
		case "next":
			c.next, _ = p.str(v, kp)
		default:
			p.errf(kp, "unknown key for a case (allowed: when, next)")
			ok = false
		}
	})
	return c, ok
}

func typeList() string {
	names := make([]string, len(nodeTypes))
	for i, t := range nodeTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}
