package relay

import (
	"net"
	"sync"
	"time"

	"github.com/pion/turn/v4"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	allocations   prometheus.Gauge
	authFailures  *prometheus.CounterVec
	peerRefusals  *prometheus.CounterVec
	quotaRefusals *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	packets       *prometheus.CounterVec
	dropped       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		allocations:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "turn_allocations", Help: "Allocations open now."}),
		authFailures:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "turn_auth_failures_total", Help: "Refused credentials by reason."}, []string{"reason"}),
		peerRefusals:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "turn_peer_refusals_total", Help: "Refused peer addresses by class."}, []string{"class"}),
		quotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "turn_quota_refusals_total", Help: "Allocations refused by quota."}, []string{"quota"}),
		bytes:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "turn_relayed_bytes_total", Help: "Bytes relayed, by direction."}, []string{"direction"}),
		packets:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "turn_relayed_packets_total", Help: "Packets relayed, by direction."}, []string{"direction"}),
		dropped:       prometheus.NewCounter(prometheus.CounterOpts{Name: "turn_bandwidth_drops_total", Help: "Packets dropped by the per-allocation bandwidth cap."}),
	}
	if reg != nil {
		reg.MustRegister(m.allocations, m.authFailures, m.peerRefusals, m.quotaRefusals, m.bytes, m.packets, m.dropped)
	}
	return m
}

// meteredGenerator wraps pion's port-range generator so every relay socket
// counts its traffic and honours the bandwidth cap.
type meteredGenerator struct {
	inner   *turn.RelayAddressGeneratorPortRange
	metrics *metrics
	maxBPS  int64
}

func (g *meteredGenerator) Validate() error { return g.inner.Validate() }

func (g *meteredGenerator) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	conn, addr, err := g.inner.AllocatePacketConn(network, port)
	if err != nil {
		return nil, nil, err
	}
	mc := &meteredConn{PacketConn: conn,
		in: g.metrics.bytes.WithLabelValues("from_peer"), inPk: g.metrics.packets.WithLabelValues("from_peer"),
		out: g.metrics.bytes.WithLabelValues("to_peer"), outPk: g.metrics.packets.WithLabelValues("to_peer"),
		dropped: g.metrics.dropped}
	if g.maxBPS > 0 {
		mc.inBucket, mc.outBucket = newBucket(g.maxBPS), newBucket(g.maxBPS)
	}
	return mc, addr, nil
}

func (g *meteredGenerator) AllocateConn(network string, port int) (net.Conn, net.Addr, error) {
	return g.inner.AllocateConn(network, port)
}

// meteredConn is one allocation's relay socket. Counters are resolved once
// per allocation, so the per-packet path only adds to them.
type meteredConn struct {
	net.PacketConn
	in, inPk, out, outPk, dropped prometheus.Counter
	inBucket, outBucket           *bucket
}

func (c *meteredConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || c.inBucket == nil || c.inBucket.take(n) {
			if err == nil {
				c.in.Add(float64(n))
				c.inPk.Inc()
			}
			return n, addr, err
		}
		c.dropped.Inc() // over the cap: drop and read the next one
	}
}

func (c *meteredConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.outBucket != nil && !c.outBucket.take(len(p)) {
		c.dropped.Inc()
		return len(p), nil // dropped like a congested link would
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.out.Add(float64(n))
		c.outPk.Inc()
	}
	return n, err
}

// bucket is a token bucket in bytes: rate bytes per second, one second of
// burst. Each allocation has its own, so the lock is never contended by
// other allocations or the control plane.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	tokens float64
	last   int64 // unix nanoseconds
}

func newBucket(bitsPerSecond int64) *bucket {
	r := float64(bitsPerSecond) / 8
	return &bucket{rate: r, tokens: r, last: time.Now().UnixNano()}
}

func (b *bucket) take(n int) bool {
	now := time.Now().UnixNano()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.rate, b.tokens+float64(now-b.last)/1e9*b.rate)
	b.last = now
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}
