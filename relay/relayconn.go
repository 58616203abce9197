package relay

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"

	"github.com/openconsult/openconsult/internal/udppoll"
)

var (
	errPeerRefused = errors.New("relay: peer refused by policy")
	errNotUDPAddr  = errors.New("relay: peer is not a UDP address")
	errTCPRelay    = errors.New("relay: TCP relaying (RFC 6062) is not offered")
)

// relaySockets is the RelayAddressGenerator given to pion/turn. It opens
// every allocation's relay socket (in the event loops' Set where there is
// one, otherwise through the port-range generator) so that the socket
// enforces the peer policy on what it sends, only lets in datagrams from
// peers holding a permission, applies the bandwidth cap and counts
// traffic. pion/turn offers no per-packet hook; the relay socket is the one
// place every relayed datagram passes, on pion's path and on the channel
// fast path alike.
type relaySockets struct {
	inner   *turn.RelayAddressGeneratorPortRange
	poll    *udppoll.Set[datagramSink] // nil where the system has none
	policy  *PeerPolicy
	metrics *metrics
	refused func(class string)
	maxBPS  int64
	now     func() time.Time

	// byAddr finds a socket from the relayed address pion reports in its
	// permission events: the very value AllocatePacketConn returned.
	mu     sync.Mutex
	byAddr map[net.Addr]*relayConn
}

func (r *relaySockets) Validate() error { return r.inner.Validate() }

func (r *relaySockets) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	// Everything deliver reads is set before the socket can receive.
	c := &relayConn{owner: r, policy: r.policy, m: r.metrics, refused: r.refused}
	c.permitted.Store(&[]netip.Addr{})
	c.channels.Store(&[]peerChannel{})
	if r.maxBPS > 0 {
		c.in, c.out = newBucket(r.maxBPS, r.now), newBucket(r.maxBPS, r.now)
	}
	if r.poll != nil {
		c.polled = &polledSocket{pionQueue: newPionQueue(polledInbox)}
		addr, err := r.allocatePolled(port, c)
		if err != nil {
			return nil, nil, err
		}
		c.PacketConn, c.sock, c.addr = c.polled, c.polled, addr
	} else {
		conn, addr, err := r.inner.AllocatePacketConn(network, port)
		if err != nil {
			return nil, nil, err
		}
		c.PacketConn, c.addr = conn, addr
		if s, ok := conn.(udpSocket); ok {
			c.sock, c.reader = s, s
		}
	}
	r.mu.Lock()
	r.byAddr[c.addr] = c
	r.mu.Unlock()
	return c, c.addr, nil
}

func (r *relaySockets) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errTCPRelay
}

// permission applies pion's OnPermissionCreated and OnPermissionDeleted.
func (r *relaySockets) permission(relayAddr net.Addr, peer net.IP, granted bool) {
	r.mu.Lock()
	c := r.byAddr[relayAddr]
	r.mu.Unlock()
	ip, ok := netip.AddrFromSlice(peer)
	if c == nil || !ok {
		return
	}
	c.setPermitted(ip.Unmap(), granted)
}

// channel applies pion's OnChannelCreated and OnChannelDeleted to the
// fast path of the listener whose client bound the channel.
func (r *relaySockets) channel(t *channels, relayAddr net.Addr, client, peer netip.AddrPort, number uint16, bound bool) {
	r.mu.Lock()
	c := r.byAddr[relayAddr]
	r.mu.Unlock()
	if c != nil && c.sock != nil {
		t.bind(c, client, peer, number, bound)
	}
}

func (r *relaySockets) forget(c *relayConn) {
	r.mu.Lock()
	delete(r.byAddr, c.addr)
	r.mu.Unlock()
	for _, ch := range *c.channels.Load() {
		ch.via.forget(c)
	}
}

// relayConn is one allocation's relay socket. The per-packet path takes no
// lock shared with other allocations or the control plane and allocates
// nothing.
type relayConn struct {
	net.PacketConn
	owner   *relaySockets
	addr    net.Addr
	policy  *PeerPolicy
	m       *metrics
	refused func(class string)
	in, out *bucket // nil without a cap
	// sock sends with netip addresses; reader reads with them for
	// readFast; polled is set instead when a udppoll.Set reads the socket.
	// Without any of them pion's net.Addr path is used.
	sock   udpWriter
	reader udpSocket
	polled *polledSocket
	buf    []byte // readFast's, used by pion's one reader of the socket

	// permitted and channels are copied on write: they change every few
	// minutes, datagrams arrive thousands of times a second.
	permMu    sync.Mutex
	permitted atomic.Pointer[[]netip.Addr]
	channels  atomic.Pointer[[]peerChannel]
	closeOnce sync.Once
}

func (c *relayConn) setPermitted(ip netip.Addr, granted bool) {
	c.permMu.Lock()
	defer c.permMu.Unlock()
	cur := *c.permitted.Load()
	has := slices.Contains(cur, ip)
	switch {
	case granted && !has:
		next := append(slices.Clip(cur), ip)
		c.permitted.Store(&next)
	case !granted && has:
		next := slices.DeleteFunc(slices.Clone(cur), func(a netip.Addr) bool { return a == ip })
		c.permitted.Store(&next)
	}
}

// WriteTo sends a client's datagram to a peer. pion only calls it for a
// peer holding a permission, which the gate and the PermissionHandler
// granted under the policy; checking again here keeps the policy true
// even if a future pion path skipped them.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errNotUDPAddr
	}
	return c.send(p, ua.AddrPort(), addr)
}

// send is WriteTo for pion and for the channel fast path, which only runs
// with c.sock and passes no addr.
func (c *relayConn) send(p []byte, peer netip.AddrPort, addr net.Addr) (int, error) {
	if allowed, class := c.policy.Check(peer.Addr()); !allowed {
		c.refused(class)
		return 0, errPeerRefused
	}
	if c.out != nil && !c.out.allow(len(p)) {
		c.m.toPeerDrops.Inc()
		return len(p), nil // lost, as on a congested link
	}
	var n int
	var err error
	if c.sock != nil {
		n, err = c.sock.WriteToUDPAddrPort(p, peer)
	} else {
		n, err = c.PacketConn.WriteTo(p, addr)
	}
	if err == nil {
		c.m.toPeerBytes.Add(float64(n))
		c.m.toPeerPackets.Inc()
	}
	return n, err
}

// ReadFrom returns the next datagram from a permitted peer that pion must
// relay: one without a channel, or any with a socket the fast path cannot
// use. Datagrams from anyone else are dropped here, as pion would drop
// them, before they can use up the allocation's bandwidth or count as
// relayed.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.polled != nil {
		return c.polled.ReadFrom(p)
	}
	if c.reader != nil {
		return c.readFast(c.reader, p)
	}
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(ua.IP)
		if c.admit(ip.Unmap(), n) {
			return n, addr, nil
		}
	}
}

// admit reports whether an n-byte datagram from ip may be relayed: ip
// holds a permission and the allocation's cap has room. It counts what it
// admits.
func (c *relayConn) admit(ip netip.Addr, n int) bool {
	if !slices.Contains(*c.permitted.Load(), ip) {
		return false
	}
	if c.in != nil && !c.in.allow(n) {
		c.m.fromPeerDrops.Inc()
		return false
	}
	c.m.fromPeerBytes.Add(float64(n))
	c.m.fromPeerPackets.Inc()
	return true
}

func (c *relayConn) Close() error {
	c.closeOnce.Do(func() { c.owner.forget(c) })
	return c.PacketConn.Close()
}

// minBurst lets a full-size datagram through however low the cap.
const minBurst = 1600

// bucket is a token bucket in bytes: rate bytes per second, with a burst
// of one second's worth. Each direction of each allocation has its own,
// used by one pion goroutine, so its lock is not contended.
type bucket struct {
	now   func() time.Time
	rate  float64
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newBucket(bitsPerSecond int64, now func() time.Time) *bucket {
	rate := float64(bitsPerSecond) / 8
	burst := max(rate, minBurst)
	return &bucket{now: now, rate: rate, burst: burst, tokens: burst, last: now()}
}

// allow takes n bytes' worth of tokens, or reports that the datagram is
// over the cap.
func (b *bucket) allow(n int) bool {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}
