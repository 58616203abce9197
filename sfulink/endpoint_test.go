package sfulink

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
)

// hijacked is the response writer the upgrader takes over the pipe with.
type hijacked struct {
	*httptest.ResponseRecorder
	conn net.Conn
	rw   *bufio.ReadWriter
}

func (h hijacked) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.conn, h.rw, nil }

// pipeWebSockets returns the two ends of a WebSocket over an in-memory
// pipe, so that the link's timers run on a test's clock.
func pipeWebSockets(t *testing.T) (client, server *websocket.Conn) {
	t.Helper()
	c, s := net.Pipe()
	accepted := make(chan *websocket.Conn, 1)
	go func() {
		defer close(accepted)
		rw := bufio.NewReadWriter(bufio.NewReader(s), bufio.NewWriter(s))
		req, err := http.ReadRequest(rw.Reader)
		if err != nil {
			return
		}
		ws, err := (&websocket.Upgrader{}).Upgrade(hijacked{httptest.NewRecorder(), s, rw}, req, nil)
		if err == nil {
			accepted <- ws
		}
	}()
	d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
	client, _, err := d.Dial("ws://node.test/link", nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("the upgrade failed")
	}
	return client, server
}

// TestSilentPeerEndsTheLinkAfterThreeHeartbeats: a peer that answers the
// heartbeat keeps the link however long it stays quiet otherwise; one that
// stops answering loses it three heartbeats after it was last heard.
func TestSilentPeerEndsTheLinkAfterThreeHeartbeats(t *testing.T) {
	const heartbeat = 10 * time.Second
	cases := []struct {
		name       string
		answersFor time.Duration // how long the peer answers pings before it goes silent
		wantEnd    time.Duration // when the link must end, after the start
	}{
		// Pings go out every heartbeat from the start; the last one
		// answered is the last before the peer goes silent.
		{"silent from the start", 0, 3 * heartbeat},
		{"silent after a minute", time.Minute + heartbeat/2, time.Minute + 3*heartbeat},
		{"silent after an hour", time.Hour + heartbeat/2, time.Hour + 3*heartbeat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client, server := pipeWebSockets(t)
				defer server.Close()
				if c.answersFor > 0 {
					// The peer reads, which answers each ping with a pong,
					// until its deadline; then it reads no more.
					_ = server.SetReadDeadline(time.Now().Add(c.answersFor))
					go func() {
						for {
							if _, _, err := server.ReadMessage(); err != nil {
								return
							}
						}
					}()
				}
				start := time.Now()
				ended := make(chan error, 1)
				e := newEndpoint(client, heartbeat, nil)
				go func() { ended <- e.run(func([]byte) {}, func([]byte) {}) }()

				time.Sleep(c.wantEnd - time.Second)
				synctest.Wait()
				select {
				case err := <-ended:
					t.Fatalf("link ended before %v (%v), want at %v", time.Since(start), err, c.wantEnd)
				default:
				}
				err := <-ended
				if got := time.Since(start); got != c.wantEnd {
					t.Fatalf("link ended after %v, want %v", got, c.wantEnd)
				}
				if err == nil {
					t.Fatal("run returned no error for a silent peer")
				}
			})
		})
	}
}
