// Package acceptloop accepts a listener's connections until it closes,
// waiting out failures such as EMFILE rather than spinning or giving up
// (Run), and keeps what a listener built on it owns: its context and
// goroutines, ended together by one Close (Group).
package acceptloop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// The wait after a failed Accept starts at firstDelay and doubles up to
// maxDelay; an accepted connection resets it.
const (
	firstDelay = 5 * time.Millisecond
	maxDelay   = time.Second
)

// Run passes each connection l accepts to handle, on Run's goroutine,
// until l is closed or ctx ends. A failed Accept is logged with what (the
// listener's name in the log) and retried after a wait.
func Run(ctx context.Context, l net.Listener, log *slog.Logger, what string, handle func(net.Conn)) {
	delay := firstDelay
	for {
		c, err := l.Accept()
		if err == nil {
			delay = firstDelay
			handle(c)
			continue
		}
		if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
			return
		}
		log.Warn(what+": accept", "err", err)
		select {
		case <-time.After(delay):
			delay = min(2*delay, maxDelay)
		case <-ctx.Done():
			return
		}
	}
}
