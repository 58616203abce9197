package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Classes of refused peer addresses, as returned by [PeerPolicy.Check] and
// used as the class label of the turn_peer_refusals_total metric.
const (
	ClassUnspecified = "unspecified" // 0.0.0.0/8, ::
	ClassLoopback    = "loopback"    // 127.0.0.0/8, ::1
	ClassPrivate     = "private"     // 10/8, 172.16/12, 192.168/16, fec0::/10
	ClassCGNAT       = "cgnat"       // 100.64.0.0/10
	ClassMetadata    = "metadata"    // 169.254.169.254, fd00:ec2::254
	ClassLinkLocal   = "link-local"  // 169.254.0.0/16, fe80::/10
	ClassULA         = "ula"         // fc00::/7
	ClassMulticast   = "multicast"   // 224.0.0.0/4, ff00::/8
	ClassBroadcast   = "broadcast"   // 255.255.255.255
	ClassReserved    = "reserved"    // 240/4, 192.0.0/24, 198.18/15, ::/96, 100::/64, 64:ff9b:1::/48
	ClassDenied      = "denied"      // a Deny prefix of the operator
	ClassInvalid     = "invalid"     // not an IP address
)

type classedPrefix struct {
	prefix netip.Prefix
	class  string
}

// builtinV4 and builtinV6 are the destinations a relay must not reach
// unless an operator allows them: everything that is not the public
// internet, where a relay would let an outsider probe the institution's own
// network or a cloud metadata service. The first matching entry names the
// class, so narrower prefixes come before the ranges that contain them.
var (
	builtinV4 = maskTable([]classedPrefix{
		{netip.MustParsePrefix("0.0.0.0/8"), ClassUnspecified},
		{netip.MustParsePrefix("127.0.0.0/8"), ClassLoopback},
		{netip.MustParsePrefix("10.0.0.0/8"), ClassPrivate},
		{netip.MustParsePrefix("172.16.0.0/12"), ClassPrivate},
		{netip.MustParsePrefix("192.168.0.0/16"), ClassPrivate},
		{netip.MustParsePrefix("100.64.0.0/10"), ClassCGNAT},
		{netip.MustParsePrefix("169.254.169.254/32"), ClassMetadata},
		{netip.MustParsePrefix("169.254.0.0/16"), ClassLinkLocal},
		{netip.MustParsePrefix("224.0.0.0/4"), ClassMulticast},
		{netip.MustParsePrefix("255.255.255.255/32"), ClassBroadcast},
		{netip.MustParsePrefix("240.0.0.0/4"), ClassReserved},
		{netip.MustParsePrefix("192.0.0.0/24"), ClassReserved},
		{netip.MustParsePrefix("198.18.0.0/15"), ClassReserved},
	})
	builtinV6 = maskTable([]classedPrefix{
		{netip.MustParsePrefix("::/128"), ClassUnspecified},
		{netip.MustParsePrefix("::1/128"), ClassLoopback},
		{netip.MustParsePrefix("::/96"), ClassReserved},           // IPv4-compatible, deprecated
		{netip.MustParsePrefix("::ffff:0:0:0/96"), ClassReserved}, // IPv4-translated (SIIT)
		{netip.MustParsePrefix("64:ff9b:1::/48"), ClassReserved},  // local-use NAT64
		{netip.MustParsePrefix("100::/64"), ClassReserved},        // discard-only
		{netip.MustParsePrefix("fd00:ec2::254/128"), ClassMetadata},
		{netip.MustParsePrefix("fc00::/7"), ClassULA},
		{netip.MustParsePrefix("fe80::/10"), ClassLinkLocal},
		{netip.MustParsePrefix("fec0::/10"), ClassPrivate}, // site-local, deprecated
		{netip.MustParsePrefix("ff00::/8"), ClassMulticast},
	})
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
	teredoPrefix = netip.MustParsePrefix("2001::/32")
)

// maskedPrefix is a prefix as two masked 64-bit halves (IPv4 addresses in
// their IPv4-mapped form), so that the check on every relayed datagram is a
// few integer comparisons.
type maskedPrefix struct {
	hi, lo, maskHi, maskLo uint64
	class                  string
}

func maskTable(in []classedPrefix) []maskedPrefix {
	out := make([]maskedPrefix, len(in))
	for i, p := range in {
		bits := p.prefix.Bits()
		if p.prefix.Addr().Is4() {
			bits += 96
		}
		mhi, mlo := mask(bits)
		hi, lo := halves(p.prefix.Addr())
		out[i] = maskedPrefix{hi: hi & mhi, lo: lo & mlo, maskHi: mhi, maskLo: mlo, class: p.class}
	}
	return out
}

func mask(bits int) (hi, lo uint64) {
	switch {
	case bits >= 128:
		return ^uint64(0), ^uint64(0)
	case bits >= 64:
		return ^uint64(0), ^(^uint64(0) >> (bits - 64))
	case bits > 0:
		return ^(^uint64(0) >> bits), 0
	}
	return 0, 0
}

func halves(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// PeerPolicy decides which peer addresses an allocation may reach. The zero
// value refuses every built-in class and allows the public internet.
//
// An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4
// address it carries. An IPv6 address that embeds an IPv4 destination
// (NAT64 64:ff9b::/96, 6to4 2002::/16, the Teredo client address in
// 2001::/32) is refused when the embedded address would be; Deny prefixes
// apply to the embedded address too, Allow prefixes only to the address as
// given, so opening 10.20.0.0/16 does not open its NAT64 form.
//
// A PeerPolicy is read-only once in use and safe for concurrent use.
type PeerPolicy struct {
	// Allow opens ranges the built-in classes refuse, such as the subnet of
	// an internal SFU.
	Allow []netip.Prefix
	// Deny refuses more ranges; it wins over Allow.
	Deny []netip.Prefix
}

// Check reports whether ip may be a peer and, when it may not, the class of
// the refusal: one of the Class constants.
func (p PeerPolicy) Check(ip netip.Addr) (ok bool, class string) {
	// A zoned address matches no prefix at all, which would let fe80::1%eth0
	// past every refusal.
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return false, ClassInvalid
	}
	inner, embeds := embeddedIPv4(ip)
	for _, d := range p.Deny {
		if d.Contains(ip) || (embeds && d.Contains(inner)) {
			return false, ClassDenied
		}
	}
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return true, ""
		}
	}
	if c := builtinClass(ip); c != "" {
		return false, c
	}
	if embeds {
		if c := builtinClass(inner); c != "" {
			return false, c
		}
	}
	return true, ""
}

func builtinClass(ip netip.Addr) string {
	table := builtinV6
	if ip.Is4() {
		table = builtinV4
	}
	hi, lo := halves(ip)
	for _, e := range table {
		if hi&e.maskHi == e.hi && lo&e.maskLo == e.lo {
			return e.class
		}
	}
	return ""
}

// embeddedIPv4 returns the IPv4 destination that an IPv6 address of a
// translation or tunnelling scheme delivers to.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case teredoPrefix.Contains(ip):
		// The client's public address, stored inverted (RFC 4380).
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return netip.Addr{}, false
}

// normalizePrefixes masks prefixes and rewrites IPv4-mapped ones as IPv4,
// because Check unmaps addresses before matching.
func normalizePrefixes(in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			return nil, errInvalidPrefix
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// netipFromIP converts a peer address as pion/turn reports it.
func netipFromIP(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}
