package ivr

import (
	"slices"
	"testing"
	"time"
)

func TestParseDays(t *testing.T) {
	tests := []struct {
		spec string
		want []time.Weekday
	}{
		{"mon", []time.Weekday{time.Monday}},
		{"Mon-Fri", []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}},
		{"mon,wed", []time.Weekday{time.Monday, time.Wednesday}},
		{"fri-mon", []time.Weekday{time.Friday, time.Saturday, time.Sunday, time.Monday}},
		{"sat-sun, wed", []time.Weekday{time.Saturday, time.Sunday, time.Wednesday}},
	}
	for _, tt := range tests {
		got, err := parseDays(tt.spec)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseDays(%q) = %v, %v; want %v", tt.spec, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "monday", "mon-", "mon-fri-sat", "mon,,tue", "weekdays"} {
		if got, err := parseDays(bad); err == nil {
			t.Errorf("parseDays(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseSpan(t *testing.T) {
	tests := []struct {
		text string
		want span
	}{
		{"08:00-20:00", span{480, 1200}},
		{"00:00-24:00", span{0, 1440}},
		{"09:30 - 13:15", span{570, 795}},
	}
	for _, tt := range tests {
		got, err := parseSpan(tt.text)
		if err != nil || got != tt.want {
			t.Errorf("parseSpan(%q) = %v, %v; want %v", tt.text, got, err, tt.want)
		}
	}
	for _, bad := range []string{"8-20", "08:00", "20:00-08:00", "08:00-08:00", "24:00-24:00", "08:60-09:00",
		"+8:00-09:00", "08:00-24:01", "8:00-9:00", "ab:cd-ef:gh"} {
		if got, err := parseSpan(bad); err == nil {
			t.Errorf("parseSpan(%q) = %v, want an error", bad, got)
		}
	}
}

// The end of a range is excluded and a range can run to midnight; a
// schedule whose zone is ahead of UTC opens on its own local date.
func TestScheduleOpenAt(t *testing.T) {
	f := mustParse(t, `
start: b
schedules:
  late:
    timezone: Asia/Tokyo
    open: {fri: "22:00-24:00", sat: "00:00-02:00"}
    holidays: "2026-05-02"
nodes:
  b: {type: branch, cases: [{when: {schedule.late: open}, next: b}], default: b}
`)
	s := f.schedules["late"]
	tests := []struct {
		at   string
		want bool
	}{
		{"2026-05-08T12:59:00Z", false}, // Fri 21:59 JST
		{"2026-05-08T13:00:00Z", true},  // Fri 22:00 JST
		{"2026-05-08T15:00:00Z", true},  // Sat 00:00 JST, still open past midnight
		{"2026-05-08T16:59:00Z", true},  // Sat 01:59 JST
		{"2026-05-08T17:00:00Z", false}, // Sat 02:00 JST: end excluded
		{"2026-05-01T16:00:00Z", false}, // Sat 01:00 JST on the holiday 2026-05-02
	}
	for _, tt := range tests {
		at, _ := time.Parse(time.RFC3339, tt.at)
		if got := s.openAt(at); got != tt.want {
			t.Errorf("openAt(%s = %s) = %v, want %v", tt.at, at.In(s.loc).Format("Mon 15:04"), got, tt.want)
		}
	}
}
