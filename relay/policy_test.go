package relay

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPeerPolicyClasses(t *testing.T) {
	tests := []struct {
		ip    string
		class string // "" = allowed
	}{
		{"127.0.0.1", "loopback"}, {"127.255.0.9", "loopback"}, {"::1", "loopback"}, {"::ffff:127.0.0.1", "loopback"},
		{"0.0.0.0", "unspecified"}, {"::", "unspecified"},
		{"10.0.0.1", "private"}, {"172.16.5.5", "private"}, {"192.168.1.1", "private"}, {"::ffff:10.1.1.1", "private"}, {"fd00::1", "private"},
		{"100.64.0.1", "cgnat"}, {"169.254.169.254", "link-local"}, {"fe80::1", "link-local"},
		{"224.0.0.1", "multicast"}, {"ff02::1", "multicast"}, {"255.255.255.255", "reserved"},
		{"64:ff9b::a00:1", "nat64"}, {"2002:7f00:1::", "6to4"},
		{"198.51.100.7", ""}, {"8.8.8.8", ""}, {"2001:db8::1", ""}, {"2606:4700::1", ""},
	}
	var p PeerPolicy
	for _, tt := range tests {
		ok, class := p.Check(netip.MustParseAddr(tt.ip))
		if ok != (tt.class == "") || class != tt.class {
			t.Errorf("Check(%s) = %v %q, want class %q", tt.ip, ok, class, tt.class)
		}
	}
	p = PeerPolicy{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.20.99.0/24"), netip.MustParsePrefix("203.0.113.0/24")},
	}
	for ip, want := range map[string]bool{"10.20.1.1": true, "10.20.99.1": false, "10.21.0.1": false, "203.0.113.9": false, "::ffff:10.20.1.1": true} {
		if ok, _ := p.Check(netip.MustParseAddr(ip)); ok != want {
			t.Errorf("with allow/deny Check(%s) = %v, want %v", ip, ok, want)
		}
	}
}

func TestRESTCredentials(t *testing.T) {
	now := time.Unix(1700000000, 0)
	user, pass := MintCredential([]byte("secret"), "g_1", time.Hour, now)
	exp, id, err := ParseRESTUsername(user)
	if err != nil || !exp.Equal(now.Add(time.Hour)) || id != "g_1."+SecretID([]byte("secret")) {
		t.Fatalf("ParseRESTUsername(%q) = %v %q %v", user, exp, id, err)
	}
	// The coturn computation: base64(HMAC-SHA1(secret, username)).
	if pass != restPassword([]byte("secret"), user) {
		t.Fatal("password is not the REST HMAC")
	}
	if restPassword([]byte("secret"), "1700003600:g_1") != "ihwc9gSCxNnEz+Asj51MJmW5u+Q=" {
		t.Fatal("HMAC differs from the openssl reference")
	}
	for _, bad := range []string{"", "abc", ":id", "-5:x", "99999999999999:x"} {
		if _, _, err := ParseRESTUsername(bad); err == nil {
			t.Errorf("ParseRESTUsername(%q) accepted", bad)
		}
	}
}

func FuzzParseRESTUsername(f *testing.F) {
	for _, s := range []string{"1700000000:g_1.abc", "1", ":", "abc:def"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, id, err := ParseRESTUsername(s)
		if err == nil && (exp.Unix() <= 0 || !stringsHasSuffix(s, id)) {
			t.Fatalf("ParseRESTUsername(%q) = %v %q", s, exp, id)
		}
	})
}

func stringsHasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

func BenchmarkPeerCheck(b *testing.B) {
	p := PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	ip := netip.MustParseAddr("198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		p.Check(ip)
	}
}

func BenchmarkBandwidthBucket(b *testing.B) {
	bk := newBucket(1 << 40)
	b.ReportAllocs()
	for b.Loop() {
		bk.take(1200)
	}
}

func TestParseUsersFile(t *testing.T) {
	users, err := ParseUsersFile(strings.NewReader("# staff relay users\n\nalice:a-long-password\n bob:another-long-one \n"))
	if err != nil || len(users) != 2 || users["bob"] != "another-long-one" {
		t.Fatalf("ParseUsersFile = %v, %v", users, err)
	}
	for _, bad := range []string{"alice", "alice:short", ":password-long", "al ice:password-long", "a:password-long\na:password-long"} {
		if _, err := ParseUsersFile(strings.NewReader(bad)); err == nil || strings.Contains(err.Error(), "password-long") {
			t.Errorf("ParseUsersFile(%q) = %v", bad, err)
		}
	}
}

func FuzzParseUsersFile(f *testing.F) {
	f.Add("alice:a-long-password\n# c\n")
	f.Fuzz(func(t *testing.T, s string) {
		users, err := ParseUsersFile(strings.NewReader(s))
		if err == nil {
			for u, p := range users {
				if u == "" || len(p) < 12 {
					t.Fatalf("accepted %q:%q", u, p)
				}
			}
		}
	})
}

func BenchmarkGateChannelData(b *testing.B) {
	g := &permissionGate{}
	pkt := make([]byte, 204)
	pkt[0], pkt[1] = 0x40, 0x00 // ChannelData on channel 0x4000
	b.ReportAllocs()
	for b.Loop() {
		if g.refused(pkt, nil) {
			b.Fatal("channel data refused")
		}
	}
}
