package signaling

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
)

// newBudget is a budget of slots of the largest messages.
func newBudget(t *testing.T, slots int) *LargeMessages {
	t.Helper()
	b, err := NewLargeMessages(int64(slots)*largeMessageWeight, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Large messages sent at once never hold more than the budget: those
// beyond it wait for a share that frees within largeMessageWait, and are
// refused (and counted) when none does.
func TestLargeMessageBudgetBoundsConcurrentMessages(t *testing.T) {
	tests := []struct {
		name        string
		slots       int
		senders     int
		hold        time.Duration // how long each message holds its share
		wantRefused int
	}{
		{"within the budget", 3, 3, 10 * time.Second, 0},
		{"waiters take freed shares", 2, 4, time.Second, 0},
		{"waiters beyond the wait are refused", 2, 5, 1500 * time.Millisecond, 1},
		{"one share held long", 1, 4, 10 * time.Second, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBudget(t, tt.slots)
				var inFlight, peak, refused atomic.Int64
				var wg sync.WaitGroup
				for range tt.senders {
					wg.Go(func() {
						if err := b.acquire(t.Context()); err != nil {
							if !errors.Is(err, errBudgetSpent) {
								t.Errorf("acquire: %v", err)
							}
							refused.Add(1)
							return
						}
						n := inFlight.Add(1)
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						if held := b.held.Load(); held > int64(tt.slots)*largeMessageWeight {
							t.Errorf("%d bytes held, budget %d", held, int64(tt.slots)*largeMessageWeight)
						}
						time.Sleep(tt.hold)
						inFlight.Add(-1)
						b.release()
					})
				}
				wg.Wait()
				if p := peak.Load(); p > int64(tt.slots) {
					t.Errorf("%d messages held the budget at once, budget of %d", p, tt.slots)
				}
				if got := refused.Load(); got != int64(tt.wantRefused) {
					t.Errorf("%d refused, want %d", got, tt.wantRefused)
				}
				if got := testutil.ToFloat64(b.refused); got != float64(tt.wantRefused) {
					t.Errorf("refusals metric %v, want %d", got, tt.wantRefused)
				}
				if b.held.Load() != 0 || testutil.ToFloat64(b.inUse) != 0 {
					t.Errorf("%d bytes still held after every message", b.held.Load())
				}
			})
		})
	}
}

func TestLargeMessageBudgetSettings(t *testing.T) {
	tests := []struct {
		name   string
		budget int64
		want   int // messages held at once; 0 for an error
	}{
		{"default", 0, DefaultLargeMessageBudget / largeMessageWeight},
		{"one message", largeMessageWeight, 1},
		{"under one message", largeMessageWeight - 1, 0},
		{"negative", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewLargeMessages(tt.budget, prometheus.NewRegistry())
			if (err != nil) != (tt.want == 0) {
				t.Fatalf("NewLargeMessages(%d): %v", tt.budget, err)
			}
			if err == nil && b.Messages() != tt.want {
				t.Fatalf("holds %d messages, want %d", b.Messages(), tt.want)
			}
		})
	}
	reg := prometheus.NewRegistry()
	if _, err := NewLargeMessages(0, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLargeMessages(0, reg); err == nil {
		t.Fatal("a second budget registered the same metrics")
	}
}

// largeRoom is two admitted tabs on a real socket, with a budget of
// slots large messages whose waits are short.
func largeRoom(t *testing.T, slots int) (b *LargeMessages, doc, other *websocket.Conn, dial func(string, bool) *websocket.Conn) {
	t.Helper()
	f := newFixture()
	b = newBudget(t, slots)
	b.wait, b.readWait = 300*time.Millisecond, time.Second
	f.hub.deps.LargeMessages = b
	_, dial = wsServer(t, f)
	doc = dial("u_doc", true)
	readType(t, doc, "admitted")
	other = dial("u_b", true)
	readType(t, other, "admitted")
	return b, doc, other, dial
}

// A large offer is relayed when the budget has room for it or frees some
// within the wait; otherwise it is refused with busy, counted, and the tab
// keeps its connection: the same offer sent again once the budget has
// room is relayed.
func TestLargeOfferWaitsForTheBudgetOrIsRefusedBusy(t *testing.T) {
	big := largeOffer(t, 20)
	raw := msg("offer", "to", "u_b", "sdp", big)
	if len(raw) <= MaxMessageBytes {
		t.Fatalf("the offer takes %d bytes, not a large message", len(raw))
	}
	tests := []struct {
		name     string
		held     bool          // the test holds the only share when the offer comes
		freeIn   time.Duration // and frees it after this; 0 keeps it
		wantBusy bool
	}{
		{"budget free", false, 0, false},
		{"budget freed while waiting", true, 50 * time.Millisecond, false},
		{"budget spent", true, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, doc, other, _ := largeRoom(t, 1)
			if tt.held {
				if err := b.acquire(t.Context()); err != nil {
					t.Fatal(err)
				}
				if tt.freeIn > 0 {
					time.AfterFunc(tt.freeIn, b.release)
				}
			}
			if err := doc.WriteMessage(websocket.TextMessage, raw); err != nil {
				t.Fatal(err)
			}
			if tt.wantBusy {
				e := readCode(t, doc, "busy")
				if e == nil {
					t.Fatal("no busy error for a large offer the budget could not take")
				}
				if n := testutil.ToFloat64(b.refused); n != 1 {
					t.Fatalf("refusals metric %v, want 1", n)
				}
				b.release()
				if err := doc.WriteMessage(websocket.TextMessage, raw); err != nil {
					t.Fatalf("the refused tab lost its connection: %v", err)
				}
			}
			if got := readType(t, other, "offer"); got["sdp"] != big || got["from"] != "u_doc" {
				t.Fatalf("relayed offer from %v of %d bytes, want the whole offer", got["from"], len(got["sdp"].(string)))
			}
			eventually.True(t, 5*time.Second, "the budget to be released", func() bool { return b.held.Load() == 0 })
		})
	}
}

// Many tabs sending large offers at once all get them relayed through a
// budget smaller than their number, which they never exceed.
func TestConcurrentLargeOffersShareTheBudget(t *testing.T) {
	b, _, other, dial := largeRoom(t, 2)
	b.wait = 5 * time.Second
	big := largeOffer(t, 20)
	const tabs = 6
	senders := make([]*websocket.Conn, tabs)
	for i := range senders {
		senders[i] = dial("u_s"+string(rune('a'+i)), true)
		readType(t, senders[i], "admitted")
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			if h := b.held.Load(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			default:
				time.Sleep(time.Millisecond)
			}
		}
	})
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() {
			if err := s.WriteMessage(websocket.TextMessage, msg("offer", "to", "u_b", "sdp", big)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	from := map[any]bool{}
	for range tabs {
		from[readType(t, other, "offer")["from"]] = true
	}
	close(stop)
	watch.Wait()
	if len(from) != tabs {
		t.Fatalf("offers relayed from %v, want %d tabs", from, tabs)
	}
	if p := peak.Load(); p > 2*largeMessageWeight {
		t.Fatalf("%d bytes held at once, budget %d", p, 2*largeMessageWeight)
	}
	if n := testutil.ToFloat64(b.refused); n != 0 {
		t.Fatalf("%v offers refused", n)
	}
}

// rawTab is a tab written to frame by frame, below the WebSocket library.
type rawTab struct {
	*websocket.Conn
	net net.Conn
}

func dialRaw(t *testing.T, srvURL, id string) rawTab {
	t.Helper()
	var nc net.Conn
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		nc = c
		return c, err
	}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srvURL, "http")+"/?id="+id+"&host=1", http.Header{"Origin": {srvURL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return rawTab{ws, nc}
}

// frame writes one masked frame's header claiming size bytes of payload,
// final or not, then payload (the zero mask leaves it as it is).
func (r rawTab) frame(t *testing.T, op byte, final bool, size int, payload []byte) {
	t.Helper()
	h := []byte{op, 0x80 | 127}
	if final {
		h[0] |= 0x80
	}
	h = binary.BigEndian.AppendUint64(h, uint64(size))
	h = append(h, 0, 0, 0, 0)
	if _, err := r.net.Write(append(h, payload...)); err != nil {
		t.Fatal(err)
	}
}

// A tab that starts a large message and stalls in the middle of it, even
// while it answers heartbeats between the message's frames, holds the
// budget for the read wait at most: the connection then ends and the
// share is released.
func TestStalledLargeMessageReleasesTheBudget(t *testing.T) {
	const sent = MaxMessageBytes + 10
	tests := []struct {
		name  string
		final bool // the frame claims the whole message; else a first fragment of sent bytes
		pongs bool // pongs follow the stalled first fragment
	}{
		{"stalled in a frame", true, false},
		{"stalled between fragments", false, false},
		{"stalled between fragments, answering heartbeats", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			b := newBudget(t, 1)
			b.readWait = 500 * time.Millisecond
			f.hub.deps.LargeMessages = b
			srv, _ := wsServer(t, f)
			tab := dialRaw(t, srv.URL, "u_doc")
			readType(t, tab.Conn, "admitted")
			size := sent
			if tt.final {
				size = MaxSDPMessageBytes
			}
			start := time.Now()
			tab.frame(t, websocket.TextMessage, tt.final, size, []byte(strings.Repeat("a", sent)))
			eventually.True(t, 5*time.Second, "the message to take its share", func() bool { return b.held.Load() > 0 })
			stopPongs := make(chan struct{})
			var pongs sync.WaitGroup
			if tt.pongs {
				pongs.Go(func() {
					t := time.NewTicker(100 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-stopPongs:
							return
						case <-t.C:
						}
						// An unsolicited pong, which the server takes as a
						// heartbeat's answer.
						if _, err := tab.net.Write([]byte{0x8A, 0x80, 0, 0, 0, 0}); err != nil {
							return
						}
					}
				})
			}
			eventually.True(t, 5*time.Second, "the stalled message to release the budget", func() bool { return b.held.Load() == 0 })
			if took := time.Since(start); took < b.readWait {
				t.Errorf("released after %s, before the read wait of %s", took, b.readWait)
			}
			_ = tab.net.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := tab.ReadMessage(); err != nil {
					if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
						t.Fatal("the connection of the stalled tab stayed open")
					}
					break
				}
			}
			close(stopPongs)
			pongs.Wait()
		})
	}
}
