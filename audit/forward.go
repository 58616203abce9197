package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// SendFunc delivers one signed checkpoint note to a destination, giving
// up when ctx is done.
type SendFunc func(ctx context.Context, note []byte) error

// Forwarder hands checkpoints to a destination that may be slow or down
// (an HTTP witness, a syslog server) from its own goroutine: Publish never
// blocks, only the newest note waits, and a failed send is retried with a
// growing pause until it goes through or a newer note replaces it.
type Forwarder struct {
	name     string
	send     SendFunc
	timeout  time.Duration // one attempt
	retry    time.Duration // first pause after a failure
	maxPause time.Duration
	logger   *slog.Logger

	mu      sync.Mutex
	pending []byte
	wake    chan struct{}
}

// NewForwarder returns a forwarder to the destination called name (for
// logs) that gives each attempt timeout and pauses retry after a first
// failure, doubling up to five minutes.
func NewForwarder(name string, send SendFunc, timeout, retry time.Duration, logger *slog.Logger) *Forwarder {
	return &Forwarder{name: name, send: send, timeout: timeout, retry: retry, maxPause: 5 * time.Minute,
		logger: logger, wake: make(chan struct{}, 1)}
}

// Publish queues note in place of any note not yet delivered.
func (f *Forwarder) Publish(note []byte) {
	f.mu.Lock()
	f.pending = note
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run delivers queued notes until ctx is done, then makes one last
// attempt of at most one timeout, so that the checkpoint of a graceful
// shutdown leaves too. Its caller owns the goroutine.
func (f *Forwarder) Run(ctx context.Context) {
	pause := f.retry
	// Since Go 1.23 a stopped timer delivers no stale value.
	timer := time.NewTimer(pause)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			f.deliver(context.WithoutCancel(ctx))
			return
		case <-f.wake:
		case <-timer.C:
		}
		if f.deliver(ctx) {
			pause = f.retry
			continue
		}
		timer.Reset(pause)
		pause = min(2*pause, f.maxPause)
	}
}

// Flush makes one attempt to send the note not yet delivered, if any, and
// reports whether nothing is left to send: the checkpoint of a graceful
// shutdown goes out this way, whether or not Run still runs.
func (f *Forwarder) Flush(ctx context.Context) bool { return f.deliver(ctx) }

// deliver sends the pending note, if any, and reports whether nothing is
// left to send.
func (f *Forwarder) deliver(ctx context.Context) bool {
	f.mu.Lock()
	note := f.pending
	f.mu.Unlock()
	if note == nil {
		return true
	}
	sctx, cancel := context.WithTimeout(ctx, f.timeout)
	err := f.send(sctx, note)
	cancel()
	if err != nil {
		f.logger.Warn("audit: checkpoint not delivered; will retry", "to", f.name, "err", err)
		return false
	}
	f.mu.Lock()
	if bytes.Equal(f.pending, note) {
		f.pending = nil
	}
	f.mu.Unlock()
	return true
}

// WitnessSender POSTs each note as text/plain to url; any 2xx answer is a
// delivery.
func WitnessSender(url string, client *http.Client) SendFunc {
	return func(ctx context.Context, note []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(note))
		if err != nil {
			return fmt.Errorf("audit witness: %w", err)
		}
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("audit witness: %w", err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("audit witness: status %d", resp.StatusCode)
		}
		return nil
	}
}

// syslogPriority is facility authpriv (10), severity notice (5).
const syslogPriority = 10*8 + 5

// SyslogSender sends each note as one syslog line, "audit checkpoint
// <size> <base64 note>", to target: "local" (the local socket /dev/log),
// or network:address with network udp, tcp or unixgram
// ("udp:logs.example.org:514"). Each send dials anew, so a restarted
// syslog server is found again.
func SyslogSender(target string) (SendFunc, error) {
	if target == "local" {
		target = "unixgram:/dev/log"
	}
	network, addr, ok := strings.Cut(target, ":")
	if !ok || addr == "" || (network != "udp" && network != "tcp" && network != "unixgram") {
		return nil, fmt.Errorf("audit syslog %q: want local, or udp:, tcp: or unixgram: followed by an address", target)
	}
	host, _ := os.Hostname()
	return func(ctx context.Context, note []byte) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return fmt.Errorf("audit syslog: %w", err)
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		size, _ := claimedSize(note)
		line := fmt.Sprintf("<%d>%s %s openconsult-audit[%d]: audit checkpoint %d %s\n", syslogPriority,
			time.Now().Format(time.Stamp), host, os.Getpid(), size, base64.StdEncoding.EncodeToString(note))
		if _, err := conn.Write([]byte(line)); err != nil {
			return fmt.Errorf("audit syslog: %w", err)
		}
		return nil
	}, nil
}
