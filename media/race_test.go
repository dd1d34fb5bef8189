//go:build race

package media

// raceEnabled: built with -race, whose instrumentation allocates where
// the plain build does not.
const raceEnabled = true
