package relay

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/stun/v3"
)

// The gate reads every frame before pion/turn does, on the UDP socket and on
// each TCP or TLS connection, for three things pion/turn cannot do:
//
//   - Refuse a CreatePermission or ChannelBind to a peer the policy forbids
//     with 403 Forbidden (RFC 8656, 9.3 and 12.2). pion/turn's own refusal,
//     through its PermissionHandler, is an error response without an error
//     code for CreatePermission and a 401 for ChannelBind, which clients
//     take for a credential problem. The gate answers only authenticated
//     requests; anything else goes on to pion, which challenges it.
//   - Accept a REST credential signed by any configured secret. pion/turn's
//     AuthHandler returns one key for a username without seeing the
//     message, so with several secrets the gate finds the one under which
//     MESSAGE-INTEGRITY verifies and leaves it for the AuthHandler.
//   - Refuse every authenticated Allocate while the relay drains with 508
//     Insufficient Capacity. pion/turn's only refusal through its
//     QuotaHandler is 486, which tells a client to wait and try the same
//     relay again.
//
// ChannelData and Send indications, the relayed media, pass after a
// two-byte test.

var (
	errStop              = errors.New("stop")
	typeCreatePermission = stun.NewType(stun.MethodCreatePermission, stun.ClassRequest)
	typeChannelBind      = stun.NewType(stun.MethodChannelBind, stun.ClassRequest)
	typeAllocate         = stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	typeRefresh          = stun.NewType(stun.MethodRefresh, stun.ClassRequest)
	typeConnect          = stun.NewType(stun.MethodConnect, stun.ClassRequest)
)

// authenticatedRequest reports whether b may be a request that carries
// credentials: Allocate, Refresh, CreatePermission, ChannelBind, Connect
// or ConnectionBind.
func authenticatedRequest(b []byte) bool {
	return len(b) >= 20 && b[0] == 0 && (b[1] == 0x03 || b[1] == 0x04 || b[1] == 0x08 || b[1] == 0x09 || b[1] == 0x0a || b[1] == 0x0b)
}

// inspector is the gate of one read loop; its scratch message is reused
// from request to request, so it must not be shared between loops.
type inspector struct {
	s   *Server
	msg stun.Message
	// stream is set on TCP and TLS connections, where a client may ask
	// for a TCP allocation (RFC 6062).
	stream bool
}

// inspect returns the response to send when the gate answers b itself, and
// nil when b goes on to pion.
func (in *inspector) inspect(b []byte) []byte {
	if !authenticatedRequest(b) {
		return nil
	}
	creds := in.s.creds.Load()
	m := &in.msg
	m.Raw = append(m.Raw[:0], b...)
	if m.Decode() != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return nil
	}
	if m.Type == typeAllocate && in.s.draining.Load() {
		return in.refuseDraining(m, creds)
	}
	if m.Type == typeAllocate {
		if code, reason := in.refusedAllocation(m); code != 0 {
			return in.refuseSigned(m, creds, code, reason)
		}
	}
	if m.Type == typeAllocate || m.Type == typeRefresh {
		in.boundLifetime(b, m, creds)
	}
	class := ""
	if m.Type == typeCreatePermission || m.Type == typeChannelBind || m.Type == typeConnect {
		class = in.refusedPeer(m)
	}
	if class == "" && len(creds.secrets) < 2 {
		return nil
	}
	key, ok := creds.verify(m, in.s.now())
	if !ok || class == "" {
		return nil // pion refuses a bad credential and counts it
	}
	resp := errorResponse(m, stun.CodeForbidden, "Forbidden", key)
	if resp != nil {
		in.s.peerRefused(class, true)
	}
	return resp
}

// refuseDraining answers an authenticated Allocate while the relay drains.
// One whose credential fails goes on to pion, which refuses it as always;
// so does a client's first, unauthenticated Allocate, which pion
// challenges: clients (pion's among them) take any answer to that one for
// a challenge and look for its nonce.
func (in *inspector) refuseDraining(m *stun.Message, creds *credentials) []byte {
	key, ok := creds.verify(m, in.s.now())
	if !ok {
		return nil
	}
	resp := errorResponse(m, stun.CodeInsufficientCapacity, "Insufficient Capacity", key)
	if resp != nil {
		in.s.drainRefused()
	}
	return resp
}

// refusedAllocation returns the error an Allocate gets from the gate,
// or 0: a TCP allocation asked over UDP (RFC 6062, 5.1: 400), or an IPv6
// relayed address from a relay without IPv6 relaying (RFC 6156, 4.2: 440;
// pion would answer 508, which tells the client to try again later).
func (in *inspector) refusedAllocation(m *stun.Message) (stun.ErrorCode, string) {
	if v, err := m.Get(stun.AttrRequestedTransport); err == nil && len(v) == 4 && v[0] == protoTCP && !in.stream {
		return stun.CodeBadRequest, "Bad Request: TCP allocations need a TCP or TLS connection"
	}
	if v, err := m.Get(stun.AttrRequestedAddressFamily); err == nil && len(v) == 4 && v[0] == familyIPv6 && !in.s.cfg.RelayBindIP6.IsValid() {
		return stun.CodeAddrFamilyNotSupported, "Address Family not Supported"
	}
	return 0, ""
}

// IANA protocol number of TCP in REQUESTED-TRANSPORT, and the IPv6 value
// of REQUESTED-ADDRESS-FAMILY.
const (
	protoTCP   = 6
	familyIPv6 = 0x02
)

// refuseSigned answers an authenticated request with an error, signed.
// One whose credential fails goes on to pion, which refuses it as always.
func (in *inspector) refuseSigned(m *stun.Message, creds *credentials, code stun.ErrorCode, reason string) []byte {
	key, ok := creds.verify(m, in.s.now())
	if !ok {
		return nil
	}
	return errorResponse(m, code, reason, key)
}

// errorResponse builds the error response to m, signed with key unless it
// is nil.
func errorResponse(m *stun.Message, code stun.ErrorCode, reason string, key []byte) []byte {
	setters := []stun.Setter{stun.NewTransactionIDSetter(m.TransactionID),
		stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		stun.ErrorCodeAttribute{Code: code, Reason: []byte(reason)}}
	if key != nil {
		setters = append(setters, stun.MessageIntegrity(key))
	}
	resp, err := stun.Build(append(setters, stun.Fingerprint)...)
	if err != nil {
		return nil
	}
	return resp.Raw
}

// refusedPeer returns the class of the first XOR-PEER-ADDRESS the policy
// refuses, or "". One refused address refuses the whole request, as RFC
// 8656 asks; pion would otherwise install the addresses before it.
func (in *inspector) refusedPeer(m *stun.Message) string {
	class := ""
	_ = m.ForEach(stun.AttrXORPeerAddress, func(m *stun.Message) error {
		var peer stun.XORMappedAddress
		if err := peer.GetFromAs(m, stun.AttrXORPeerAddress); err != nil {
			return nil // malformed: pion answers it
		}
		ip, ok := netip.AddrFromSlice(peer.IP)
		if !ok {
			class = ClassInvalid
			return errStop
		}
		if allowed, c := in.s.policy.Check(ip); !allowed {
			class = c
			return errStop
		}
		return nil
	})
	return class
}

// gatedPacketConn is the UDP socket of the TURN port as pion/turn sees it.
type gatedPacketConn struct {
	net.PacketConn
	in inspector
	// channels is the listener's channel fast path. With reader set, the
	// gate reads the socket itself and forwards ChannelData; a polled
	// listener forwards it on its loop and queues the rest for the gate.
	channels *channels
	reader   udpSocket
	stopped  func() // the read loop has ended
	once     sync.Once
}

func (c *gatedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.read(p)
		if err != nil {
			c.once.Do(c.stopped)
			return n, addr, err
		}
		if addr == nil {
			continue // relayed on the channel fast path
		}
		if resp := c.in.inspect(p[:n]); resp != nil {
			_, _ = c.PacketConn.WriteTo(resp, addr) // lost like any UDP reply; the client retransmits
			continue
		}
		return n, addr, nil
	}
}

// read returns the next datagram, or a nil address for one the channel
// fast path has relayed.
func (c *gatedPacketConn) read(p []byte) (int, net.Addr, error) {
	if c.reader == nil {
		return c.PacketConn.ReadFrom(p)
	}
	n, from, err := c.reader.ReadFromUDPAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	if c.channels.forward(p[:n], from) {
		return n, nil, nil
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}
