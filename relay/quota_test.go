package relay

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/openconsult/openconsult/internal/eventually"
)

func TestQuotas(t *testing.T) {
	tests := []struct {
		name             string
		user, total      int
		sameUser         bool // the second allocation uses the first's username
		refusedBy        string
		otherUserAllowed bool
	}{
		{name: "per user", user: 1, total: 10, sameUser: true, refusedBy: "user", otherUserAllowed: true},
		{name: "in total", user: 10, total: 1, sameUser: false, refusedBy: "total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := startRelay(t, func(c *Config) { c.UserQuota, c.TotalQuota = tt.user, tt.total })
			alice, alicePass := mint(testSecret, "g_alice")
			bob, bobPass := mint(testSecret, "g_bob")
			first := dial(t, tr, "udp", alice, alicePass).allocate(t)

			user, pass := bob, bobPass
			if tt.sameUser {
				user, pass = alice, alicePass
			}
			if _, err := dial(t, tr, "udp", user, pass).Allocate(); turnCode(err) != 486 {
				t.Fatalf("allocation over quota: %v, want 486 Allocation Quota Reached", err)
			}
			if got := tr.counter(tr.metrics.quotaRefusals, tt.refusedBy); got != 1 {
				t.Fatalf("%s quota refusals counted %v, want 1", tt.refusedBy, got)
			}
			if tt.otherUserAllowed {
				dial(t, tr, "udp", bob, bobPass).allocate(t)
			}

			// Releasing the first allocation frees its slot.
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			eventually.True(t, 5*time.Second, "the release", func() bool { return tr.Allocations() == boolInt(tt.otherUserAllowed) })
			dial(t, tr, "udp", user, pass).allocate(t)
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pion/turn asks the quota before it creates an allocation, and a creation
// can fail after that; a failed Allocate must not keep its slot, or a
// client could fill the relay with requests that fail.
func TestFailedAllocateDoesNotHoldQuota(t *testing.T) {
	// The range's one port is taken, so every creation fails.
	blocker, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(blocker.LocalAddr().(*net.UDPAddr).Port)
	tr := startRelay(t, func(c *Config) { c.TotalQuota, c.PortMin, c.PortMax = 1, port, port })
	user, pass := mint(testSecret, "g_zero")
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raw := newRawClient(t, conn, tr.Addr(), user, pass)
	for range 3 {
		if code := errorCode(raw.request(stun.MethodAllocate, requestedUDP)); code != 508 {
			t.Fatalf("allocate without a free port: code %d, want pion's 508", code)
		}
	}
	blocker.Close()
	dial(t, tr, "udp", user, pass).allocate(t)
	if got := tr.counter(tr.metrics.quotaRefusals, "total"); got != 0 {
		t.Fatalf("%v allocations refused by a quota that failed requests filled", got)
	}
}
