package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var secret = []byte("current-secret")

func startRelay(t *testing.T, mutate func(*Config)) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Realm: "consult.example", Listen: "127.0.0.1:0", RelayBindIP: netip.MustParseAddr("127.0.0.1"),
		PortMin: 40000, PortMax: 49999, Secrets: [][]byte{secret},
		Policy:    PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		UserQuota: 10, TotalQuota: 100, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: reg,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, reg
}

// client opens a pion TURN client over UDP or TCP to the relay.
func client(t *testing.T, s *Server, network, user, pass string) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	case "tls":
		c, err := tls.Dial("tcp", s.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true}) // a self-signed test certificate
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	}
	cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: s.Addr().String(), STUNServerAddr: s.Addr().String(),
		Conn: conn, Username: user, Password: pass, Realm: "consult.example", RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); conn.Close() })
	return cl
}

func mint(t *testing.T, sec []byte, ttl time.Duration) (string, string) {
	t.Helper()
	return MintCredential(sec, "g_test", ttl, time.Now())
}

func peer(t *testing.T) net.PacketConn {
	t.Helper()
	p, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// roundTrip relays a datagram to the peer and the peer's reply back.
func roundTrip(t *testing.T, relayConn net.PacketConn, p net.PacketConn) {
	t.Helper()
	if _, err := relayConn.WriteTo([]byte("ping from client"), p.LocalAddr()); err != nil {
		t.Fatalf("relay to peer: %v", err)
	}
	buf := make([]byte, 1500)
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := p.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping from client" {
		t.Fatalf("peer received %q, %v", buf[:n], err)
	}
	if from.String() != relayConn.LocalAddr().String() {
		t.Fatalf("peer saw %s, relayed address is %s", from, relayConn.LocalAddr())
	}
	if _, err := p.WriteTo([]byte("pong from peer"), from); err != nil {
		t.Fatal(err)
	}
	relayConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err = relayConn.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "pong from peer" {
		t.Fatalf("client received %q, %v", buf[:n], err)
	}
}

func TestRelaysUDPBothWaysOverUDPTCPAndTLS(t *testing.T) {
	for _, network := range []string{"udp", "tcp", "tls"} {
		t.Run(network, func(t *testing.T) {
			s, reg := startRelay(t, func(c *Config) {
				c.TLSListen, c.TLS = "127.0.0.1:0", testTLS(t)
			})
			user, pass := mint(t, secret, time.Hour)
			cl := client(t, s, network, user, pass)
			relayConn, err := cl.Allocate()
			if err != nil {
				t.Fatalf("allocate: %v", err)
			}
			defer relayConn.Close()
			p := peer(t)
			roundTrip(t, relayConn, p)
			roundTrip(t, relayConn, p) // the second time over the bound channel
			// The relay counts after its write returns, which may be after
			// the peer already read the packet.
			deadline := time.Now().Add(2 * time.Second)
			for testutil.ToFloat64(s.metrics.packets.WithLabelValues("to_peer")) < 2 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := testutil.ToFloat64(s.metrics.packets.WithLabelValues("to_peer")); got < 2 {
				t.Fatalf("to_peer packets = %v", got)
			}
			if n, _ := testutil.GatherAndCount(reg, "turn_allocations"); n != 1 {
				t.Fatalf("allocations metric missing")
			}
		})
	}
}

func TestCredentialsRefused(t *testing.T) {
	s, _ := startRelay(t, nil)
	expiredUser, expiredPass := MintCredential(secret, "g_old", time.Hour, time.Now().Add(-2*time.Hour))
	goodUser, _ := mint(t, secret, time.Hour)
	tests := []struct{ name, user, pass string }{
		{"expired", expiredUser, expiredPass},
		{"wrong password", goodUser, "d3JvbmcgcGFzc3dvcmQ="},
		{"other secret", func() string { u, _ := mint(t, []byte("unknown-secret"), time.Hour); return u }(), func() string { _, p := mint(t, []byte("unknown-secret"), time.Hour); return p }()},
		{"malformed username", "alice", "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := client(t, s, "udp", tt.user, tt.pass)
			if conn, err := cl.Allocate(); err == nil {
				conn.Close()
				t.Fatal("allocation with a bad credential succeeded")
			}
		})
	}
	if got := testutil.ToFloat64(s.metrics.authFailures.WithLabelValues("expired")); got < 1 {
		t.Fatalf("expired refusals counted %v", got)
	}
}

func TestSecretRotation(t *testing.T) {
	old := []byte("old-secret")
	s, _ := startRelay(t, func(c *Config) { c.Secrets = [][]byte{secret, old} })
	user, pass := mint(t, old, time.Hour)
	relayConn, err := client(t, s, "udp", user, pass).Allocate()
	if err != nil {
		t.Fatalf("credential of the previous secret refused during rotation: %v", err)
	}
	relayConn.Close()
	s2, _ := startRelay(t, nil) // the old secret removed
	if conn, err := client(t, s2, "udp", user, pass).Allocate(); err == nil {
		conn.Close()
		t.Fatal("credential of a removed secret accepted")
	}
}

func TestDeniedPeersAreRefusedUntilAllowed(t *testing.T) {
	s, _ := startRelay(t, func(c *Config) { c.Policy = PeerPolicy{} })
	user, pass := mint(t, secret, time.Hour)
	relayConn, err := client(t, s, "udp", user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayConn.Close()
	for _, addr := range []string{"127.0.0.1:9", "[::1]:9", "[::ffff:127.0.0.1]:9", "0.0.0.0:9", "169.254.169.254:80", "10.1.2.3:9", "192.168.1.1:9"} {
		ua, _ := net.ResolveUDPAddr("udp", addr)
		if _, err := relayConn.WriteTo([]byte("x"), ua); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("relaying to %s: %v, want 403 Forbidden", addr, err)
		}
	}
	if got := testutil.ToFloat64(s.metrics.peerRefusals.WithLabelValues("loopback")); got < 1 {
		t.Fatalf("loopback refusals counted %v", got)
	}
	// The same peer works once the operator opens its address.
	s2, _ := startRelay(t, nil)
	relay2, err := client(t, s2, "udp", user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay2.Close()
	roundTrip(t, relay2, peer(t))
}

func TestQuotas(t *testing.T) {
	tests := []struct {
		name        string
		user, total int
	}{{"per user", 1, 10}, {"in total", 10, 1}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := startRelay(t, func(c *Config) { c.UserQuota, c.TotalQuota = tt.user, tt.total })
			user, pass := mint(t, secret, time.Hour)
			first, err := client(t, s, "udp", user, pass).Allocate()
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			_, err = client(t, s, "udp", user, pass).Allocate()
			if err == nil || !strings.Contains(err.Error(), "486") {
				t.Fatalf("second allocation: %v, want 486", err)
			}
		})
	}
}

func TestBandwidthCapDropsExcess(t *testing.T) {
	s, _ := startRelay(t, func(c *Config) { c.MaxBPS = 80_000 }) // 10 kB/s
	user, pass := mint(t, secret, time.Hour)
	relayConn, err := client(t, s, "udp", user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayConn.Close()
	p := peer(t)
	payload := bytes.Repeat([]byte("x"), 1000)
	for range 50 { // 50 kB at once: five times the one-second burst
		relayConn.WriteTo(payload, p.LocalAddr())
	}
	deadline := time.Now().Add(3 * time.Second)
	for testutil.ToFloat64(s.metrics.dropped) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if testutil.ToFloat64(s.metrics.dropped) == 0 {
		t.Fatal("nothing dropped over the cap")
	}
}

func testTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "turn.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"turn.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
