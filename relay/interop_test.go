package relay

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCoturnClientInterop drives coturn's own test client through the relay
// with a credential derived from the shared secret: over UDP and TCP, with
// IPv4 and IPv6 relayed addresses (RFC 6156, -x), and with TCP allocations
// (RFC 6062, -T: the clients Connect to each other's relayed addresses and
// exchange data over ConnectionBind connections). The credentials and the
// relaying work with a standard TURN client, not only with pion's.
func TestCoturnClientInterop(t *testing.T) {
	uclient, err := exec.LookPath("turnutils_uclient")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("turnutils_uclient not found; install Debian's coturn package")
		}
		t.Skip("turnutils_uclient not found; install Debian's coturn package to run the interop test")
	}
	ipv6 := ipv6Loopback(t)
	tests := []struct {
		name string
		args []string
		ipv6 bool
	}{
		{"udp", []string{"-y", "-c", "-X"}, false},
		{"tcp", []string{"-y", "-c", "-X", "-t"}, false},
		{"udp, IPv6 relayed addresses", []string{"-y", "-c", "-x"}, true},
		{"tcp allocations", []string{"-T"}, false},
		{"tcp allocations, IPv6 relayed addresses", []string{"-T", "-x"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ipv6 && !ipv6 {
				t.Skip("no IPv6 loopback address on this host")
			}
			s := startRelay(t, func(c *Config) {
				c.Secrets = [][]byte{[]byte("an-interop-secret-value")}
				if tt.ipv6 {
					c.RelayBindIP6 = netip.IPv6Loopback()
					c.Policy.Allow = append(c.Policy.Allow, netip.MustParsePrefix("::1/128"))
				}
			})
			_, port, _ := net.SplitHostPort(s.Addr().String())
			args := append([]string{"-n", "20", "-u", "g_interop", "-W", "an-interop-secret-value", "-p", port}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, uclient, append(args, "127.0.0.1")...).CombinedOutput()
			if err != nil {
				t.Fatalf("turnutils_uclient: %v\n%s", err, out)
			}
			text := string(out)
			if !strings.Contains(text, "tot_recv_msgs=40") || !strings.Contains(text, "Total lost packets 0 ") {
				t.Fatalf("coturn's client did not get every message back:\n%s", text)
			}
		})
	}
}

// ipv6Loopback reports whether ::1 can be bound here; containers may run
// without IPv6.
func ipv6Loopback(t *testing.T) bool {
	t.Helper()
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Logf("no IPv6 loopback: %v", err)
		}
		return false
	}
	c.Close()
	return true
}
