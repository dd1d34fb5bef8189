package queue

import (
	"strconv"
	"time"
)

// Prompts of the position and wait announcements (configs/prompts; queue.Prompts
// lists them for the start-up check).
const (
	promptYouAreCaller = "you_are_caller"     // "you are caller number"
	promptWaitIntro    = "ewt_intro"          // "your estimated wait time is about"
	promptMinute       = "minute"             // after "one"
	promptMinutes      = "minutes"            // after any other number
	promptUnderMinute  = "less_than_a_minute" // "less than a minute"
	maxSpokenNumber    = 59                   // num_0 … num_59 exist
)

// PositionPrompts says a caller's place: "you are caller number" and the
// number. It is nil when pos < 1 or pos > 59: there is no prompt for the
// number, and the caller hears the estimate (or please_hold) alone.
func PositionPrompts(pos int) []string {
	if pos < 1 || pos > maxSpokenNumber {
		return nil
	}
	return []string{promptYouAreCaller, numberPrompt(pos)}
}

// WaitPrompts says an estimated wait the way a person would round it:
// "your estimated wait time is about" and then "less than a minute", or a
// number of minutes as RoundWait gives it. It is nil when RoundWait has
// nothing to say (an hour or more: the caller then hears please_hold).
func WaitPrompts(d time.Duration) []string {
	switch m := RoundWait(d); {
	case m < 0:
		return nil
	case m == 0:
		return []string{promptWaitIntro, promptUnderMinute}
	case m == 1:
		return []string{promptWaitIntro, numberPrompt(1), promptMinute}
	default:
		return []string{promptWaitIntro, numberPrompt(m), promptMinutes}
	}
}

// RoundWait returns the minutes WaitPrompts says for d: 0 for less than a
// minute, -1 for nothing. The rules (docs/estimate.md):
//
//   - under 60 s: 0 ("less than a minute"); a negative d counts as 0;
//   - under 10 min: whole minutes, rounded to the nearest, halves up
//     (89 s → 1, 90 s → 2, 9m29s → 9, 9m30s → 10);
//   - 10 to 30 min: the nearest 5 minutes (12m29s → 10, 12m30s → 15);
//   - 30 min to an hour: the nearest 10 minutes (34m59s → 30, 35m → 40);
//   - whatever rounds to 60 minutes or more (from 55 min on): -1, since
//     the prompts stop at 59 and "about an hour" cannot be said honestly.
//
// The result never decreases as d grows.
func RoundWait(d time.Duration) int {
	switch {
	case d < time.Minute:
		return 0
	case d < 10*time.Minute:
		return roundTo(d, 1)
	case d < 30*time.Minute:
		return roundTo(d, 5)
	}
	if m := roundTo(d, 10); m <= maxSpokenNumber {
		return m
	}
	return -1
}

// roundTo rounds d to the nearest multiple of step minutes, halves up.
func roundTo(d time.Duration, step int) int {
	unit := time.Duration(step) * time.Minute
	return int((d+unit/2)/unit) * step
}

func numberPrompt(n int) string { return "num_" + strconv.Itoa(n) }
