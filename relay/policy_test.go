package relay

import (
	"net/netip"
	"testing"
)

func TestPeerPolicyRefusesEveryInternalClass(t *testing.T) {
	tests := []struct {
		ip    string
		class string // "" when allowed
	}{
		{"0.0.0.0", ClassUnspecified},
		{"0.1.2.3", ClassUnspecified},
		{"::", ClassUnspecified},
		{"127.0.0.1", ClassLoopback},
		{"127.255.0.9", ClassLoopback},
		{"::1", ClassLoopback},
		{"::ffff:127.0.0.1", ClassLoopback},
		{"10.0.0.1", ClassPrivate},
		{"172.16.5.5", ClassPrivate},
		{"172.31.255.255", ClassPrivate},
		{"192.168.1.1", ClassPrivate},
		{"::ffff:10.1.1.1", ClassPrivate},
		{"::ffff:192.168.0.1", ClassPrivate},
		{"fec0::1", ClassPrivate},
		{"100.64.0.1", ClassCGNAT},
		{"100.127.255.254", ClassCGNAT},
		{"169.254.169.254", ClassMetadata},
		{"::ffff:169.254.169.254", ClassMetadata},
		{"fd00:ec2::254", ClassMetadata},
		{"169.254.1.1", ClassLinkLocal},
		{"fe80::1", ClassLinkLocal},
		{"fe80::1%eth0", ClassLinkLocal}, // a zone must not hide the class
		{"fd12:3456::1", ClassULA},
		{"fc00::1", ClassULA},
		{"224.0.0.1", ClassMulticast},
		{"239.255.255.250", ClassMulticast},
		{"ff02::1", ClassMulticast},
		{"255.255.255.255", ClassBroadcast},
		{"240.0.0.1", ClassReserved},
		{"192.0.0.8", ClassReserved},
		{"198.18.0.1", ClassReserved},
		{"::7f00:1", ClassReserved},     // IPv4-compatible 127.0.0.1
		{"64:ff9b:1::1", ClassReserved}, // local-use NAT64
		{"100::1", ClassReserved},
		{"64:ff9b::a00:1", ClassPrivate},                       // NAT64 of 10.0.0.1
		{"64:ff9b::7f00:1", ClassLoopback},                     // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", ClassMetadata},                  // NAT64 of 169.254.169.254
		{"2002:7f00:1::", ClassLoopback},                       // 6to4 of 127.0.0.1
		{"2002:c0a8:101::1", ClassPrivate},                     // 6to4 of 192.168.1.1
		{"2001:0:4136:e378:8000:63bf:f5ff:fffe", ClassPrivate}, // Teredo, client 10.0.0.1
		{"198.51.100.7", ""},
		{"8.8.8.8", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"::ffff:8.8.8.8", ""},
		{"2606:4700::1", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", ""},  // 6to4 of 8.8.8.8
		{"2001:db8::1", ""},      // documentation, not internal
	}
	var p PeerPolicy
	for _, tt := range tests {
		ok, class := p.Check(netip.MustParseAddr(tt.ip))
		if ok != (tt.class == "") || class != tt.class {
			t.Errorf("Check(%s) = %v, %q; want class %q", tt.ip, ok, class, tt.class)
		}
	}
	if ok, class := p.Check(netip.Addr{}); ok || class != ClassInvalid {
		t.Errorf("Check(zero Addr) = %v, %q", ok, class)
	}
}

func TestPeerPolicyAllowAndDeny(t *testing.T) {
	p := PeerPolicy{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("127.0.0.1/32")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.20.99.0/24"), netip.MustParsePrefix("203.0.113.0/24")},
	}
	tests := []struct {
		ip    string
		ok    bool
		class string
	}{
		{"10.20.1.1", true, ""},
		{"::ffff:10.20.1.1", true, ""},
		{"127.0.0.1", true, ""},
		{"127.0.0.2", false, ClassLoopback}, // exactly the allowed range
		{"10.21.0.1", false, ClassPrivate},
		{"10.20.99.1", false, ClassDenied}, // Deny wins over Allow
		{"203.0.113.9", false, ClassDenied},
		{"64:ff9b::cb00:7109", false, ClassDenied}, // NAT64 form of a denied address
		{"64:ff9b::a14:101", false, ClassPrivate},  // Allow does not open the NAT64 form
		{"198.51.100.7", true, ""},
	}
	for _, tt := range tests {
		ok, class := p.Check(netip.MustParseAddr(tt.ip))
		if ok != tt.ok || class != tt.class {
			t.Errorf("Check(%s) = %v, %q; want %v, %q", tt.ip, ok, class, tt.ok, tt.class)
		}
	}
}

func TestNormalizedPrefixesMatchUnmappedAddresses(t *testing.T) {
	got, err := normalizePrefixes([]netip.Prefix{netip.MustParsePrefix("::ffff:10.20.0.0/112"), netip.MustParsePrefix("10.30.1.7/16")})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("10.30.0.0/16")}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("normalizePrefixes = %v, want %v", got, want)
	}
	if _, err := normalizePrefixes([]netip.Prefix{{}}); err == nil {
		t.Fatal("the zero prefix was accepted")
	}
}

func BenchmarkPeerPolicyCheck(b *testing.B) {
	p := PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}, Deny: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	for _, ip := range []string{"198.51.100.7", "::ffff:198.51.100.7", "2606:4700::1"} {
		addr := netip.MustParseAddr(ip)
		b.Run(ip, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, _ := p.Check(addr); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}
