package signaling

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Messages larger than MaxMessageBytes (offers and answers of large rooms,
// or anything a client claims is that large) are read into a buffer of
// largeMessageWeight bytes, taken from a budget shared by every socket of
// the process, so that many sockets sending such messages at once cannot
// make the server hold more than the budget for them.
const (
	// DefaultLargeMessageBudget is the default budget: 32 MiB, some 75 of
	// the largest offers read and handled at once.
	DefaultLargeMessageBudget = 32 << 20
	// largeMessageWeight is what a large message takes from the budget:
	// the buffer it is read into, one byte past MaxSDPMessageBytes so
	// that a longer one is refused as too large.
	largeMessageWeight = MaxSDPMessageBytes + 1
	// largeMessageWait is how long a large message waits for the budget
	// before it is dropped and refused with busy.
	largeMessageWait = 2 * time.Second
	// largeReadWait is how long the rest of a large message may take to
	// arrive once the budget is taken (a phone sending the largest offer
	// at 200 kbit/s takes 18 s); the heartbeat does not extend it, so a
	// tab that stalls in the middle of one holds the budget that long at
	// most, and then loses its connection.
	largeReadWait = 30 * time.Second
)

// ErrBusy refuses a large message that the process's budget for large
// messages could not take in time; the message may be sent again.
var ErrBusy = &ProtoError{"busy", "the server is busy; send the message again in a moment"}

// errBudgetSpent is the budget staying spent for largeMessageWait.
var errBudgetSpent = errors.New("the budget for large messages stayed spent")

// LargeMessages is the budget of the memory that messages larger than
// MaxMessageBytes hold while they are read and handled, shared by every
// socket it is given to (RoomDeps.LargeMessages): one per process. Every
// large message takes the same share, so the budget is a number of
// slots.
type LargeMessages struct {
	slots chan struct{}
	held  atomic.Int64 // bytes of the budget taken now
	// wait and readWait are largeMessageWait and largeReadWait; tests
	// shorten them.
	wait, readWait time.Duration

	refused prometheus.Counter
	inUse   prometheus.GaugeFunc
}

// NewLargeMessages returns a budget of budget bytes (0 for
// DefaultLargeMessageBudget), which must hold at least one message of
// MaxSDPMessageBytes. Its metrics are registered with reg unless it is
// nil: signal_large_messages_refused_total and signal_large_message_bytes.
func NewLargeMessages(budget int64, reg prometheus.Registerer) (*LargeMessages, error) {
	if budget == 0 {
		budget = DefaultLargeMessageBudget
	}
	if budget < largeMessageWeight {
		return nil, fmt.Errorf("large message budget of %d bytes: it must hold at least one message of %d bytes", budget, largeMessageWeight)
	}
	b := &LargeMessages{slots: make(chan struct{}, budget/largeMessageWeight), wait: largeMessageWait, readWait: largeReadWait,
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signal_large_messages_refused_total",
			Help: "WebSocket messages larger than 64 KiB (offers and answers of large rooms) refused with busy because the process's budget for them stayed spent.",
		})}
	b.inUse = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signal_large_message_bytes",
		Help: "Bytes of the budget for WebSocket messages larger than 64 KiB that the messages being read and handled hold now.",
	}, func() float64 { return float64(b.held.Load()) })
	if reg == nil {
		return b, nil
	}
	if err := reg.Register(b.refused); err != nil {
		return nil, fmt.Errorf("large message metrics: %w", err)
	}
	if err := reg.Register(b.inUse); err != nil {
		reg.Unregister(b.refused)
		return nil, fmt.Errorf("large message metrics: %w", err)
	}
	return b, nil
}

// Messages is how many of the largest messages the budget holds at once.
func (b *LargeMessages) Messages() int { return cap(b.slots) }

// acquire takes a large message's share of the budget, waiting up to
// largeMessageWait; it fails with errBudgetSpent (counted as a refusal),
// or with ctx's error when ctx ends first.
func (b *LargeMessages) acquire(ctx context.Context) error {
	select {
	case b.slots <- struct{}{}:
		b.held.Add(largeMessageWeight)
		return nil
	default:
	}
	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
		b.held.Add(largeMessageWeight)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the large message budget: %w", ctx.Err())
	case <-t.C:
		b.refused.Inc()
		return errBudgetSpent
	}
}

// release gives back what acquire took.
func (b *LargeMessages) release() {
	b.held.Add(-largeMessageWeight)
	<-b.slots
}
