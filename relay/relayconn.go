package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v5"

	"github.com/openconsult/openconsult/internal/udppoll"
)

var (
	errPeerRefused = errors.New("relay: peer refused by policy")
	errNotUDPAddr  = errors.New("relay: peer is not a UDP address")
	errNotTCPAddr  = errors.New("relay: peer is not a TCP address")
)

// relaySockets is the RelayAddressGenerator given to pion/turn. It opens
// every allocation's relay socket (in the event loops' Set where there is
// one, otherwise a socket of Go's poller) so that the socket enforces the
// peer policy on what it sends, only lets in datagrams from peers holding a
// permission, applies the bandwidth caps and counts traffic. pion/turn
// offers no per-packet hook; the relay socket is the one place every
// relayed datagram passes, on pion's path and on the channel fast path
// alike. TCP allocations (RFC 6062) get a listener and connections that
// refuse peers the policy forbids.
type relaySockets struct {
	v4, v6      relayFamily // v6 is unset without IPv6 relaying
	min, max    uint16
	poll        *udppoll.Set[datagramSink] // nil where the system has none
	policy      *PeerPolicy
	metrics     *metrics
	refused     func(class string)
	maxBPS      int64
	total       *sharedBucket // the server-wide cap; nil without one
	now         func() time.Time
	dialTimeout time.Duration
	closeFails  bool // Config.relayCloseFails

	// byAddr finds a socket from the relayed address pion reports in its
	// permission events: the very value AllocatePacketConn returned.
	mu     sync.Mutex
	byAddr map[net.Addr]*relayConn
	// streams are the per-allocation caps of TCP allocations, by relayed
	// address, which the connections a client asks for share.
	streams map[netip.AddrPort]*streamCap
	// listeners are the open listeners of TCP allocations.
	listeners map[*peerListener]struct{}
}

// relayFamily is where one address family's relay sockets bind and the
// address told to clients for them.
type relayFamily struct {
	bind, public netip.Addr
}

func (f relayFamily) ok() bool { return f.bind.IsValid() }

var (
	errNoFamily  = errors.New("relay: no relay address of this family")
	errNoPort    = errors.New("relay: no free relay port")
	errBadConfig = errors.New("relay: relay sockets need a bind address and a port range")
)

func (r *relaySockets) Validate() error {
	if !r.v4.ok() && !r.v6.ok() || r.min == 0 || r.max < r.min {
		return errBadConfig
	}
	return nil
}

// family returns the relay addresses for pion's network name ("udp4",
// "tcp6", ...).
func (r *relaySockets) family(network string) (relayFamily, error) {
	f := r.v4
	if strings.HasSuffix(network, "6") {
		f = r.v6
	}
	if !f.ok() {
		return f, errNoFamily
	}
	return f, nil
}

// ports calls try with random ports of the range, or only with want when
// pion asks for one (EVEN-PORT reservations), until it succeeds.
func (r *relaySockets) ports(want int, try func(port uint16) error) error {
	if want != 0 {
		return try(uint16(want))
	}
	span := int(r.max) - int(r.min) + 1
	for range relayPortTries {
		if try(uint16(int(r.min)+rand.IntN(span))) == nil {
			return nil
		}
	}
	return errNoPort
}

// relayPortTries is how many random ports of the range an allocation tries.
const relayPortTries = 32

func (r *relaySockets) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	fam, err := r.family(conf.Network)
	if err != nil {
		return nil, nil, err
	}
	// Everything deliver reads is set before the socket can receive.
	c := &relayConn{owner: r, policy: r.policy, m: r.metrics, refused: r.refused, total: r.total}
	c.permitted.Store(&[]netip.Addr{})
	c.channels.Store(&[]peerChannel{})
	if r.maxBPS > 0 {
		c.in, c.out = newBucket(r.maxBPS, r.now), newBucket(r.maxBPS, r.now)
	}
	var port uint16
	if r.poll != nil {
		c.polled = &polledSocket{pionQueue: newPionQueue(polledInbox)}
		err = r.ports(conf.RequestedPort, func(p uint16) error {
			sock, err := r.poll.Listen(netip.AddrPortFrom(fam.bind, p), c)
			if err == nil {
				c.polled.sock, c.polled.local = sock, net.UDPAddrFromAddrPort(sock.LocalAddr())
				port = sock.LocalAddr().Port()
			}
			return err
		})
		c.PacketConn, c.sock = c.polled, c.polled
	} else {
		err = r.ports(conf.RequestedPort, func(p uint16) error {
			conn, err := net.ListenUDP(conf.Network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.bind, p)))
			if err == nil {
				c.PacketConn, c.sock, c.reader = conn, conn, conn
				port = uint16(conn.LocalAddr().(*net.UDPAddr).Port)
			}
			return err
		})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("relay: %s relay socket: %w", conf.Network, err)
	}
	c.addr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.public, port))
	r.mu.Lock()
	r.byAddr[c.addr] = c
	r.mu.Unlock()
	return c, c.addr, nil
}

// AllocateListener opens the listener of a TCP allocation (RFC 6062),
// where peers connect to the client. Several sockets share its address,
// the connections the relay makes to peers, hence SO_REUSEADDR and
// SO_REUSEPORT.
func (r *relaySockets) AllocateListener(conf turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	fam, err := r.family(conf.Network)
	if err != nil {
		return nil, nil, err
	}
	lc := net.ListenConfig{Control: reusePort}
	var ln net.Listener
	err = r.ports(conf.RequestedPort, func(p uint16) error {
		var err error
		ln, err = lc.Listen(context.Background(), conf.Network, netip.AddrPortFrom(fam.bind, p).String())
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("relay: %s relay listener: %w", conf.Network, err)
	}
	key := netip.AddrPortFrom(fam.public, uint16(ln.Addr().(*net.TCPAddr).Port))
	pl := &peerListener{Listener: ln, s: r, cap: r.newStreamCap(key), key: key}
	r.mu.Lock()
	r.listeners[pl] = struct{}{}
	r.mu.Unlock()
	return pl, net.TCPAddrFromAddrPort(key), nil
}

// AllocateConn connects a TCP allocation to a peer, for a Connect request,
// from the allocation's relayed port. pion passes the relayed address,
// which behind a one-to-one NAT is not a local one; the relay binds the
// same port on its own address.
func (r *relaySockets) AllocateConn(conf turn.AllocateConnConfig) (net.Conn, error) {
	fam, err := r.family(conf.Network)
	if err != nil {
		return nil, err
	}
	peer, ok := conf.RemoteAddr.(*net.TCPAddr)
	local, ok2 := conf.LocalAddr.(*net.TCPAddr)
	if !ok || !ok2 {
		return nil, errNotTCPAddr
	}
	if allowed, class := r.policy.Check(peer.AddrPort().Addr()); !allowed {
		r.refused(class)
		return nil, errPeerRefused
	}
	d := net.Dialer{Timeout: r.dialTimeout, Control: reusePort,
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(fam.bind, uint16(local.Port)))}
	c, err := d.Dial(conf.Network, peer.String())
	if err != nil {
		return nil, fmt.Errorf("relay: connect to peer: %w", err)
	}
	return newPeerConn(c, r, r.streamCapOf(netip.AddrPortFrom(local.AddrPort().Addr().Unmap(), uint16(local.Port)))), nil
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

// closeAll closes every relay socket and TCP allocation listener still
// open. pion/turn's allocation manager stops closing its allocations at
// the first whose Close fails, and the rest would stay open, their
// goroutines waiting on their sockets; Server.Close closes them here.
func (r *relaySockets) closeAll() {
	r.mu.Lock()
	open := make([]io.Closer, 0, len(r.byAddr)+len(r.listeners))
	for _, c := range r.byAddr {
		open = append(open, c)
	}
	for l := range r.listeners {
		open = append(open, l)
	}
	r.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

func (r *relaySockets) forget(c *relayConn) {
	r.mu.Lock()
	delete(r.byAddr, c.addr)
	r.mu.Unlock()
	for _, ch := range *c.channels.Load() {
		ch.via.forget(c)
	}
	c.closeDirect()
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
	in, out *bucket       // nil without a cap
	total   *sharedBucket // the server-wide cap; nil without one
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
	closing   bool // under permMu: no new connected sockets
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
	return c.sendAllowed(p, peer, addr)
}

// sendAllowed is send to a peer the policy was asked about already: the
// peer of a channel, checked once when the channel was bound (the policy
// does not change while the relay runs).
func (c *relayConn) sendAllowed(p []byte, peer netip.AddrPort, addr net.Addr) (int, error) {
	return c.sendVia(c.sock, p, peer, addr)
}

// sendVia is sendAllowed on w, the relay socket or a channel's socket
// connected to peer.
func (c *relayConn) sendVia(w udpWriter, p []byte, peer netip.AddrPort, addr net.Addr) (int, error) {
	if c.out != nil && !c.out.allow(len(p)) {
		c.m.toPeerDrops.Inc()
		return len(p), nil // lost, as on a congested link
	}
	if c.total != nil && !c.total.allow(toPeer, len(p)) {
		c.m.toPeerTotalDrops.Inc()
		return len(p), nil
	}
	var n int
	var err error
	if w != nil {
		n, err = w.WriteToUDPAddrPort(p, peer)
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
	if c.total != nil && !c.total.allow(fromPeer, n) {
		c.m.fromPeerTotalDrops.Inc()
		return false
	}
	c.m.fromPeerBytes.Add(float64(n))
	c.m.fromPeerPackets.Inc()
	return true
}

// Close closes the socket once; a later call (pion's and Server.Close's
// may meet) returns nil, so that pion does not take it for a failure.
func (c *relayConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.owner.forget(c)
		err = c.PacketConn.Close()
		if err == nil && c.owner.closeFails {
			err = errCloseFailed
		}
	})
	return err
}

// errCloseFailed is the failure Config.relayCloseFails makes Close report.
var errCloseFailed = errors.New("relay: relay socket close failed (test)")

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
// reserve takes n bytes' worth of tokens, running into debt if need be,
// and returns how long until the debt is paid: a stream's wait.
func (b *bucket) reserve(n int) time.Duration {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

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
