package sfulink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a node's messages are refused as a flood.
const (
	// floodSessionEvents: more of a session's events waiting for its
	// receiver than signal holds; the session closes.
	floodSessionEvents = "session_events"
	// floodRecordingEvents: likewise for a recording's control messages;
	// the recording stops.
	floodRecordingEvents = "recording_events"
	// floodRecordingTracks: more live tracks than a recording takes; the
	// recording stops.
	floodRecordingTracks = "recording_tracks"
	// floodOversize: a message over MaxMessage; the link closes.
	floodOversize = "oversize"
)

var floodReasons = []string{floodSessionEvents, floodRecordingEvents, floodRecordingTracks, floodOversize}

// Metrics are the signal side's link metrics, shared by the clients of
// every node (ClientConfig.Metrics, PoolConfig.Metrics). Labels name
// reasons, never a node, a room or a member.
type Metrics struct {
	floods *prometheus.CounterVec // reason
}

// NewMetrics returns the link's metrics, registered with reg unless it is
// nil: sfulink_node_floods_total{reason}.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{floods: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sfulink_node_floods_total",
		Help: "Media nodes' messages refused as floods, by reason: session_events (more of a session's events waiting than signal holds; the session closes), recording_events and recording_tracks (more of a recording's control messages waiting, or more live tracks, than signal takes; the recording stops), oversize (a message over 512 KiB; the link closes).",
	}, []string{"reason"})}
	for _, r := range floodReasons {
		m.floods.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(m.floods); err != nil {
			return nil, fmt.Errorf("sfulink metrics: %w", err)
		}
	}
	return m, nil
}

// flood counts a flood for reason; nil Metrics count nothing.
func (m *Metrics) flood(reason string) {
	if m != nil {
		m.floods.WithLabelValues(reason).Inc()
	}
}
