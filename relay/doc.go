// Package relay is the TURN relay an institution runs inside its own
// firewall so that patients on restrictive networks still reach a consult.
// It is built on pion/turn v4 and owns everything around it: the UDP, TCP
// and TLS listeners, time-limited credentials in the TURN REST format, the
// peer policy that keeps the relay out of the institution's own network,
// allocation quotas, a per-allocation bandwidth cap, and Prometheus
// metrics.
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
//   - A malformed, expired or unknown username gets 400 Bad Request and a
//     wrong password 400 as well (pion/turn's answers; RFC 8656 would give
//     401).
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
//   - Datagrams over the bandwidth cap are dropped without notice, as a
//     congested link would.
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
// bound channels in step. Send and Data indications and clients on TCP or
// TLS take pion's path.
//
// On Linux the UDP listener and the relay sockets are read by a few event
// loops (package udppoll, one per four processors) instead of a goroutine
// per socket: one wake-up serves every socket that became readable, which
// is what brings turnd's CPU per relayed packet below coturn's
// (docs/benchmarks.md). Elsewhere pion/turn reads each socket, with the
// same fast path.
//
// # Limits of pion/turn v4
//
// Relayed addresses are IPv4 (there is no REQUESTED-ADDRESS-FAMILY), and
// TCP relaying (RFC 6062) is not offered. Clients may reach the listeners
// over IPv6. Over TCP and TLS, pion's framing holds a ChannelData message
// of at most four payload bytes until the next frame arrives; media
// packets are never that short.
package relay
