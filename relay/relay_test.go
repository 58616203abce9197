package relay

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
)

// readPaths are the two ways relay sockets are read: by the loops of a
// udppoll.Set (Linux) and by pion/turn's goroutine per socket (elsewhere).
var readPaths = []struct {
	name        string
	socketReads bool
}{{"event loops", false}, {"goroutine per socket", true}}

func TestRelaysBothWaysOverUDPTCPAndTLS(t *testing.T) {
	for _, path := range readPaths {
		for _, network := range []string{"udp", "tcp", "tls"} {
			t.Run(path.name+"/"+network, func(t *testing.T) { relayBothWays(t, network, path.socketReads) })
		}
	}
}

func relayBothWays(t *testing.T, network string, socketReads bool) {
	tr := startRelay(t, func(c *Config) { c.TLSListen, c.TLS, c.socketReads = "127.0.0.1:0", selfSigned(t), socketReads })
	user, pass := mint(testSecret, "g_transport")
	cl := dial(t, tr, network, user, pass)
	relayed := cl.allocate(t)
	got := relayed.LocalAddr().(*net.UDPAddr)
	if !got.IP.Equal(net.IPv4(127, 0, 0, 1)) || got.Port < 20000 || got.Port > 59999 {
		t.Fatalf("relayed address %s is not 127.0.0.1 in the port range", got)
	}
	if tr.Allocations() != 1 || testutil.ToFloat64(tr.metrics.allocations) != 1 {
		t.Fatalf("allocations: %d, gauge %v; want 1", tr.Allocations(), testutil.ToFloat64(tr.metrics.allocations))
	}

	// The first datagrams travel in Send and Data indications while
	// the client binds a channel; go on until ChannelData has
	// carried datagrams both ways.
	peer := newPeer(t)
	sent, received, n := 0, 0, 0
	for ; cl.conn.sentChannelData.Load() == 0 || cl.conn.readChannelData.Load() == 0; n++ {
		if n == 300 {
			t.Fatal("no ChannelData either way after 300 exchanges")
		}
		msg, reply := fmt.Appendf(nil, "datagram %d from the client", n), fmt.Appendf(nil, "reply %d from the peer", n)
		exchange(t, relayed, peer, msg, reply)
		sent, received = sent+len(msg), received+len(reply)
		time.Sleep(2 * time.Millisecond)
	}
	// pion's client over UDP rides the channel fast path; over TCP
	// and TLS pion relays the ChannelData itself.
	if want := map[string]int{"udp": 1}[network]; tr.routes() != want {
		t.Errorf("%d fast-path routes over %s, want %d", tr.routes(), network, want)
	}
	m := tr.metrics
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"bytes to peer", testutil.ToFloat64(m.toPeerBytes), float64(sent)},
		{"bytes from peer", testutil.ToFloat64(m.fromPeerBytes), float64(received)},
		{"packets to peer", testutil.ToFloat64(m.toPeerPackets), float64(n)},
		{"packets from peer", testutil.ToFloat64(m.fromPeerPackets), float64(n)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	if err := relayed.Close(); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the allocation to be released", func() bool { return tr.Allocations() == 0 })
	if g := testutil.ToFloat64(tr.metrics.allocations); g != 0 {
		t.Fatalf("allocations gauge %v after release", g)
	}
}

func TestRelayedAddressIsThePublicIP(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.PublicIP = netip.MustParseAddr("198.51.100.7") })
	user, pass := mint(testSecret, "g_nat")
	relayed := dial(t, tr, "udp", user, pass).allocate(t)
	if got := relayed.LocalAddr().(*net.UDPAddr); !got.IP.Equal(net.IPv4(198, 51, 100, 7)) {
		t.Fatalf("relayed address %s, want the public 198.51.100.7", got)
	}
}

func TestListensOnIPv6AndIPv4WithOnePort(t *testing.T) {
	probe, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	probe.Close()
	tr := startRelay(t, func(c *Config) { c.Listen = "[::]:0" })
	port := tr.Addr().(*net.UDPAddr).Port
	user, pass := mint(testSecret, "g_v6")
	for _, client := range []string{"[::1]:0", "127.0.0.1:0"} {
		t.Run(client, func(t *testing.T) {
			conn, err := net.ListenPacket("udp", client)
			if err != nil {
				t.Fatal(err)
			}
			host, _, _ := net.SplitHostPort(client)
			server := &net.UDPAddr{IP: net.ParseIP(host), Port: port}
			raw := newRawClient(t, conn, server, user, pass)
			resp := raw.request(stun.MethodAllocate, requestedUDP)
			if code := errorCode(resp); code != 0 {
				t.Fatalf("allocate over %s: error %d", client, code)
			}
			var relayed stun.XORMappedAddress
			if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil || relayed.IP.To4() == nil {
				t.Fatalf("relayed address %v (%v), want IPv4", relayed, err)
			}
			tcp, err := net.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
			if err != nil {
				t.Fatalf("TCP on the same port: %v", err)
			}
			tcp.Close()
		})
	}
}

func TestCredentialsRefused(t *testing.T) {
	clock := newFakeClock()
	tr := startRelay(t, func(c *Config) {
		c.Now = clock.Now
		c.StaticUsers = map[string]string{"kiosk-3": "a-long-kiosk-password"}
	})
	now := clock.Now()
	good, _ := MintCredential(testSecret, "patient-7f3a", time.Hour, now)
	otherUser, otherPass := MintCredential([]byte("a-secret-the-relay-lacks"), "patient-7f3a", time.Hour, now)
	expiredUser, expiredPass := MintCredential(testSecret, "patient-7f3a", time.Hour, now.Add(-61*time.Minute))
	edgeUser, edgePass := MintCredential(testSecret, "patient-7f3a", 0, now)
	tests := []struct {
		name, user, pass, reason string
	}{
		{"expired an hour ago", expiredUser, expiredPass, reasonExpired},
		{"expiring this second", edgeUser, edgePass, reasonExpired},
		{"wrong password", good, "d3JvbmcgcGFzc3dvcmQ=", reasonIntegrity},
		{"signed by an unknown secret", otherUser, otherPass, reasonIntegrity},
		{"not a REST username", "alice", "a-long-password-1", reasonMalformed},
		{"static user, wrong password", "kiosk-3", "not-the-kiosk-password", reasonIntegrity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tr.counter(tr.metrics.authFailures, tt.reason)
			_, err := dial(t, tr, "udp", tt.user, tt.pass).Allocate()
			if code := turnCode(err); code != 401 {
				t.Fatalf("Allocate: %v (code %d), want 401", err, code)
			}
			if got := tr.counter(tr.metrics.authFailures, tt.reason) - before; got != 1 {
				t.Fatalf("%s refusals counted %v times, want 1", tt.reason, got)
			}
		})
	}
	t.Run("static user", func(t *testing.T) {
		dial(t, tr, "udp", "kiosk-3", "a-long-kiosk-password").allocate(t)
	})

	logs := tr.log.String()
	for _, leak := range []string{"patient-7f3a", "kiosk-3", string(testSecret), "d3JvbmcgcGFzc3dvcmQ="} {
		if strings.Contains(logs, leak) {
			t.Errorf("the log contains %q:\n%s", leak, logs)
		}
	}
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, `"msg":"relay listening"`) && strings.Contains(line, "127.0.0.1") {
			t.Errorf("a log line names a client address: %s", line)
		}
	}
	if !strings.Contains(logs, `"reason":"expired"`) {
		t.Errorf("the log lacks the refusal reason:\n%s", logs)
	}
}

func TestSecretRotation(t *testing.T) {
	oldSecret, newSecret := []byte("the-old-secret-being-retired"), []byte("the-new-secret-taking-over")
	oldUser, oldPass := mint(oldSecret, "g_rotation")
	newUser, newPass := mint(newSecret, "g_rotation")
	tr := startRelay(t, func(c *Config) { c.Secrets = [][]byte{newSecret, oldSecret} })

	for _, cred := range []struct{ name, user, pass string }{{"old", oldUser, oldPass}, {"new", newUser, newPass}} {
		relayed := dial(t, tr, "udp", cred.user, cred.pass).allocate(t)
		exchange(t, relayed, newPeer(t), []byte("during rotation"), []byte("still relayed")) // refreshes and permissions use the same secret
	}

	if err := tr.SetCredentials([][]byte{newSecret}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, tr, "udp", oldUser, oldPass).Allocate(); turnCode(err) != 401 {
		t.Fatalf("credential of a dropped secret: %v, want 401", err)
	}
	dial(t, tr, "udp", newUser, newPass).allocate(t)

	fresh := startRelay(t, func(c *Config) { c.Secrets = [][]byte{newSecret} })
	if _, err := dial(t, fresh, "udp", oldUser, oldPass).Allocate(); turnCode(err) != 401 {
		t.Fatalf("a relay started without the old secret accepted its credential: %v", err)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Listen = "127.0.0.1:0"
		c.RelayBindIP = netip.MustParseAddr("127.0.0.1")
		c.Secrets = [][]byte{testSecret}
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no credentials", func(c *Config) { c.Secrets = nil }, "no credentials"},
		{"empty secret", func(c *Config) { c.Secrets = [][]byte{{}} }, "empty"},
		{"no relay address", func(c *Config) { c.RelayBindIP = netip.Addr{} }, "no relay bind address"},
		{"IPv6 relay address", func(c *Config) { c.RelayBindIP = netip.MustParseAddr("::1") }, "not IPv4"},
		{"wildcard relay address alone", func(c *Config) { c.RelayBindIP = netip.MustParseAddr("0.0.0.0") }, "needs a public address"},
		{"IPv6 public address", func(c *Config) { c.PublicIP = netip.MustParseAddr("2001:db8::1") }, "public address"},
		{"empty port range", func(c *Config) { c.PortMin, c.PortMax = 50000, 40000 }, "port range"},
		{"no total quota", func(c *Config) { c.TotalQuota = 0 }, "total quota"},
		{"negative user quota", func(c *Config) { c.UserQuota = -1 }, "user quota"},
		{"negative cap", func(c *Config) { c.MaxBPS = -1 }, "bandwidth"},
		{"TLS without certificate", func(c *Config) { c.TLSListen = "127.0.0.1:0" }, "without a certificate"},
		{"invalid peer prefix", func(c *Config) { c.Policy.Allow = []netip.Prefix{{}} }, "invalid peer prefix"},
		{"no realm", func(c *Config) { c.Realm = "" }, "no realm"},
		{"bad listen address", func(c *Config) { c.Listen = "no-port" }, "listen address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			if err := c.Validate(); err == nil {
				t.Errorf("Validate accepted it")
			}
			s, err := New(c)
			if err == nil {
				s.Close()
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		if err := valid().Validate(); err != nil {
			t.Fatal(err)
		}
		s, err := New(valid())
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}
