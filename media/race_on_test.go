//go:build race

package media

// raceEnabled: with the race detector sync.Pool drops some of what it is
// given, so a cycle through a pool may allocate.
const raceEnabled = true
