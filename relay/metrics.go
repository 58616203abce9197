package relay

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus collectors. Labels name directions,
// reasons and classes, never a user or an address.
type metrics struct {
	allocations     prometheus.Gauge
	authFailures    *prometheus.CounterVec // reason
	peerRefusals    *prometheus.CounterVec // class
	quotaRefusals   *prometheus.CounterVec // quota: user, total, address_rate
	drainRefusals   prometheus.Counter
	streamCloses    *prometheus.CounterVec // reason: address_limit, no_request, no_allocation
	bytes           *prometheus.CounterVec // direction: to_peer, from_peer
	packets         *prometheus.CounterVec // direction
	drops           *prometheus.CounterVec // direction
	totalDrops      *prometheus.CounterVec // direction
	lifetimeBounded prometheus.Counter
	streamPaced     prometheus.Counter

	// Resolved once, so the relay path adds to a counter without a lookup.
	toPeerBytes, toPeerPackets, toPeerDrops       prometheus.Counter
	fromPeerBytes, fromPeerPackets, fromPeerDrops prometheus.Counter
	toPeerTotalDrops, fromPeerTotalDrops          prometheus.Counter

	reg prometheus.Registerer
}

func newMetrics() *metrics {
	m := &metrics{
		allocations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "turn_allocations", Help: "TURN allocations open now."}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turn_auth_failures_total", Help: "Refused TURN credentials, by reason."}, []string{"reason"}),
		peerRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turn_peer_refusals_total", Help: "Peer addresses refused by the peer policy, by class."}, []string{"class"}),
		quotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turn_quota_refusals_total", Help: "Allocations refused by a quota (user, total or address_rate)."}, []string{"quota"}),
		drainRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turn_drain_refusals_total", Help: "Allocate requests refused because the relay is draining."}),
		streamCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turn_stream_closes_total", Help: "TCP and TLS connections the relay refused or ended, by reason: address_limit, no_request, no_allocation."}, []string{"reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turn_relayed_bytes_total", Help: "Payload bytes relayed, by direction."}, []string{"direction"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turn_relayed_packets_total", Help: "Packets relayed, by direction."}, []string{"direction"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turn_bandwidth_drops_total", Help: "Packets dropped by the per-allocation bandwidth cap, by direction."}, []string{"direction"}),
		lifetimeBounded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turn_lifetime_bounded_total", Help: "Allocate and Refresh requests whose LIFETIME was raised to the default or lowered to the maximum."}),
		streamPaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turn_tcp_paced_seconds_total", Help: "Time TCP allocations' connections with peers waited for the per-allocation or the relay-wide bandwidth cap, summed over connections."}),
		totalDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turn_total_bandwidth_drops_total", Help: "Packets dropped by the relay-wide bandwidth cap, by direction."}, []string{"direction"}),
	}
	m.toPeerBytes, m.fromPeerBytes = m.bytes.WithLabelValues("to_peer"), m.bytes.WithLabelValues("from_peer")
	m.toPeerPackets, m.fromPeerPackets = m.packets.WithLabelValues("to_peer"), m.packets.WithLabelValues("from_peer")
	m.toPeerDrops, m.fromPeerDrops = m.drops.WithLabelValues("to_peer"), m.drops.WithLabelValues("from_peer")
	m.toPeerTotalDrops, m.fromPeerTotalDrops = m.totalDrops.WithLabelValues("to_peer"), m.totalDrops.WithLabelValues("from_peer")
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.allocations, m.authFailures, m.peerRefusals, m.quotaRefusals, m.drainRefusals, m.streamCloses, m.bytes, m.packets, m.drops, m.totalDrops, m.lifetimeBounded, m.streamPaced}
}

// register adds the collectors to reg, all or none, so that a failed New
// leaves reg as it was.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				return fmt.Errorf("relay metrics: already registered (another relay on the same registry?): %w", err)
			}
			return fmt.Errorf("relay metrics: %w", err)
		}
	}
	m.reg = reg
	return nil
}

// unregister removes the collectors, so that a relay can be started again
// on the same registry after Close.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}
