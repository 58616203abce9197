package relay

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v5"
)

// gateServer is the part of a Server the gate reads, without sockets.
func gateServer(t testing.TB, secrets ...[]byte) *Server {
	t.Helper()
	s := &Server{policy: &PeerPolicy{}, now: time.Now, log: slog.New(slog.DiscardHandler), metrics: newMetrics()}
	c, err := newCredentials(testRealm, secrets, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.creds.Store(c)
	return s
}

func TestGateAnswersRefusedPeersWith403(t *testing.T) {
	s := gateServer(t, testSecret)
	in := &inspector{s: s}
	user, pass := mint(testSecret, "g_gate")
	key := turn.GenerateAuthKey(user, testRealm, pass)
	internal := xorPeer{ip: netip.MustParseAddr("10.0.0.1"), port: 9}
	public := xorPeer{ip: netip.MustParseAddr("198.51.100.7"), port: 9}

	tests := []struct {
		name      string
		msg       *stun.Message
		forbidden bool
	}{
		{"CreatePermission to an internal peer", signed(t, stun.MethodCreatePermission, user, testRealm, pass, internal), true},
		{"ChannelBind to an internal peer", signed(t, stun.MethodChannelBind, user, testRealm, pass, channelNumber(0x4001), internal), true},
		{"one internal peer among public ones", signed(t, stun.MethodCreatePermission, user, testRealm, pass, public, internal), true},
		{"public peer", signed(t, stun.MethodCreatePermission, user, testRealm, pass, public), false},
		{"wrong password", signed(t, stun.MethodCreatePermission, user, testRealm, "wrong", internal), false},
		{"no integrity", stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest), internal), false},
		{"Allocate", signed(t, stun.MethodAllocate, user, testRealm, pass, requestedUDP), false},
		{"Binding", stun.MustBuild(stun.TransactionID, stun.BindingRequest), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := in.inspect(tt.msg.Raw)
			if (resp != nil) != tt.forbidden {
				t.Fatalf("answered %v, want %v", resp != nil, tt.forbidden)
			}
			if resp == nil {
				return
			}
			m := &stun.Message{Raw: resp}
			if err := m.Decode(); err != nil {
				t.Fatal(err)
			}
			var code stun.ErrorCodeAttribute
			if err := code.GetFrom(m); err != nil || code.Code != stun.CodeForbidden {
				t.Fatalf("error code %v (%v), want 403", code.Code, err)
			}
			if m.TransactionID != tt.msg.TransactionID || m.Type != stun.NewType(tt.msg.Type.Method, stun.ClassErrorResponse) {
				t.Fatalf("response %v does not answer %v", m, tt.msg)
			}
			if err := stun.MessageIntegrity(key).Check(m); err != nil {
				t.Fatalf("response integrity: %v", err)
			}
			if err := stun.Fingerprint.Check(m); err != nil {
				t.Fatalf("response fingerprint: %v", err)
			}
		})
	}
	cd := []byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4}
	if in.inspect(cd) != nil {
		t.Fatal("ChannelData answered")
	}
}

// With several secrets, the gate finds the one that signed a request and
// pion's AuthHandler, which sees only the username, gets its key.
func TestGateFindsTheSigningSecret(t *testing.T) {
	current, previous := []byte("current-secret-value"), []byte("previous-secret-value")
	s := gateServer(t, current, previous)
	user, pass := mint(previous, "g_rotating")
	if resp := (&inspector{s: s}).inspect(signed(t, stun.MethodAllocate, user, testRealm, pass, requestedUDP).Raw); resp != nil {
		t.Fatal("the gate answered an Allocate")
	}
	_, key, ok := s.authenticate(&turn.RequestAttributes{Username: user, Realm: testRealm})
	if !ok || string(key) != string(turn.GenerateAuthKey(user, testRealm, pass)) {
		t.Fatal("the AuthHandler did not return the previous secret's key")
	}
}

func FuzzGateInspect(f *testing.F) {
	user, pass := mint(testSecret, "g_fuzz")
	internal := xorPeer{ip: netip.MustParseAddr("10.0.0.1"), port: 9}
	mapped := xorPeer{ip: netip.MustParseAddr("127.0.0.1"), port: 9, family6: true}
	for _, m := range []*stun.Message{
		signed(f, stun.MethodCreatePermission, user, testRealm, pass, internal),
		signed(f, stun.MethodChannelBind, user, testRealm, pass, channelNumber(0x4000), mapped),
		signed(f, stun.MethodAllocate, user, testRealm, pass, requestedUDP),
		signed(f, stun.MethodAllocate, user, testRealm, pass, requestedTCP, family(0x02)),
		signed(f, stun.MethodAllocate, user, testRealm, pass, requestedUDP, lifetime(1)),
		signed(f, stun.MethodRefresh, user, testRealm, pass, lifetime(7200)),
		signed(f, stun.MethodConnect, user, testRealm, pass, internal),
		stun.MustBuild(stun.TransactionID, stun.BindingRequest),
	} {
		f.Add(m.Raw)
	}
	f.Add([]byte{0x40, 0x00, 0x00, 0x02, 1, 2, 0, 0})
	s := gateServer(f, testSecret, []byte("second-secret-value"))
	draining := gateServer(f, testSecret, []byte("second-secret-value"))
	draining.draining.Store(true)
	f.Fuzz(func(t *testing.T, b []byte) {
		for i, s := range []*Server{s, draining, s} {
			in := &inspector{s: s, stream: i == 2}
			resp := in.inspect(append([]byte(nil), b...))
			if resp == nil {
				continue
			}
			if !authenticatedRequest(b) {
				t.Fatalf("answered a frame that is no authenticated request: %x", b)
			}
			m := &stun.Message{Raw: resp}
			var code stun.ErrorCodeAttribute
			if m.Decode() != nil || code.GetFrom(m) != nil {
				t.Fatalf("the gate's answer is no error response: %x", resp)
			}
			switch {
			case code.Code == stun.CodeForbidden:
			case code.Code == stun.CodeInsufficientCapacity && s.Draining():
			case code.Code == stun.CodeAddrFamilyNotSupported:
			case code.Code == stun.CodeBadRequest && !in.stream:
			default:
				t.Fatalf("the gate answered %d (draining %v): %x", code.Code, s.Draining(), resp)
			}
		}
	})
}
