//go:build race

package queue

// raceEnabled: built with -race, whose instrumentation makes stack
// frames larger.
const raceEnabled = true
