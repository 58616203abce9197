package relay

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCoturnClientInterop drives coturn's own test client through the relay
// with a credential derived from the shared secret, over UDP and TCP: the
// credentials and the relaying work with a standard TURN client, not only
// with pion's.
func TestCoturnClientInterop(t *testing.T) {
	uclient, err := exec.LookPath("turnutils_uclient")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("turnutils_uclient not found; install Debian's coturn package")
		}
		t.Skip("turnutils_uclient not found; install Debian's coturn package to run the interop test")
	}
	for _, tcp := range []bool{false, true} {
		name := map[bool]string{false: "udp", true: "tcp"}[tcp]
		t.Run(name, func(t *testing.T) {
			s := startRelay(t, func(c *Config) { c.Secrets = [][]byte{[]byte("an-interop-secret-value")} })
			_, port, _ := strings.Cut(s.Addr().String(), ":")
			args := []string{"-y", "-c", "-n", "20", "-u", "g_interop", "-W", "an-interop-secret-value", "-p", port, "-X"}
			if tcp {
				args = append(args, "-t")
			}
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
