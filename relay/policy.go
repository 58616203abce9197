package relay

import (
	"net/netip"
)

// deniedByDefault are the destinations a relay must not reach unless an
// operator allows them: anything that is not the public internet, where an
// attacker could use the relay to probe or reach the institution's own
// network or a cloud metadata service.
var deniedByDefault = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "cgnat"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes 255.255.255.255
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("64:ff9b::/96"), "nat64"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("2001::/32"), "teredo"},
}

// PeerPolicy decides which peer addresses an allocation may reach.
type PeerPolicy struct {
	Allow []netip.Prefix // opened by the operator, such as the SFU's subnet
	Deny  []netip.Prefix // closed by the operator; wins over Allow
}

// Check returns whether ip may be a peer, and when not, the class of
// address that was refused. IPv4-mapped IPv6 addresses are judged as the
// IPv4 address they carry.
func (p PeerPolicy) Check(ip netip.Addr) (ok bool, class string) {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return false, "invalid"
	}
	for _, d := range p.Deny {
		if d.Contains(ip) {
			return false, "operator-denied"
		}
	}
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return true, ""
		}
	}
	for _, d := range deniedByDefault {
		if d.prefix.Contains(ip) {
			return false, d.class
		}
	}
	return true, ""
}
