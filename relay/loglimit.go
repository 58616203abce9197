package relay

import (
	"log/slog"
	"sync"
	"time"
)

// logLimiter writes at most one line a second for each message and value,
// so that a flood of bad requests cannot flood the log. The lines it held
// back are counted in the next line written.
type logLimiter struct {
	mu   sync.Mutex
	last map[[2]string]limited
}

type limited struct {
	at         time.Time
	suppressed int
}

func (l *logLimiter) log(log *slog.Logger, msg, key, value string) {
	k := [2]string{msg, value}
	now := time.Now()
	l.mu.Lock()
	if l.last == nil {
		l.last = map[[2]string]limited{}
	}
	st := l.last[k]
	if !st.at.IsZero() && now.Sub(st.at) < time.Second {
		st.suppressed++
		l.last[k] = st
		l.mu.Unlock()
		return
	}
	l.last[k] = limited{at: now}
	l.mu.Unlock()
	if st.suppressed > 0 {
		log.Info(msg, key, value, "suppressed", st.suppressed)
		return
	}
	log.Info(msg, key, value)
}
