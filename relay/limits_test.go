package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/openconsult/openconsult/internal/eventually"
)

func udpAddr(s string) net.Addr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
func tcpAddr(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestAllocationRateIsATokenBucketPerAddress(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name   string
		first  net.Addr
		second net.Addr
		shared bool // the second address spends the first one's tokens
	}{
		{"other port of one IPv4 address", udpAddr("192.0.2.1:1000"), udpAddr("192.0.2.1:2000"), true},
		{"same address over TCP", udpAddr("192.0.2.1:1000"), tcpAddr("192.0.2.1:1000"), true},
		{"IPv4-mapped form", udpAddr("192.0.2.1:1000"), udpAddr("[::ffff:192.0.2.1]:1000"), true},
		{"same IPv6 /64", udpAddr("[2001:db8:1:2::1]:1000"), udpAddr("[2001:db8:1:2:ffff::9]:1000"), true},
		{"other IPv4 address", udpAddr("192.0.2.1:1000"), udpAddr("192.0.2.2:1000"), false},
		{"other IPv6 /64", udpAddr("[2001:db8:1:2::1]:1000"), udpAddr("[2001:db8:1:3::1]:1000"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newAllocationRate(2, 3)
			for i := range 3 {
				if !r.allow(tt.first, start) {
					t.Fatalf("allocation %d of the burst refused", i+1)
				}
			}
			if got := r.allow(tt.second, start); got == tt.shared {
				t.Fatalf("second address allowed %v after the first spent its burst, want %v", got, !tt.shared)
			}
			if r.allow(tt.first, start.Add(400*time.Millisecond)) {
				t.Fatal("allowed before a token refilled")
			}
			if !r.allow(tt.first, start.Add(600*time.Millisecond)) {
				t.Fatal("refused after a token refilled at 2 a second")
			}
		})
	}
}

func TestAllocationRateForgetsRefilledAddresses(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	r := newAllocationRate(10, 5)
	for i := range 100 {
		r.allow(udpAddr("192.0.2."+strconv.Itoa(i)+":1"), start)
	}
	r.allow(udpAddr("198.51.100.1:1"), start.Add(sweepEvery))
	if n := len(r.buckets); n != 1 {
		t.Fatalf("%d buckets after the sweep, want only the new address's", n)
	}
	if !newAllocationRate(0, 0).allow(udpAddr("192.0.2.1:1"), start) {
		t.Fatal("a rate of 0 refused")
	}
}

// allocateRaw makes an authenticated Allocate over network ("udp" or "tcp")
// from a new client transport address and returns the error code, 0 for
// a success.
func allocateRaw(t *testing.T, tr *testRelay, network, id string) int {
	t.Helper()
	user, pass := mint(testSecret, id)
	var conn net.PacketConn
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	} else {
		c, err := net.Dial("tcp", tr.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	}
	raw := newRawClient(t, conn, tr.Addr(), user, pass)
	return errorCode(raw.request(stun.MethodAllocate, requestedUDP))
}

// One address used to get 500 allocations in 57 ms; now a burst, then 486
// Allocation Quota Reached until tokens refill.
func TestAllocationRateRefusesABurstFromOneAddress(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			clock := &fakeClock{now: time.Now()}
			tr := startRelay(t, func(c *Config) { c.AllocationRate, c.AllocationBurst, c.Now = 1, 3, clock.Now })
			for i := range 3 {
				if code := allocateRaw(t, tr, network, "g_burst"+strconv.Itoa(i)); code != 0 {
					t.Fatalf("allocation %d of the burst: error %d", i+1, code)
				}
			}
			if code := allocateRaw(t, tr, network, "g_over"); code != 486 {
				t.Fatalf("allocation over the rate: code %d, want 486 Allocation Quota Reached", code)
			}
			if got := tr.counter(tr.metrics.quotaRefusals, "address_rate"); got != 1 {
				t.Fatalf("address_rate refusals counted %v, want 1", got)
			}
			clock.Advance(time.Second)
			if code := allocateRaw(t, tr, network, "g_later"); code != 0 {
				t.Fatalf("allocation after a token refilled: error %d", code)
			}
		})
	}
}

// bindingOK sends a Binding request over a stream and reports whether a
// success came back.
func bindingOK(conn net.Conn) bool {
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := conn.Write(req.Raw); err != nil {
		return false
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1600)
	n, err := conn.Read(buf)
	if err != nil {
		return false
	}
	resp := &stun.Message{Raw: buf[:n]}
	return resp.Decode() == nil && resp.TransactionID == req.TransactionID && resp.Type == stun.BindingSuccess
}

// closedByRelay reports whether the relay has closed conn: a read ends in
// EOF or a reset, not in the test's own deadline.
func closedByRelay(conn net.Conn) bool {
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1600)
	for {
		_, err := conn.Read(buf)
		switch {
		case err == nil:
			continue // an answer still on its way
		case errors.Is(err, os.ErrDeadlineExceeded):
			return false
		default:
			return errors.Is(err, io.EOF) || isReset(err) || errors.Is(err, net.ErrClosed)
		}
	}
}

func TestConnectionsPerAddressAreLimited(t *testing.T) {
	tr := startRelay(t, func(c *Config) {
		c.StreamsPerAddress = 2
		c.TLSListen, c.TLS = "127.0.0.1:0", selfSigned(t)
	})
	dials := []func() (net.Conn, error){
		func() (net.Conn, error) { return net.Dial("tcp", tr.Addr().String()) },
		func() (net.Conn, error) {
			return tls.Dial("tcp", tr.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true}) // the test's self-signed certificate
		},
	}
	var open []net.Conn
	for _, d := range dials {
		c, err := d()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if !bindingOK(c) {
			t.Fatal("a connection within the limit is not answered")
		}
		open = append(open, c)
	}
	over, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if !closedByRelay(over) {
		t.Fatal("a third connection from one address is not closed")
	}
	eventually.True(t, 5*time.Second, "the refusal counted", func() bool {
		return tr.counter(tr.metrics.streamCloses, closeAddressLimit) == 1
	})
	// Closing one gives its place back.
	open[0].Close()
	eventually.True(t, 5*time.Second, "a new connection is answered", func() bool {
		c, err := net.Dial("tcp", tr.Addr().String())
		if err != nil {
			return false
		}
		defer c.Close()
		return bindingOK(c)
	})
}

// A connection without an allocation ends at the no-allocation timeout
// however busy it keeps itself; it used to stay open for as long as it
// sent a Binding request now and then.
func TestConnectionWithoutAllocationIsClosedWhateverItSends(t *testing.T) {
	const timeout = 300 * time.Millisecond
	binding := func() []byte { return stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw }
	tests := []struct {
		name    string
		tls     bool
		payload func() []byte
	}{
		{"binding requests over TCP", false, binding},
		{"binding requests over TLS", true, binding},
		{"ChannelData of no channel over TCP", false, func() []byte { return channelData(100) }},
		{"Send indications over TLS", true, func() []byte {
			return stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
				stun.RawAttribute{Type: stun.AttrData, Value: []byte("junk")}, stun.Fingerprint).Raw
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := startRelay(t, func(c *Config) {
				c.TLSListen, c.TLS = "127.0.0.1:0", selfSigned(t)
				c.noAllocationTimeout = timeout
			})
			start := time.Now()
			var conn net.Conn
			var err error
			if tt.tls {
				conn, err = tls.Dial("tcp", tr.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true}) // the test's self-signed certificate
			} else {
				conn, err = net.Dial("tcp", tr.Addr().String())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if !bindingOK(conn) {
				t.Fatal("the relay does not answer a Binding request")
			}
			stop := make(chan struct{})
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				tick := time.NewTicker(timeout / 6)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := conn.Write(tt.payload()); err != nil {
							return
						}
					}
				}
			}()
			closed := closedByRelay(conn)
			close(stop)
			<-sent
			if !closed {
				t.Fatal("a connection without an allocation is still open")
			}
			if elapsed := time.Since(start); elapsed < timeout {
				t.Fatalf("closed after %v, before the %v timeout", elapsed, timeout)
			}
			eventually.True(t, 5*time.Second, "the close counted", func() bool {
				return tr.counter(tr.metrics.streamCloses, closeNoAllocation) == 1
			})
		})
	}
}

// A connection with an allocation has no deadline; when the allocation
// ends, the timeout starts again.
func TestConnectionWithAllocationOutlivesTheTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, network := range []string{"tcp", "tls"} {
		t.Run(network, func(t *testing.T) {
			tr := startRelay(t, func(c *Config) {
				c.TLSListen, c.TLS = "127.0.0.1:0", selfSigned(t)
				c.noAllocationTimeout = timeout
			})
			user, pass := mint(testSecret, "g_long_call")
			relayed := dial(t, tr, network, user, pass).allocate(t)
			peer := newPeer(t)
			exchange(t, relayed, peer, []byte("before the timeout"), []byte("relayed before the timeout"))
			time.Sleep(3 * timeout) // the socket deadline runs on the wall clock
			exchange(t, relayed, peer, []byte("after the timeout"), []byte("relayed after the timeout"))
			if got := tr.counter(tr.metrics.streamCloses, closeNoAllocation); got != 0 {
				t.Fatalf("%v connections closed for want of an allocation", got)
			}
			if err := relayed.Close(); err != nil { // a Refresh with LIFETIME 0
				t.Fatal(err)
			}
			eventually.True(t, 5*time.Second, "the connection without its allocation closed", func() bool {
				return tr.counter(tr.metrics.streamCloses, closeNoAllocation) == 1
			})
		})
	}
}
