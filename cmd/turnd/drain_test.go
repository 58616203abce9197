package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/relay"
)

// readyz returns the status code and body of /readyz.
func readyz(t *testing.T, metricsAddr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// logged returns the first log line with msg, or nil.
func logged(logs *syncbuf.Buffer, msg string) map[string]any {
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	return nil
}

// turnClient is pion's TURN client over UDP with a credential for id.
func turnClient(t *testing.T, relayAddr, id string) *turn.Client {
	t.Helper()
	user, pass := relay.MintCredential([]byte(testSecret), id, time.Hour, time.Now())
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: relayAddr, STUNServerAddr: relayAddr, Conn: conn,
		Username: user, Password: pass, Realm: "openconsult", RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// relayTo sends msg from the relayed socket to peer and checks it arrives.
func relayTo(t *testing.T, relayed, peer net.PacketConn, msg string) {
	t.Helper()
	if _, err := relayed.WriteTo([]byte(msg), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := peer.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], []byte(msg)) {
		t.Fatalf("peer received %q, %v; want %q", buf[:n], err, msg)
	}
}

// On SIGTERM turnd refuses new allocations, keeps relaying the open ones,
// says "draining" on /readyz, and exits when the last allocation ends or
// at -shutdown-timeout.
func TestTerminationDrainsTheRelay(t *testing.T) {
	tests := []struct {
		name            string
		shutdownTimeout string
		release         bool // the client ends its allocation during the drain
	}{
		{"exits when the last allocation ends", "1m", true},
		{"exits at the shutdown timeout", "2s", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			logs := &syncbuf.Buffer{}
			done := make(chan error, 1)
			args := []string{"-listen", "127.0.0.1:0", "-tls-listen", "off", "-metrics", "127.0.0.1:0", "-relay-ports", "40400-40500",
				"-allow-peer", "127.0.0.1", "-shutdown-timeout", tt.shutdownTimeout}
			go func() {
				done <- run(ctx, args, func(k string) string { return map[string]string{"TURND_AUTH_SECRET": testSecret}[k] }, io.Discard, logs)
			}()
			eventually.True(t, 10*time.Second, "turnd listening", func() bool {
				return logged(logs, "relay listening") != nil && logged(logs, "listening") != nil
			})
			relayAddr := logged(logs, "relay listening")["udp_tcp"].(string)
			metricsAddr := logged(logs, "listening")["addr"].(string)

			relayed, err := turnClient(t, relayAddr, "g_in_call").Allocate()
			if err != nil {
				t.Fatal(err)
			}
			defer relayed.Close()
			peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			relayTo(t, relayed, peer, "before the drain")
			if code, body := readyz(t, metricsAddr); code != http.StatusOK {
				t.Fatalf("/readyz before the drain: %d %s", code, body)
			}

			cancel() // what SIGTERM does (internal/cli)
			eventually.True(t, 5*time.Second, "the drain", func() bool { return logged(logs, "draining") != nil })
			if code, body := readyz(t, metricsAddr); code != http.StatusServiceUnavailable || !strings.Contains(body, `"relay":"draining"`) {
				t.Fatalf("/readyz while draining: %d %s; want 503 naming the relay draining", code, body)
			}
			if tt.release {
				_, err = turnClient(t, relayAddr, "g_newcomer").Allocate()
				var te *stun.TurnError
				if !errors.As(err, &te) || te.ErrorCodeAttr.Code != stun.CodeInsufficientCapacity {
					t.Fatalf("allocation while draining: %v, want 508 Insufficient Capacity", err)
				}
				relayTo(t, relayed, peer, "during the drain")
				select {
				case err := <-done:
					t.Fatalf("turnd exited (%v) with an allocation open", err)
				default:
				}
				if err := relayed.Close(); err != nil { // a Refresh with LIFETIME 0
					t.Fatal(err)
				}
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("turnd: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("turnd did not exit")
			}
			if timedOut := logged(logs, "shutdown timeout: open allocations closed") != nil; timedOut == tt.release {
				t.Fatalf("shutdown timeout logged %v, want %v", timedOut, !tt.release)
			}
		})
	}
}
