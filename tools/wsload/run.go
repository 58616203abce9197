package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/tools/internal/devsignal"
)

// guest is one patient's session: the consult and the cookie the join
// page set.
type guest struct {
	consult devsignal.Consult
	cookie  *http.Cookie
	source  int
}

// sample is the server's figures at one moment.
type sample struct {
	rss, heap, stack, goroutines float64
}

func run(ctx context.Context, o options) (Result, error) {
	dir, err := os.MkdirTemp("", "wsload-")
	if err != nil {
		return Result{}, fmt.Errorf("data directory: %w", err)
	}
	defer os.RemoveAll(dir)
	clinician, err := devsignal.SetUpAccounts(ctx, o.signal, dir)
	if err != nil {
		return Result{}, err
	}
	sig, err := devsignal.Start(ctx, o.signal, dir, nil)
	if err != nil {
		return Result{}, err
	}
	defer sig.Stop()
	clinician = sig.Reuse(clinician)
	defer clinician.CloseIdleConnections()

	guests, err := joinGuests(ctx, sig, clinician, o)
	if err != nil {
		return Result{}, err
	}
	time.Sleep(2 * time.Second) // the guests' HTTP connections close
	before, err := measure(ctx, sig)
	if err != nil {
		return Result{}, err
	}
	sockets, err := openSockets(ctx, sig, guests, o.workers)
	defer sockets.close()
	if err != nil {
		return Result{}, err
	}
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	after, peak, err := measureIdle(ctx, sig)
	if err != nil {
		return Result{}, err
	}
	n := float64(o.sockets)
	const kib, mib = 1 << 10, 1 << 20
	return Result{
		Sockets: o.sockets, Consults: o.consults, SettleSeconds: o.settle.Seconds(),
		RSSBeforeMiB: before.rss / mib, RSSAfterMiB: after.rss / mib, KiBPerSocket: (after.rss - before.rss) / n / kib,
		HeapBeforeMiB: before.heap / mib, HeapAfterMiB: after.heap / mib, HeapKiBPerSocket: (after.heap - before.heap) / n / kib,
		StackKiBPerSocket: (after.stack - before.stack) / n / kib,
		GoroutinesBefore:  before.goroutines, GoroutinesAfter: after.goroutines, GoroutinesPerSocket: (after.goroutines - before.goroutines) / n,
		PeakGoroutinesPerSocket: (peak - before.goroutines) / n,
		Dropped:                 int(sockets.dropped.Load()),
	}, nil
}

// joinGuests creates the consults and has every guest redeem its
// consult's link, from its own loopback address.
func joinGuests(ctx context.Context, sig *devsignal.Proc, clinician *http.Client, o options) ([]guest, error) {
	consults := make([]devsignal.Consult, o.consults)
	for i := range consults {
		c, err := sig.CreateConsult(ctx, clinician, fmt.Sprintf("idle %d", i+1))
		if err != nil {
			return nil, err
		}
		consults[i] = c
	}
	guests := make([]guest, o.sockets)
	err := forEach(ctx, len(guests), o.workers, func(ctx context.Context, i int) error {
		c := consults[i%len(consults)]
		ck, err := sig.JoinAsGuest(ctx, c.Link, fmt.Sprintf("Guest %d", i+1), i)
		if err != nil {
			return fmt.Errorf("guest %d: %w", i+1, err)
		}
		guests[i] = guest{consult: c, cookie: ck, source: i}
		return nil
	})
	return guests, err
}

// forEach runs f for 0..n-1 on workers goroutines and returns the first
// error, after which the remaining calls are skipped.
func forEach(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() != nil {
					continue
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// socketSet is the open guest sockets and the goroutines that read them.
type socketSet struct {
	mu      sync.Mutex
	conns   []*websocket.Conn
	closing atomic.Bool
	dropped atomic.Int64
	wg      sync.WaitGroup
}

// openSockets opens every guest's WebSocket, reads its welcome and then
// keeps reading, which answers the server's pings.
func openSockets(ctx context.Context, sig *devsignal.Proc, guests []guest, workers int) (*socketSet, error) {
	s := &socketSet{}
	err := forEach(ctx, len(guests), workers, func(ctx context.Context, i int) error {
		c, err := dial(ctx, sig, guests[i])
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Go(func() { s.read(c) })
		return nil
	})
	return s, err
}

func dial(ctx context.Context, sig *devsignal.Proc, gu guest) (*websocket.Conn, error) {
	d := websocket.Dialer{NetDialContext: sig.Dialer(devsignal.GuestSource(gu.source)), TLSClientConfig: sig.TLSConfig(),
		HandshakeTimeout: 15 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	h := http.Header{"Origin": {sig.Public.String()}, "Cookie": {gu.cookie.Name + "=" + gu.cookie.Value}}
	u := *sig.Public
	u.Scheme = "wss"
	u.Path = "/ws/consults/" + gu.consult.ID
	c, resp, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket: %s: %w", resp.Status, err)
		}
		return nil, fmt.Errorf("websocket: %w", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	var welcome struct{ Type, State string }
	if err := c.ReadJSON(&welcome); err != nil || welcome.Type != "welcome" || welcome.State != "lobby" {
		c.Close()
		return nil, fmt.Errorf("websocket: no lobby welcome (%q): %v", welcome.Type, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

func (s *socketSet) read(c *websocket.Conn) {
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if !s.closing.Load() {
				s.dropped.Add(1)
			}
			return
		}
	}
}

func (s *socketSet) close() {
	s.closing.Store(true)
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// heartbeatWindow is the server's heartbeat period: over it every socket
// is pinged once, and briefly has a goroutine writing the ping.
const heartbeatWindow = 10 * time.Second

// measureIdle samples the server every second over one heartbeat period
// and returns the lowest of each figure, the server between heartbeats,
// and the highest goroutine count, while pings were being written.
func measureIdle(ctx context.Context, sig *devsignal.Proc) (low sample, peakGoroutines float64, err error) {
	for i := range int(heartbeatWindow / time.Second) {
		if i > 0 {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return sample{}, 0, ctx.Err()
			}
		}
		s, err := measure(ctx, sig)
		if err != nil {
			return sample{}, 0, err
		}
		if i == 0 {
			low = s
		}
		low = sample{rss: min(low.rss, s.rss), heap: min(low.heap, s.heap), stack: min(low.stack, s.stack), goroutines: min(low.goroutines, s.goroutines)}
		peakGoroutines = max(peakGoroutines, s.goroutines)
	}
	return low, peakGoroutines, nil
}

// measure reads the server's resident memory from /proc and its heap,
// stacks and goroutines from its /metrics.
func measure(ctx context.Context, sig *devsignal.Proc) (sample, error) {
	u, err := procstat.Read(sig.PID())
	if err != nil {
		return sample{}, err
	}
	m, err := scrape(ctx, "http://"+sig.Admin+"/metrics",
		"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines")
	if err != nil {
		return sample{}, err
	}
	return sample{rss: float64(u.RSSBytes), heap: m[0], stack: m[1], goroutines: m[2]}, nil
}

// scrape returns the values of unlabelled metrics, in the order named.
func scrape(ctx context.Context, url string, names ...string) ([]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	found := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			found[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	out := make([]float64, len(names))
	for i, n := range names {
		v, ok := found[n]
		if !ok {
			return nil, fmt.Errorf("metrics: no %s", n)
		}
		out[i] = v
	}
	return out, nil
}
