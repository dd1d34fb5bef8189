package ivr

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // schedules name IANA zones; do not depend on the host's zoneinfo

	"go.yaml.in/yaml/v3"
)

// schedule is a named set of opening hours, evaluated in its own time zone
// so that a flow means the same thing on a server in any zone and across
// daylight-saving changes.
type schedule struct {
	name     string
	path     []string
	tzText   string
	open     []openEntry
	holidays []string
	holPaths [][]string

	// Compiled by Validate.
	loc      *time.Location
	week     [7][]span // by time.Weekday
	closedOn map[string]bool
}

// openEntry is one `days: hours` line of a schedule's open mapping.
type openEntry struct {
	days   string
	ranges []string
	path   []string
	paths  [][]string // per range when written as a list
}

// span is a half-open range of minutes after local midnight, [from, to).
type span struct{ from, to int }

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

const dateLayout = "2006-01-02"

// schedule parses one entry under schedules.
func (p *parser) schedule(name string, val *yaml.Node, path []string) *schedule {
	s := &schedule{name: name, path: path}
	p.each(val, path, func(key string, v *yaml.Node, kp []string) {
		switch key {
		case "timezone":
			s.tzText, _ = p.str(v, kp)
		case "open":
			p.each(v, kp, func(days string, hours *yaml.Node, dp []string) {
				ranges, list, ok := p.strs(hours, dp)
				if !ok {
					return
				}
				e := openEntry{days: days, ranges: ranges, path: dp}
				for i := range ranges {
					if list {
						e.paths = append(e.paths, appendPath(dp, strconv.Itoa(i)))
					} else {
						e.paths = append(e.paths, dp)
					}
				}
				s.open = append(s.open, e)
			})
		case "holidays":
			dates, list, _ := p.strs(v, kp)
			for i, d := range dates {
				s.holidays = append(s.holidays, d)
				if list {
					s.holPaths = append(s.holPaths, appendPath(kp, strconv.Itoa(i)))
				} else {
					s.holPaths = append(s.holPaths, kp)
				}
			}
		default:
			p.errf(kp, "unknown key for a schedule (allowed: timezone, open, holidays)")
		}
	})
	return s
}

// compile checks the schedule and builds its week table; errf reports
// problems.
func (s *schedule) compile(errf func(path []string, format string, args ...any)) {
	s.week = [7][]span{}
	s.closedOn = make(map[string]bool)
	switch {
	case s.tzText == "":
		errf(appendPath(s.path, "timezone"), "missing: name an IANA time zone, e.g. America/New_York or UTC")
	case s.tzText == "Local":
		errf(appendPath(s.path, "timezone"), "Local depends on the server; name the zone, e.g. Europe/London")
	default:
		loc, err := time.LoadLocation(s.tzText)
		if err != nil {
			errf(appendPath(s.path, "timezone"), "unknown time zone %q", s.tzText)
		}
		s.loc = loc
	}
	if len(s.open) == 0 {
		errf(appendPath(s.path, "open"), "missing: give opening hours, e.g. {mon-fri: \"08:00-20:00\"}")
	}
	for _, e := range s.open {
		days, err := parseDays(e.days)
		if err != nil {
			errf(e.path, "%v", err)
			continue
		}
		for i, text := range e.ranges {
			for _, part := range strings.Split(text, ",") {
				sp, err := parseSpan(strings.TrimSpace(part))
				if err != nil {
					errf(e.paths[i], "%v", err)
					continue
				}
				for _, d := range days {
					s.week[d] = append(s.week[d], sp)
				}
			}
		}
	}
	for i, h := range s.holidays {
		t, err := time.Parse(dateLayout, h)
		if err != nil {
			errf(s.holPaths[i], "invalid date %q: want YYYY-MM-DD", h)
			continue
		}
		s.closedOn[t.Format(dateLayout)] = true
	}
}

// openAt reports whether the schedule is open at t: t's wall-clock time in
// the schedule's zone falls in a range for that weekday, and the local date
// is not a holiday.
func (s *schedule) openAt(t time.Time) bool {
	if s.loc == nil {
		return false
	}
	lt := t.In(s.loc)
	if s.closedOn[lt.Format(dateLayout)] {
		return false
	}
	m := lt.Hour()*60 + lt.Minute()
	for _, sp := range s.week[lt.Weekday()] {
		if m >= sp.from && m < sp.to {
			return true
		}
	}
	return false
}

// parseDays reads "mon", "mon-fri", "mon,wed,fri", "sat-sun,wed" or
// "fri-mon" (wrapping over the weekend).
func parseDays(spec string) ([]time.Weekday, error) {
	var out []time.Weekday
	for _, part := range strings.Split(spec, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		from, to, isRange := strings.Cut(part, "-")
		a, okA := weekdays[strings.TrimSpace(from)]
		b := a
		okB := true
		if isRange {
			b, okB = weekdays[strings.TrimSpace(to)]
		}
		if !okA || !okB {
			return nil, fmt.Errorf("invalid days %q: want mon..sun, a range like mon-fri or a list like mon,wed", spec)
		}
		for d := a; ; d = (d + 1) % 7 {
			out = append(out, d)
			if d == b {
				break
			}
		}
	}
	return out, nil
}

// parseSpan reads "08:00-20:00"; the end may be 24:00 and must be after the
// start (a range past midnight is written as two, one per day).
func parseSpan(text string) (span, error) {
	a, b, ok := strings.Cut(text, "-")
	if !ok {
		return span{}, fmt.Errorf("invalid hours %q: want HH:MM-HH:MM, e.g. 08:00-20:00", text)
	}
	from, errA := parseClock(strings.TrimSpace(a))
	to, errB := parseClock(strings.TrimSpace(b))
	switch {
	case errA != nil || errB != nil || from == 24*60:
		return span{}, fmt.Errorf("invalid hours %q: want HH:MM-HH:MM with 00:00 to 24:00, e.g. 08:00-20:00", text)
	case to <= from:
		return span{}, fmt.Errorf("invalid hours %q: the end must be after the start (split a range past midnight over two days)", text)
	}
	return span{from, to}, nil
}

// parseClock reads "HH:MM" as minutes after midnight; 24:00 is allowed.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 || !allDigits(h) || !allDigits(m) {
		return 0, fmt.Errorf("invalid time %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("invalid time %q", s)
	}
	return hh*60 + mm, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
