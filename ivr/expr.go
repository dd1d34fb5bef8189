package ivr

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// refKind says which part of a call a reference reads.
type refKind uint8

const (
	refCaller   refKind = iota + 1 // caller.*: what the lookup node found
	refCall                        // call.*: what the call arrived with
	refVar                         // var.NAME: the call's variables
	refSchedule                    // schedule.NAME: "open" or "closed" now
)

// ref is a compiled reference like caller.tier or var.account.
type ref struct {
	kind  refKind
	field string
	sched *schedule
}

// Reference fields by prefix; var.* and schedule.* take any valid name.
var (
	callerFields = []string{"number", "name", "customer_id", "tier", "identified", "source"}
	callFields   = []string{"number", "display_name", "dialed", "id"}
	varName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// parseRef compiles a reference against the flow's schedules.
func (f *Flow) parseRef(text string) (ref, error) {
	prefix, field, ok := strings.Cut(text, ".")
	if ok {
		switch prefix {
		case "caller":
			if slices.Contains(callerFields, field) {
				return ref{kind: refCaller, field: field}, nil
			}
			return ref{}, fmt.Errorf("unknown caller attribute %q (one of %s)", field, strings.Join(callerFields, ", "))
		case "call":
			if slices.Contains(callFields, field) {
				return ref{kind: refCall, field: field}, nil
			}
			return ref{}, fmt.Errorf("unknown call attribute %q (one of %s)", field, strings.Join(callFields, ", "))
		case "var":
			if varName.MatchString(field) {
				return ref{kind: refVar, field: field}, nil
			}
			return ref{}, fmt.Errorf("invalid variable name %q: letters, digits and _", field)
		case "schedule":
			s, found := f.schedules[field]
			if !found {
				return ref{}, fmt.Errorf("unknown schedule %q%s", field, suggest(field, mapKeys(f.schedules)))
			}
			return ref{kind: refSchedule, field: field, sched: s}, nil
		}
	}
	return ref{}, fmt.Errorf("unknown reference %q: want caller.ATTR, call.ATTR, var.NAME or schedule.NAME", text)
}

// template is text with ${ref} expansions, e.g. "${var.priority}".
type template struct {
	parts []templatePart
}

type templatePart struct {
	text string
	ref  *ref
}

// parseTemplate compiles text with ${...} references.
func (f *Flow) parseTemplate(text string) (template, error) {
	var t template
	rest := text
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, templatePart{text: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{text: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return template{}, fmt.Errorf("unterminated ${ in %q", text)
		}
		r, err := f.parseRef(strings.TrimSpace(rest[i+2 : i+j]))
		if err != nil {
			return template{}, err
		}
		t.parts = append(t.parts, templatePart{ref: &r})
		rest = rest[i+j+1:]
	}
}

// literal reports whether the template has no references, and its text.
func (t template) literal() (string, bool) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ref != nil {
			return "", false
		}
		b.WriteString(p.text)
	}
	return b.String(), true
}

// expand evaluates the template with lookup resolving references.
func (t template) expand(lookup func(ref) string) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ref != nil {
			b.WriteString(lookup(*p.ref))
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// compileCondition checks a condition's values against its reference:
// booleans for caller.identified, open/closed for schedules.
func (f *Flow) compileCondition(c *condition) error {
	r, err := f.parseRef(c.refText)
	if err != nil {
		return err
	}
	c.ref = r
	for i, v := range c.values {
		switch {
		case r.kind == refCaller && r.field == "identified":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false, not %q", v)
			}
			c.values[i] = strconv.FormatBool(b)
		case r.kind == refSchedule:
			lv := strings.ToLower(v)
			if lv != "open" && lv != "closed" {
				return fmt.Errorf("want open or closed, not %q", v)
			}
			c.values[i] = lv
		}
	}
	return nil
}
