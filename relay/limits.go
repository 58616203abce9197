package relay

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limits per client address. A clinic or a hospital puts many patients
// behind one NAT address, so the limits count per address but are set far
// above what one busy site needs; they stop one address from taking the
// relay's allocations or file descriptors in a burst. An IPv6 client
// counts by its /64, which one subscriber gets whole.

// Why the relay refused or ended a TCP or TLS connection, as counted.
const (
	closeAddressLimit = "address_limit" // the client address holds the most connections
	closeNoRequest    = "no_request"    // no handshake or first request in time
	closeNoAllocation = "no_allocation" // no allocation in time
)

const (
	// maxRateAddresses bounds the addresses whose allocation rate is
	// tracked at once; a bucket is forgotten once it has refilled.
	maxRateAddresses = 1 << 16
	sweepEvery       = 10 * time.Second
)

// clientKey is the address a per-address limit counts under: the IPv4
// address, or the /64 of an IPv6 one.
func clientKey(a net.Addr) (netip.Addr, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		return netip.Addr{}, false
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, ip.IsValid()
}

// allocationRate is a token bucket per client address for new allocations.
type allocationRate struct {
	rate  float64 // tokens a second; 0 means no limit
	burst float64

	mu        sync.Mutex
	buckets   map[netip.Addr]*rateBucket
	lastSweep time.Time
}

type rateBucket struct {
	tokens float64
	at     time.Time
}

func newAllocationRate(rate float64, burst int) *allocationRate {
	return &allocationRate{rate: rate, burst: float64(burst), buckets: map[netip.Addr]*rateBucket{}}
}

// allow takes a token for a new allocation from addr at now.
func (r *allocationRate) allow(addr net.Addr, now time.Time) bool {
	if r.rate <= 0 {
		return true
	}
	key, ok := clientKey(addr)
	if !ok {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[key]
	if b == nil {
		if len(r.buckets) >= maxRateAddresses || now.Sub(r.lastSweep) >= sweepEvery {
			r.sweep(now)
		}
		if len(r.buckets) >= maxRateAddresses {
			return false // every tracked address is still spending: refuse rather than forget one
		}
		b = &rateBucket{tokens: r.burst, at: now}
		r.buckets[key] = b
	}
	r.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (r *allocationRate) refill(b *rateBucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(r.burst, b.tokens+d.Seconds()*r.rate)
		b.at = now
	}
}

// sweep forgets the buckets that have refilled: they would start full.
func (r *allocationRate) sweep(now time.Time) {
	r.lastSweep = now
	for k, b := range r.buckets {
		r.refill(b, now)
		if b.tokens >= r.burst {
			delete(r.buckets, k)
		}
	}
}

// streamCount counts the TCP and TLS connections of each client address.
type streamCount struct {
	max int // 0 means no limit

	mu     sync.Mutex
	byAddr map[netip.Addr]int
}

func newStreamCount(max int) *streamCount {
	return &streamCount{max: max, byAddr: map[netip.Addr]int{}}
}

// acquire counts a new connection from addr, or reports false when addr
// already holds the most it may; release gives back what acquire took.
func (c *streamCount) acquire(addr net.Addr) (release func(), ok bool) {
	key, valid := clientKey(addr)
	if c.max <= 0 || !valid {
		return func() {}, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byAddr[key] >= c.max {
		return nil, false
	}
	c.byAddr[key]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.byAddr[key] <= 1 {
			delete(c.byAddr, key)
		} else {
			c.byAddr[key]--
		}
	}, true
}
