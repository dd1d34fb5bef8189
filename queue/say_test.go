package queue

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPositionPrompts(t *testing.T) {
	for _, tc := range []struct {
		pos  int
		want []string
	}{
		{-1, nil},
		{0, nil},
		{1, []string{"you_are_caller", "num_1"}},
		{7, []string{"you_are_caller", "num_7"}},
		{59, []string{"you_are_caller", "num_59"}},
		{60, nil},
		{1000, nil},
	} {
		if got := PositionPrompts(tc.pos); !slices.Equal(got, tc.want) {
			t.Errorf("PositionPrompts(%d) = %q; want %q", tc.pos, got, tc.want)
		}
	}
}

func TestWaitPromptsRounding(t *testing.T) {
	const m, s = time.Minute, time.Second
	less := []string{"ewt_intro", "less_than_a_minute"}
	minutes := func(n string) []string { return []string{"ewt_intro", "num_" + n, "minutes"} }
	for _, tc := range []struct {
		d     time.Duration
		round int
		want  []string
	}{
		{-5 * s, 0, less},
		{0, 0, less},
		{59 * s, 0, less},
		{59*s + 999*time.Millisecond, 0, less},
		{60 * s, 1, []string{"ewt_intro", "num_1", "minute"}},
		{89 * s, 1, []string{"ewt_intro", "num_1", "minute"}},
		{90 * s, 2, minutes("2")},
		{2*m + 29*s, 2, minutes("2")},
		{2*m + 30*s, 3, minutes("3")},
		{9*m + 29*s, 9, minutes("9")},
		{9*m + 30*s, 10, minutes("10")},
		{9*m + 31*s, 10, minutes("10")},
		{10 * m, 10, minutes("10")},
		{12 * m, 10, minutes("10")},
		{12*m + 29*s, 10, minutes("10")},
		{12*m + 30*s, 15, minutes("15")},
		{17*m + 29*s, 15, minutes("15")},
		{27*m + 29*s, 25, minutes("25")},
		{27*m + 30*s, 30, minutes("30")},
		{29*m + 59*s, 30, minutes("30")},
		{30 * m, 30, minutes("30")},
		{34*m + 59*s, 30, minutes("30")},
		{35 * m, 40, minutes("40")},
		{44*m + 59*s, 40, minutes("40")},
		{45 * m, 50, minutes("50")},
		{54*m + 59*s, 50, minutes("50")},
		{55 * m, -1, nil},
		{58 * m, -1, nil},
		{59*m + 59*s, -1, nil},
		{60 * m, -1, nil},
		{3 * time.Hour, -1, nil},
	} {
		if got := RoundWait(tc.d); got != tc.round {
			t.Errorf("RoundWait(%v) = %d; want %d", tc.d, got, tc.round)
		}
		if got := WaitPrompts(tc.d); !slices.Equal(got, tc.want) {
			t.Errorf("WaitPrompts(%v) = %q; want %q", tc.d, got, tc.want)
		}
	}
}

// The rounded wait never goes down as the estimate goes up, and every
// prompt it names exists in the demo's prompts.
func TestWaitPromptsMonotoneAndPromptsExist(t *testing.T) {
	dir := filepath.Join("..", "configs", "prompts")
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name+".wav"))
		return err == nil
	}
	prev, prevD := 0, time.Duration(0)
	for d := time.Duration(0); d <= 65*time.Minute; d += time.Second {
		r := RoundWait(d)
		if r < 0 {
			r = 1 << 30 // nothing said is "more than anything"
		}
		if r < prev {
			t.Fatalf("RoundWait(%v) = %d < RoundWait(%v) = %d", d, RoundWait(d), prevD, prev)
		}
		prev, prevD = r, d
		for _, p := range WaitPrompts(d) {
			if !exists(p) {
				t.Fatalf("WaitPrompts(%v) names %q, which is not in %s", d, p, dir)
			}
		}
	}
	for pos := 1; pos <= maxSpokenNumber; pos++ {
		for _, p := range PositionPrompts(pos) {
			if !exists(p) {
				t.Fatalf("PositionPrompts(%d) names %q, which is not in %s", pos, p, dir)
			}
		}
	}
}
