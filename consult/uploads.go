package consult

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrUploadRate: the member shared too many files in a short time.
var ErrUploadRate = errors.New("too many files shared in a short time: wait a minute and try again")

// UploadRateError is ErrUploadRate with the time until the next upload
// is allowed.
type UploadRateError struct{ RetryAfter time.Duration }

func (e *UploadRateError) Error() string        { return ErrUploadRate.Error() }
func (e *UploadRateError) Is(target error) bool { return target == ErrUploadRate }

// UploadLimiter allows each member of a consult a number of uploads per
// minute, with a burst of as many. Safe for concurrent use; members who
// have not uploaded for a minute are forgotten once many are tracked.
type UploadLimiter struct {
	perMinute int

	mu      sync.Mutex
	members map[string]*rate.Limiter
}

// forgetAbove is how many members are tracked before idle ones are dropped.
const forgetAbove = 4096

// NewUploadLimiter allows perMinute uploads per member and minute.
func NewUploadLimiter(perMinute int) *UploadLimiter {
	return &UploadLimiter{perMinute: max(perMinute, 1), members: map[string]*rate.Limiter{}}
}

// Allow takes one upload from member's allowance at now, or reports how
// long until one is available.
func (l *UploadLimiter) Allow(consultID, memberID string, now time.Time) error {
	key := consultID + "/" + memberID
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.members[key]
	if lim == nil {
		if len(l.members) >= forgetAbove {
			l.forgetIdle(now)
		}
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(l.perMinute)), l.perMinute)
		l.members[key] = lim
	}
	if lim.AllowN(now, 1) {
		return nil
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return &UploadRateError{RetryAfter: wait}
}

// forgetIdle drops members whose allowance is full again.
func (l *UploadLimiter) forgetIdle(now time.Time) {
	for k, lim := range l.members {
		if lim.TokensAt(now) >= float64(l.perMinute) {
			delete(l.members, k)
		}
	}
}
