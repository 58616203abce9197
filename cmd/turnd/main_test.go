package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/relay"
)

const testSecret = "a-shared-secret-of-some-length"

func TestRelaysWithSignalCredentialsAndStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncbuf.Buffer{}
	done := make(chan error, 1)
	args := []string{"-listen", "127.0.0.1:0", "-tls-listen", "off", "-metrics", "127.0.0.1:0", "-relay-ports", "40000-40100", "-allow-peer", "127.0.0.1"}
	env := map[string]string{"TURND_AUTH_SECRET": testSecret}
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, logs) }()

	t.Cleanup(func() {
		if t.Failed() {
			cancel()
			t.Logf("turnd's log:\n%s", logs.String())
		}
	})
	var relayAddr, metricsAddr string
	eventually.True(t, 10*time.Second, "the relay and metrics listening lines", func() bool {
		for line := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			if m["msg"] == "relay listening" {
				relayAddr = m["udp_tcp"].(string)
			}
			if m["msg"] == "listening" {
				metricsAddr = m["addr"].(string)
			}
		}
		return relayAddr != "" && metricsAddr != ""
	})

	relayed, err := allocate(t, relayAddr, testSecret)
	if err != nil {
		t.Fatalf("allocate with a signal credential: %v", err)
	}
	relayed.Close() // an open allocation would hold the stop for -shutdown-timeout

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "turn_allocations") {
		t.Fatal("metrics lack turn_allocations")
	}
	if strings.Contains(logs.String(), testMember) || strings.Contains(logs.String(), testSecret) {
		t.Fatal("the log names a participant or the secret")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop")
	}
}

func TestCheckModeAndBadConfiguration(t *testing.T) {
	var out strings.Builder
	env := map[string]string{"TURND_AUTH_SECRET": testSecret}
	if err := run(context.Background(), []string{"-check", "-tls-listen", "off", "-relay-ip", "192.0.2.10", "-public-ip", "198.51.100.4"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatalf("-check: %v", err)
	}
	if !strings.Contains(out.String(), "configuration valid") || !strings.Contains(out.String(), "public 198.51.100.4") {
		t.Fatalf("-check printed %q", out.String())
	}
	users := filepath.Join(t.TempDir(), "users")
	os.WriteFile(users, []byte("# staff\nalice:short\n"), 0o600)
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-tls-listen", "off"}, nil, "-auth-secret"},
		{[]string{"-tls-listen", "off"}, map[string]string{"TURND_AUTH_SECRET": "short"}, "too short"},
		{[]string{"-relay-ports", "10-5"}, env, "-relay-ports"},
		{[]string{"-tls-listen", ":5349"}, env, "-tls-cert"},
		{[]string{"-tls-listen", "off", "-allow-peer", "10.0.0.0/33"}, env, "-allow-peer"},
		{[]string{"-tls-listen", "off", "-public-ip", "nowhere"}, env, "-public-ip"},
		{[]string{"-tls-listen", "off", "-allocation-rate", "-1"}, env, "-allocation-rate"},
		{[]string{"-tls-listen", "off", "-allocation-burst", "0"}, env, "-allocation-burst"},
		{[]string{"-tls-listen", "off", "-connections-per-address", "-2"}, env, "-connections-per-address"},
		{[]string{"-tls-listen", "off", "-users-file", users, "-check"}, env, "line 2"},
	}
	for _, tt := range tests {
		err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%v) = %v, want mention of %q", tt.args, err, tt.want)
		}
	}
}

func TestHelpAndExampleConfig(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, &out); !errors.Is(err, config.ErrHelp) {
		t.Fatalf("-h = %v", err)
	}
	for _, flag := range []string{"-listen", "-tls-listen", "-tls-cert", "-tls-key", "-realm", "-auth-secret", "-public-ip", "-relay-ports", "-allow-peer", "-deny-peer", "-user-quota", "-total-quota", "-max-bps", "-max-total-bps", "-relay-ip6", "-public-ip6", "-allocation-rate", "-allocation-burst", "-connections-per-address", "-shutdown-timeout", "-metrics", "-check", `(default "49152-65535")`, "TURND_<FLAG>"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("help lacks %s", flag)
		}
	}
	s := newSettings(io.Discard)
	env := map[string]string{"TURND_AUTH_SECRET": testSecret}
	if err := s.load([]string{"-config", "../../deploy/turnd.toml"}, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("deploy/turnd.toml: %v", err)
	}
}

// testMember is the participant the test credentials are minted for.
const testMember = "g_2"

// allocate opens one allocation on the relay with a REST credential signed by
// secret and returns the relayed socket (closed at the end of the test) or
// the error.
func allocate(t *testing.T, relayAddr, secret string) (net.PacketConn, error) {
	t.Helper()
	user, pass := relay.MintCredential([]byte(secret), testMember, time.Hour, time.Now())
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: relayAddr, STUNServerAddr: relayAddr, Conn: conn, Username: user, Password: pass, Realm: "openconsult"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := cl.Allocate()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { relayed.Close() })
	return relayed, nil
}

// relaysTo checks that the allocation relayed still carries a datagram
// to peer.
func relaysTo(t *testing.T, relayed, peer net.PacketConn) {
	t.Helper()
	if _, err := relayed.WriteTo([]byte("still relaying"), peer.LocalAddr()); err != nil {
		t.Fatalf("the allocation made before the reloads: %v", err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "still relaying" {
		t.Fatalf("the allocation made before the reloads relays nothing: %q, %v", buf[:n], err)
	}
}

func TestHangupReloadsCredentialsWithoutDroppingAllocations(t *testing.T) {
	const oldSecret, newSecret = "the-old-shared-secret-0001", "the-new-shared-secret-0002"
	file := filepath.Join(t.TempDir(), "turnd.toml")
	writeConfig := func(body string) {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(`auth-secret = "` + oldSecret + `"` + "\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncbuf.Buffer{}
	done := make(chan error, 1)
	// The allocations are still open at the stop: no grace period for them.
	args := []string{"-config", file, "-listen", "127.0.0.1:0", "-tls-listen", "off", "-metrics", "off", "-relay-ports", "40200-40300",
		"-allow-peer", "127.0.0.1", "-shutdown-timeout", "0s"}
	go func() { done <- run(ctx, args, func(string) string { return "" }, io.Discard, logs) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("turnd's log:\n%s", logs.String())
		}
	})
	waitLog := func(msg string, count int) (found map[string]any) {
		eventually.True(t, 10*time.Second, fmt.Sprintf("log line %q (%d)", msg, count), func() bool {
			seen := 0
			for line := range strings.Lines(logs.String()) {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
					if seen++; seen == count {
						found = m
						return true
					}
				}
			}
			return false
		})
		return found
	}
	relayAddr := waitLog("relay listening", 1)["udp_tcp"].(string)
	first, err := allocate(t, relayAddr, oldSecret)
	if err != nil {
		t.Fatalf("allocate with the configured secret: %v", err)
	}
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	writeConfig(`auth-secret = ["` + newSecret + `", "` + oldSecret + `"]` + "\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("relay credentials replaced", 1)
	relaysTo(t, first, peer) // its permission is asked with the old secret, still valid
	for _, secret := range []string{newSecret, oldSecret} {
		if _, err := allocate(t, relayAddr, secret); err != nil {
			t.Fatalf("during the rotation a credential signed by %q was refused: %v", secret[:13], err)
		}
	}

	writeConfig(`auth-secret = "short"` + "\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog("credential reload refused; the previous credentials stay in force", 1)
	if _, err := allocate(t, relayAddr, oldSecret); err != nil {
		t.Fatalf("a refused reload changed the credentials: %v", err)
	}

	writeConfig(`auth-secret = "` + newSecret + `"` + "\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog("relay credentials replaced", 2)
	if _, err := allocate(t, relayAddr, oldSecret); err == nil {
		t.Fatal("a retired secret still opens allocations")
	}
	// Its credential can ask nothing more of the relay now (operations.md:
	// the old secret goes once no credential signed by it is in use), but
	// what it opened still relays.
	relaysTo(t, first, peer)
	if strings.Contains(logs.String(), oldSecret) || strings.Contains(logs.String(), newSecret) {
		t.Fatal("the log names a secret")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stop: %v", err)
	}
}
