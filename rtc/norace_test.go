//go:build !race

package rtc

const raceEnabled = false
