package media_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// TestSharedPortAbsorbsBursts: every participant's packets queue on the
// one shared UDP socket, where a port per participant spreads them over
// a socket each, so a burst must fit in that socket's kernel buffer. A
// burst of 2048 packets of 1000 bytes (a few frames of every publisher's
// layers arriving while the node's one reader waits for a core) must not
// be dropped; with the kernel's default buffer most of it was, and the
// load of ten consults of three lost most of its video.
func TestSharedPortAbsorbsBursts(t *testing.T) {
	if rmemMax(t) < 4<<20 {
		t.Skip("net.core.rmem_max is below 4 MiB, which caps the node's buffer (deploy/sysctl.d raises it)")
	}
	tests := []struct {
		name   string
		listen string
	}{
		{"one address", "127.0.0.1:0"},
		{"every address", ":0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings(), UDPListen: tt.listen})
			var to *net.UDPAddr
			for _, a := range sfu.Addrs() {
				if u, ok := a.(*net.UDPAddr); ok && u.IP.To4() != nil {
					to = u
				}
			}
			if to == nil {
				t.Skipf("no IPv4 address among %v", sfu.Addrs())
			}
			c, err := net.DialUDP("udp4", nil, to)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			before := udpDrops(t, to)
			pkt := make([]byte, 1000)
			pkt[0] = 0x80 // an RTP packet from an address no session knows
			for range 2048 {
				if _, err := c.Write(pkt); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(200 * time.Millisecond) // the reader drains what queued
			if d := udpDrops(t, to) - before; d != 0 {
				t.Fatalf("the shared port %s dropped %d of a burst of 2048 packets", to, d)
			}
		})
	}
}

func rmemMax(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("rmem_max: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("rmem_max %q: %v", b, err)
	}
	return n
}

// udpDrops reads the kernel's count of datagrams dropped on the IPv4 UDP
// socket bound to addr.
func udpDrops(t *testing.T, addr *net.UDPAddr) int64 {
	t.Helper()
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		t.Skipf("no /proc/net/udp: %v", err)
	}
	defer f.Close()
	// The kernel prints the address as a host-order (little-endian) word.
	local := fmt.Sprintf("%08X:%04X", binary.LittleEndian.Uint32(addr.IP.To4()), addr.Port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 12 && fields[1] == local {
			n, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
			if err != nil {
				t.Fatalf("drops of %s: %v", local, err)
			}
			return n
		}
	}
	t.Fatalf("no socket on %s (%s) in /proc/net/udp", addr, local)
	return 0
}

// TestSubscriberBurstsLeaveTogether: on the shared port, what a
// subscriber connection's writer writes at once leaves in sendmmsg calls,
// so that most of the node's datagrams (media to subscribers, not the
// ICE, DTLS and RTCP around it) go out that way.
func TestSubscriberBurstsLeaveTogether(t *testing.T) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings(), UDPListen: "127.0.0.1:0"})
	r := nodetest.NewRoom(t)
	var ps []*nodetest.Participant
	for _, name := range []string{"a", "b", "c"} {
		ps = append(ps, r.Join(sfu, name, nodetest.Publish{Audio: true, Video: true}))
	}
	nodetest.WaitAllReceive(t, ps, 100, 30*time.Second)
	w := sfu.UDPWrites()
	t.Logf("%d sendto, %d datagrams in %d sendmmsg", w.Single, w.Batched, w.Batches)
	if w.Batched <= w.Single {
		t.Errorf("%d datagrams in %d sendmmsg calls and %d sendto: the subscribers' bursts were not held", w.Batched, w.Batches, w.Single)
	}
}

// TestOwnTransportOnEveryAddress: on the node's own transport, an
// unspecified listening address is a socket on each of the host's
// addresses, and participants reach the node on them, each reply leaving
// from the address its check was sent to.
func TestOwnTransportOnEveryAddress(t *testing.T) {
	sfu, err := media.New(media.Config{Log: testLog(), Settings: nodetest.LoopbackSettings(), UDPListen: ":0", OwnTransport: true})
	if err != nil {
		t.Skipf("no host address to listen on: %v", err)
	}
	t.Cleanup(sfu.Close)
	var v4 int
	for _, a := range sfu.Addrs() {
		u, ok := a.(*net.UDPAddr)
		if !ok {
			continue
		}
		if u.IP.IsUnspecified() || u.IP.IsLoopback() {
			t.Fatalf("a socket on %v", u)
		}
		if u.IP.To4() != nil {
			v4++
		}
	}
	if v4 == 0 {
		t.Skipf("no IPv4 address among %v", sfu.Addrs())
	}
	r := nodetest.NewRoom(t)
	ps := []*nodetest.Participant{r.Join(sfu, "a", nodetest.Publish{Video: true}), r.Join(sfu, "b", nodetest.Publish{Video: true})}
	nodetest.WaitAllReceive(t, ps, 20, 20*time.Second)
}
