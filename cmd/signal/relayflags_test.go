package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pion/turn/v5"
)

func TestRelaySettingsAreValidated(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // empty: accepted
	}{
		{"IPv4 and IPv6 listeners, IPv6 relaying, caps", []string{"-relay-listen", "198.51.100.7:3478", "-relay-listen", "[2001:db8::7]:3478",
			"-relay-ip6", "2001:db8::7", "-relay-public-ip6", "2001:db8::70", "-relay-max-bps", "4000000", "-relay-max-total-bps", "400000000"}, nil, nil},
		{"listeners separated by commas", []string{"-relay-listen", "198.51.100.7:3478,198.51.100.7:443"}, nil, nil},
		{"listeners from the environment", nil, map[string]string{"SIGNAL_RELAY_LISTEN": "198.51.100.7:3478, [2001:db8::7]:3478"}, nil},
		{"IPv6 listener first", []string{"-relay-listen", "[2001:db8::7]:3478,198.51.100.7:3478"}, nil, nil},
		{"only an IPv6 listener", []string{"-relay-listen", "[2001:db8::7]:3478"}, nil, []string{"-relay-listen", "IPv4"}},
		{"wildcard listener", []string{"-relay-listen", ":3478"}, nil, []string{"-relay-listen", "own IPv4 address"}},
		{"a listener twice", []string{"-relay-listen", "198.51.100.7:3478", "-relay-listen", "198.51.100.7:3478"}, nil, []string{"relay-listen", "twice"}},
		{"not an address", []string{"-relay-listen", "198.51.100.7"}, nil, []string{"relay-listen", "not a listen address"}},
		{"IPv4 given as -relay-ip6", []string{"-relay-listen", "198.51.100.7:3478", "-relay-ip6", "198.51.100.7"}, nil, []string{"-relay-ip6", "not an IPv6 address"}},
		{"public IPv6 without -relay-ip6", []string{"-relay-listen", "198.51.100.7:3478", "-relay-public-ip6", "2001:db8::70"}, nil, []string{"-relay-public-ip6", "-relay-ip6 too"}},
		{"negative cap", []string{"-relay-listen", "198.51.100.7:3478", "-relay-max-total-bps", "-1"}, nil, []string{"-relay-max-total-bps", "negative"}},
		{"relay-wide cap below the allocation's", []string{"-relay-listen", "198.51.100.7:3478", "-relay-max-bps", "4000000", "-relay-max-total-bps", "1000000"}, nil, []string{"-relay-max-total-bps", "below"}},
		{"cap without the relay", []string{"-relay-max-total-bps", "1000000"}, nil, []string{"-relay-max-total-bps", "-relay-listen"}},
		{"IPv6 relaying without the relay", []string{"-relay-ip6", "2001:db8::7"}, nil, []string{"-relay-ip6", "-relay-listen"}},
		{"public address behind 1:1 NAT", []string{"-relay-listen", "10.50.0.7:3478", "-relay-public-ip", "198.51.100.7"}, nil, nil},
		{"IPv6 public address as -relay-public-ip", []string{"-relay-listen", "10.50.0.7:3478", "-relay-public-ip", "2001:db8::70"}, nil, []string{"-relay-public-ip", "not an IPv4 address"}},
		{"unspecified public address", []string{"-relay-listen", "10.50.0.7:3478", "-relay-public-ip", "0.0.0.0"}, nil, []string{"-relay-public-ip", "not an IPv4 address"}},
		{"public address without the relay", []string{"-relay-public-ip", "198.51.100.7"}, nil, []string{"-relay-public-ip", "-relay-listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { loadProd(t, tt.args, tt.env, tt.want) })
	}
}

func TestCheckSummarisesTheRelaySettings(t *testing.T) {
	args := []string{"-check", "-dev", "-data-dir", t.TempDir(), "-relay-listen", "127.0.0.1:3478,[::1]:3478",
		"-relay-ip6", "::1", "-relay-max-bps", "2000000", "-relay-max-total-bps", "50000000", "-relay-public-ip", "203.0.113.7"}
	var out strings.Builder
	if err := run(context.Background(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"127.0.0.1:3478 and [::1]:3478", "told to browsers as 203.0.113.7", "IPv6 relaying from ::1", "2000000 bit/s per allocation", "50000000 bit/s in all"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("-check printed %q, without %q", out.String(), w)
		}
	}
}

// The embedded relay listens on every -relay-listen address, browsers get
// URLs for each, and an IPv6 allocation (RFC 6156) through the second one
// is relayed from -relay-ip6.
func TestEmbeddedRelayServesEveryListenAddress(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback:", err)
	} else {
		c.Close()
	}
	r := startEmbeddedRelay(t, "-relay-listen", "127.0.0.1:0", "-relay-listen", "[::1]:0",
		"-relay-ip6", "::1", "-relay-max-total-bps", "50000000")
	addrs := r.Addrs()
	if len(addrs) != 2 || len(r.stun) != 2 || len(r.turn) != 4 {
		t.Fatalf("listeners %v, stun %v, turn %v", addrs, r.stun, r.turn)
	}
	if !strings.HasPrefix(r.turn[2], "turn:[::1]:") {
		t.Fatalf("turn URLs %v: the IPv6 listener's come second", r.turn)
	}
	user, pass := r.credential("patient")
	relayed := allocate(t, turn.ClientConfig{TURNServerAddr: addrs[1].String(), Conn: udpConn(t, "udp6", "[::1]"), Username: user, Password: pass,
		RequestedAddressFamily: turn.RequestedAddressFamilyIPv6})
	if got := relayed.LocalAddr().(*net.UDPAddr); got.IP.To4() != nil || !got.IP.IsLoopback() {
		t.Errorf("IPv6 allocation relayed at %s, want ::1 (-relay-ip6)", got)
	}
}

// Behind 1:1 NAT (-relay-public-ip) the embedded relay binds its relay
// sockets to -relay-listen's own address but tells browsers the public
// one: in XOR-RELAYED-ADDRESS and in the stun: and turn: URLs.
func TestEmbeddedRelayAdvertisesItsPublicAddress(t *testing.T) {
	const publicIP = "203.0.113.7"
	r := startEmbeddedRelay(t, "-relay-listen", "127.0.0.1:0", "-relay-public-ip", publicIP)
	_, port, _ := net.SplitHostPort(r.Addr().String())
	want := net.JoinHostPort(publicIP, port)
	if !slices.Equal(r.stun, []string{"stun:" + want}) || !slices.Equal(r.turn, []string{"turn:" + want + "?transport=udp", "turn:" + want + "?transport=tcp"}) {
		t.Fatalf("browsers get stun %v, turn %v; want them at %s", r.stun, r.turn, want)
	}
	user, pass := r.credential("patient")
	// The test reaches the relay at its private address, as the NAT would.
	relayed := allocate(t, turn.ClientConfig{TURNServerAddr: r.Addr().String(), Conn: udpConn(t, "udp4", "127.0.0.1"), Username: user, Password: pass})
	got := relayed.LocalAddr().(*net.UDPAddr)
	if got.IP.String() != publicIP {
		t.Fatalf("XOR-RELAYED-ADDRESS %s, want %s (-relay-public-ip)", got, publicIP)
	}
	// The relay socket itself is bound to the private address, on the
	// port it advertised: a peer hears from 127.0.0.1 on that port.
	from := sendToPeer(t, relayed, "through the relay")
	if ua := from.(*net.UDPAddr); ua.IP.String() != "127.0.0.1" || ua.Port != got.Port {
		t.Fatalf("the relay sent from %s, want 127.0.0.1:%d", from, got.Port)
	}
}

// The embedded relay's block of deploy/signal.toml, uncommented as its
// comment says (without stun-url and turn-url), loads as it stands.
func TestExampleConfigEmbeddedRelayBlockLoads(t *testing.T) {
	b, err := os.ReadFile("../../deploy/signal.toml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	uncommented := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "stun-url") || strings.HasPrefix(line, "turn-url"):
			continue
		case strings.HasPrefix(line, "#   relay-"):
			line = strings.TrimPrefix(line, "#   ")
			uncommented++
		}
		lines = append(lines, line)
	}
	if uncommented < 5 {
		t.Fatalf("found %d commented relay- settings in deploy/signal.toml", uncommented)
	}
	file := filepath.Join(t.TempDir(), "signal.toml")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSettings(io.Discard)
	if err := s.load([]string{"-config", file}, func(string) string { return "" }); err != nil {
		t.Fatalf("the embedded relay's example: %v", err)
	}
	if !s.relayOnHTTPS || len(s.relayListen.Values) != 1 || s.relayIP6 == "" || s.relayMaxTotalBPS == 0 {
		t.Fatalf("example not applied: %+v %s %d", s.relayListen.Values, s.relayIP6, s.relayMaxTotalBPS)
	}
}
