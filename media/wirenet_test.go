package media

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/media/wire"
)

func TestWireCandidates(t *testing.T) {
	udp := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 7882}
	tcp := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 7881}
	tests := []struct {
		name      string
		publicIPs []string
		tcp       net.Addr
		want      []string
		wantErr   string
	}{
		{"the listening address", nil, nil, []string{"candidate:1 1 udp 2130706431 192.0.2.10 7882 typ host"}, ""},
		{"with ICE-TCP, ranked below UDP", nil, tcp, []string{
			"candidate:1 1 udp 2130706431 192.0.2.10 7882 typ host",
			"candidate:2 1 tcp 2122317823 192.0.2.10 7881 typ host tcptype passive"}, ""},
		{"public addresses instead", []string{"203.0.113.5", "2001:db8::5"}, nil, []string{
			"candidate:1 1 udp 2130706431 203.0.113.5 7882 typ host",
			"candidate:2 1 udp 2130706175 2001:db8::5 7882 typ host"}, ""},
		{"a public address that is none", []string{"the-nat"}, nil, nil, "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wireCandidates(tt.publicIPs, []net.Addr{udp}, tt.tcp)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("candidates %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

// An unspecified IPv4 address advertises the host's IPv4 addresses, none
// of loopback and none with a zone.
func TestWireCandidatesOfTheHost(t *testing.T) {
	got, err := wireCandidates(nil, []net.Addr{&net.UDPAddr{IP: net.IPv4zero, Port: 7882}}, nil)
	if err != nil {
		t.Skipf("no address to advertise here: %v", err)
	}
	for _, c := range got {
		f := strings.Fields(c)
		ip := net.ParseIP(f[4])
		if ip == nil || ip.To4() == nil || ip.IsLoopback() || f[5] != "7882" {
			t.Errorf("candidate %q", c)
		}
	}
}

func TestOwnTransportNeedsASharedPort(t *testing.T) {
	if _, err := New(Config{OwnTransport: true}); err == nil || !strings.Contains(err.Error(), "UDP listen address") {
		t.Fatalf("err %v", err)
	}
}

// An unspecified listening address opens a socket on each of the host's
// addresses, each named by a candidate of its own, so that replies leave
// from the address the browser sent to; a node behind 1:1 NAT keeps one.
func TestWireSocketAddrs(t *testing.T) {
	one, err := wireSocketAddrs("127.0.0.1:7882", false)
	if err != nil || len(one) != 1 || one[0].String() != "127.0.0.1:7882" {
		t.Fatalf("a specific address: %v (%v)", one, err)
	}
	nat, err := wireSocketAddrs(":7882", true)
	if err != nil || len(nat) != 1 || nat[0].Port != 7882 {
		t.Fatalf("behind NAT: %v (%v)", nat, err)
	}
	host, err := hostAddrs()
	if err != nil || len(host) == 0 {
		t.Skipf("no host address here: %v", err)
	}
	each, err := wireSocketAddrs(":7882", false)
	if err != nil || len(each) == 0 {
		t.Fatalf("every address: %v (%v)", each, err)
	}
	for _, a := range each {
		ip, _ := netip.AddrFromSlice(a.IP)
		if a.Port != 7882 || ip.IsUnspecified() || ip.IsLoopback() || ip.Zone() != "" || !slices.Contains(host, ip.Unmap()) {
			t.Errorf("socket address %v", a)
		}
	}
}

// TestPortSetSendsByFamily: to an address no socket routes (yet, or any
// more: a DTLS close_notify after the connection was forgotten), the set
// writes from a socket of the address's family. It once wrote from the
// first socket whatever the family, which panicked the IPv4 batching
// socket for an IPv6 address.
func TestPortSetSendsByFamily(t *testing.T) {
	var ps portSet
	for _, ip := range []string{"127.0.0.1", "::1"} {
		sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Skipf("listen on %s: %v", ip, err)
		}
		p := wire.NewPort(sock, nil)
		t.Cleanup(func() { _ = p.Close() })
		ps = append(ps, p)
	}
	peer, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("listen on ::1: %v", err)
	}
	defer peer.Close()
	if err := ps.Send([]byte("hello"), peer.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatalf("send to an unrouted IPv6 address: %v", err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "hello" || from.String() != ps[1].LocalAddr().String() {
		t.Fatalf("received %q from %v (%v), want hello from %v", buf[:n], from, err, ps[1].LocalAddr())
	}
}
