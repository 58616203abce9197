package relay

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
)

func TestGateRefusesAllocateWhileDraining(t *testing.T) {
	s := gateServer(t, testSecret)
	s.draining.Store(true)
	in := &inspector{s: s}
	user, pass := mint(testSecret, "g_drain")
	key := turn.GenerateAuthKey(user, testRealm, pass)
	tests := []struct {
		name   string
		msg    *stun.Message
		code   int  // 0: passed on to pion
		signed bool // the answer carries MESSAGE-INTEGRITY
		// A request without a valid credential goes on to pion, which
		// challenges or refuses it as always.
	}{
		{"authenticated Allocate", signed(t, stun.MethodAllocate, user, testRealm, pass, requestedUDP), 508, true},
		{"first Allocate, without credentials", stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP), 0, false},
		{"Allocate with a wrong password", signed(t, stun.MethodAllocate, user, testRealm, "wrong", requestedUDP), 0, false},
		{"Refresh", signed(t, stun.MethodRefresh, user, testRealm, pass, lifetime(600)), 0, false},
		{"CreatePermission", signed(t, stun.MethodCreatePermission, user, testRealm, pass, xorPeer{ip: netip.MustParseAddr("198.51.100.7"), port: 9}), 0, false},
		{"Binding", stun.MustBuild(stun.TransactionID, stun.BindingRequest), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := in.inspect(tt.msg.Raw)
			if tt.code == 0 {
				if resp != nil {
					t.Fatal("the gate answered a request that must reach pion while draining")
				}
				return
			}
			m := &stun.Message{Raw: resp}
			if resp == nil || m.Decode() != nil {
				t.Fatal("no answer")
			}
			if code := errorCode(m); code != tt.code || m.TransactionID != tt.msg.TransactionID {
				t.Fatalf("answer %v with code %d, want %d to the request", m, code, tt.code)
			}
			if got := m.Contains(stun.AttrMessageIntegrity); got != tt.signed {
				t.Fatalf("signed %v, want %v", got, tt.signed)
			}
			if tt.signed {
				if err := stun.MessageIntegrity(key).Check(m); err != nil {
					t.Fatalf("integrity: %v", err)
				}
			}
		})
	}
}

// Shutdown refuses new allocations with 508, keeps relaying the open ones
// and returns once the last one ends.
func TestShutdownDrainsAllocations(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			tr := startRelay(t, nil)
			user, pass := mint(testSecret, "g_in_call")
			relayed := dial(t, tr, network, user, pass).allocate(t)
			peer := newPeer(t)
			exchange(t, relayed, peer, []byte("before the drain"), []byte("relayed before the drain"))

			shut := make(chan error, 1)
			go func() { shut <- tr.Shutdown(context.Background()) }()
			eventually.True(t, 5*time.Second, "the drain", tr.Draining)

			newcomer, newPass := mint(testSecret, "g_newcomer")
			if _, err := dial(t, tr, network, newcomer, newPass).Allocate(); turnCode(err) != 508 {
				t.Fatalf("allocation while draining: %v, want 508 Insufficient Capacity", err)
			}
			if got := testutil.ToFloat64(tr.metrics.drainRefusals); got < 1 {
				t.Fatalf("drain refusals counted %v", got)
			}
			exchange(t, relayed, peer, []byte("during the drain"), []byte("relayed during the drain"))
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned %v with an allocation open", err)
			default:
			}

			if err := relayed.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-shut:
				if err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Shutdown did not return after the last allocation ended")
			}
		})
	}
}

func TestShutdownClosesOpenAllocationsWhenItsContextEnds(t *testing.T) {
	tr := startRelay(t, nil)
	user, pass := mint(testSecret, "g_long")
	dial(t, tr, "udp", user, pass).allocate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := tr.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	if n := tr.Allocations(); n != 0 {
		t.Fatalf("%d allocations after Shutdown", n)
	}
}
