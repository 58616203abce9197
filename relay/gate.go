package relay

import (
	"net"
	"net/netip"

	"github.com/pion/stun/v3"
)

// permissionGate wraps the relay's UDP socket. A CreatePermission or
// ChannelBind request naming a peer the policy refuses is answered here
// with 403 Forbidden, as RFC 8656 asks, and never reaches pion/turn, whose
// own refusal is an error response without an error code. Everything else,
// ChannelData included, passes after a two-byte check.
type permissionGate struct {
	net.PacketConn
	s *Server
}

func (g *permissionGate) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.PacketConn.ReadFrom(p)
		if err != nil || !g.refused(p[:n], addr) {
			return n, addr, err
		}
	}
}

var (
	createPermission = stun.NewType(stun.MethodCreatePermission, stun.ClassRequest)
	channelBind      = stun.NewType(stun.MethodChannelBind, stun.ClassRequest)
)

// refused answers and reports true when b is an authenticated permission
// request for a refused peer.
func (g *permissionGate) refused(b []byte, from net.Addr) bool {
	// A STUN header starts with two zero bits; ChannelData does not.
	if len(b) < 20 || b[0] != 0 || (b[1] != 0x08 && b[1] != 0x09) || !stun.IsMessage(b) {
		return false
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil || (m.Type != createPermission && m.Type != channelBind) {
		return false
	}
	class := ""
	_ = m.ForEach(stun.AttrXORPeerAddress, func(m *stun.Message) error {
		var peer stun.XORMappedAddress
		if err := peer.GetFromAs(m, stun.AttrXORPeerAddress); err != nil {
			return nil
		}
		ip, ok := netip.AddrFromSlice(peer.IP)
		if !ok {
			class = "invalid"
			return nil
		}
		if allowed, c := g.s.cfg.Policy.Check(ip); !allowed && class == "" {
			class = c
		}
		return nil
	})
	if class == "" {
		return false
	}
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return false // unauthenticated: pion answers 401
	}
	key, ok := g.s.authenticate(user.String(), realm.String(), from)
	if !ok || stun.MessageIntegrity(key).Check(m) != nil {
		return false // pion refuses the credential
	}
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		stun.ErrorCodeAttribute{Code: stun.CodeForbidden, Reason: []byte("Forbidden")}, stun.MessageIntegrity(key), stun.Fingerprint)
	if err != nil {
		return false
	}
	g.s.metrics.peerRefusals.WithLabelValues(class).Inc()
	g.s.cfg.Log.Info("relay peer refused", "class", class)
	_, _ = g.PacketConn.WriteTo(resp.Raw, from)
	return true
}
