// Package eventually waits in tests for a condition that another goroutine,
// process or peer makes true.
package eventually

import (
	"testing"
	"time"
)

// poll is how often the condition is evaluated.
const poll = 5 * time.Millisecond

// True evaluates cond until it holds and fails the test, naming what it
// waited for, when it does not hold within the given time.
func True(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(poll) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
	}
}
