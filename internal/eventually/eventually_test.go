package eventually_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

func TestTrueReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	eventually.True(t, 5*time.Second, "three evaluations", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("condition evaluated %d times, want 3", got)
	}
}

// recorder stands in for a test to observe a failure.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	panic(r)
}

func TestTrueFailsNamingWhatItWaitedFor(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if v := recover(); v != r {
				t.Fatalf("no failure reported (recovered %v)", v)
			}
		}()
		eventually.True(r, 20*time.Millisecond, "never", func() bool { return false })
	}()
	if r.failed == "" {
		t.Fatal("Fatalf not called")
	}
}
