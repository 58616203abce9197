// Package relay is the TURN relay an institution runs inside its own
// firewall so that patients on restrictive networks still reach a consult.
// It is built on pion/turn v5 and owns everything around it: the UDP, TCP
// and TLS listeners (several listen addresses), time-limited credentials
// in the TURN REST format, the peer policy that keeps the relay out of the
// institution's own network, allocation quotas, bandwidth caps per
// allocation and for the whole relay, and Prometheus metrics. It relays
// over IPv4 and, with [Config.RelayBindIP6], IPv6 (RFC 6156), and offers
// TCP allocations (RFC 6062).
//
// # Running a relay
//
//	cfg := relay.DefaultConfig()
//	cfg.RelayBindIP = netip.MustParseAddr("192.0.2.10")
//	cfg.Secrets = [][]byte{secret}
//	srv, err := relay.New(cfg)
//	if err != nil {
//		return err
//	}
//	defer srv.Close()
//
// The signal server hands each participant a credential made by
// [MintCredential] with the same secret. coturn with use-auth-secret and
// static-auth-secret accepts the same credentials, and this relay accepts
// coturn's. Every configured secret is accepted, and
// [Server.SetCredentials] replaces them without a restart, so a rotation
// drops no consult. [Config.Validate] checks a configuration without
// opening anything; [ParseUsersFile] reads static long-term users.
//
// # Peer policy
//
// An allocation may reach only addresses [PeerPolicy.Check] allows:
// loopback, private, CGNAT, link-local (cloud metadata included),
// multicast, broadcast, reserved and unspecified addresses, IPv6
// unique-local ones, and their IPv4-mapped and NAT64, 6to4 or Teredo forms
// are refused unless the operator allows a range. A CreatePermission or
// ChannelBind naming a refused peer gets 403 Forbidden, and the relay
// sockets themselves refuse to send to one, so a Send indication or
// ChannelData never reaches it either.
//
// # What clients see
//
//   - A malformed, expired or unknown username, or a wrong password, gets
//     401 Unauthorized.
//   - LIFETIME is bounded as RFC 8656 asks: a request below ten minutes
//     gets ten minutes, one above the maximum (3599 seconds, just under
//     the hour pion/turn grants as asked) gets the maximum, and a Refresh
//     of zero deletes. The gate rewrites such a request's LIFETIME and
//     signs it again with the client's key, which it has just verified.
//   - REQUESTED-ADDRESS-FAMILY IPv6 gets an IPv6 relayed address when
//     RelayBindIP6 is set and 440 Address Family not Supported otherwise;
//     an unknown family 440. Without the attribute a client gets IPv4, or,
//     when the relay has IPv6, the family of the listener it reached. A
//     CreatePermission, ChannelBind or Refresh naming the other family
//     than the allocation's gets 443 Peer Address Family Mismatch (a Send
//     indication to such a peer is dropped).
//   - REQUESTED-TRANSPORT TCP over a TCP or TLS connection opens a TCP
//     allocation (Connect, ConnectionBind, ConnectionAttempt); over UDP it
//     gets 400 Bad Request, as RFC 6062 says, and any other transport 442
//     Unsupported Transport Protocol: a client that asks for TCP never gets
//     a UDP relay.
//   - A quota refusal is 486 Allocation Quota Reached, sent by pion/turn
//     without MESSAGE-INTEGRITY; pion's client and libwebrtc act on error
//     responses without it. Besides the quotas per username and in all,
//     one client address (an IPv6 one by its /64) may make
//     [Config.AllocationRate] allocations a second after a burst of
//     [Config.AllocationBurst].
//   - While the relay drains ([Server.Shutdown]) an authenticated Allocate
//     gets 508 Insufficient Capacity, signed; refreshes, permissions,
//     channels and the relayed media of open allocations go on.
//   - One client address may hold [Config.StreamsPerAddress] TCP and TLS
//     connections; one more is closed as it is accepted. A connection must
//     finish its TLS handshake and send its first request within 15
//     seconds, and is closed 30 seconds after it was opened or lost its
//     allocation unless it holds one, whatever it sends meanwhile.
//   - Datagrams over a bandwidth cap (the allocation's, or the relay's in
//     all) are dropped without notice, as a congested link would. The
//     caps count UDP relaying; a TCP allocation's connections are counted
//     in the byte metrics but not capped, since TCP slows a sender down
//     rather than losing data.
//
// # Privacy
//
// Logs and metrics name no one: no username (whose id part names a
// participant), no password or secret, no client or peer address. Refusals
// are logged by reason or class, at most once a second per kind.
//
// # The relayed media
//
// pion/turn answers every request and keeps every allocation, permission
// and channel. ChannelData between a client on UDP and the peer of a bound
// channel, the media of nearly every relayed call, does not pass through
// pion/turn: the UDP listener and the relay sockets forward it directly,
// with the same peer policy, permissions, bandwidth cap and counters,
// allocating nothing per packet; pion's channel events keep the table of
// bound channels in step. Send and Data indications, clients on TCP or
// TLS and TCP allocations take pion's path.
//
// On Linux the UDP listeners and the relay sockets are read by a few event
// loops (package udppoll, one per four processors) instead of a goroutine
// per socket: one wake-up serves every socket that became readable, each
// socket is read with one recvmmsg of up to 32 datagrams, and what peers
// send back to clients leaves the TURN port with one sendmmsg per round.
// A bound channel also gets a second socket on the relayed address,
// connected to its peer: the fast path sends on it with the route the
// kernel cached, and the peer's datagrams arrive on it, through the same
// checks as the relay socket's (one more file descriptor per channel).
// That is what brings turnd's CPU per relayed packet below coturn's
// (docs/benchmarks/turnd.md). Elsewhere pion/turn reads each socket, with the
// same fast path.
//
// # Limits
//
// Over TCP and TLS, pion's framing holds a ChannelData message of at most
// four payload bytes until the next frame arrives; media packets are never
// that short. A datagram longer than 8192 bytes (udppoll.MaxDatagram) is
// dropped by the event loops.
package relay
