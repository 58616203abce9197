package media

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the SFU's Prometheus series. Labels are kinds and reasons
// only: room and member ids never become label values, so no consult can
// be traced through the metrics. Every child series is resolved once here,
// so the forwarding path only adds to counters it already holds.
type metrics struct {
	forwardedPackets [2]prometheus.Counter // by kindIndex
	forwardedBytes   [2]prometheus.Counter
	dropped          [2][numDropReasons]prometheus.Counter
	nackRetransmits  prometheus.Counter
	plisForwarded    prometheus.Counter
	plisThrottled    prometheus.Counter
	layerSwitches    prometheus.Counter
	speakerChanges   prometheus.Counter
}

const (
	kindAudio = 0
	kindVideo = 1
)

var kindNames = [2]string{"audio", "video"}

// Why a packet was not forwarded to a subscriber.
const (
	dropQueueFull     = iota // the subscriber's queue was full
	dropAwaitKeyframe        // after an overflow or before a layer switch, until a keyframe
	dropWriteError           // the subscriber's transport refused it
	dropStale                // older than the point the stream was resumed at
	dropNotReady             // the subscriber's transport was not set up yet
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"queue_full", "await_keyframe", "write_error", "stale", "not_ready"}

// newMetrics makes the series and registers them with reg when it is not
// nil; load is read at scrape time for the gauges.
func newMetrics(reg prometheus.Registerer, load func() Load) (*metrics, error) {
	fwdPkts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "sfu", Name: "forwarded_packets_total",
		Help: "RTP packets written to subscribers (the recorder included), by media kind.",
	}, []string{"kind"})
	fwdBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "sfu", Name: "forwarded_bytes_total",
		Help: "RTP payload and header bytes written to subscribers, by media kind.",
	}, []string{"kind"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "sfu", Name: "dropped_packets_total",
		Help: "RTP packets not forwarded to a subscriber, by media kind and reason.",
	}, []string{"kind", "reason"})
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Subsystem: "sfu", Name: name, Help: help})
	}
	m := &metrics{
		nackRetransmits: counter("nack_retransmits_total", "Packets retransmitted from the send cache in answer to subscribers' NACKs."),
		plisForwarded:   counter("keyframe_requests_total", "Keyframe requests (PLI) sent to publishers."),
		plisThrottled:   counter("keyframe_requests_throttled_total", "Keyframe requests not sent because one was sent for the same layer shortly before."),
		layerSwitches:   counter("layer_switches_total", "Simulcast layer switches of subscribers."),
		speakerChanges:  counter("speaker_changes_total", "Active speaker changes announced to rooms."),
	}
	for k, name := range kindNames {
		m.forwardedPackets[k] = fwdPkts.WithLabelValues(name)
		m.forwardedBytes[k] = fwdBytes.WithLabelValues(name)
		for r, reason := range dropReasonNames {
			m.dropped[k][r] = dropped.WithLabelValues(name, reason)
		}
	}
	if reg == nil {
		return m, nil
	}
	gauge := func(name, help string, f func(Load) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Subsystem: "sfu", Name: name, Help: help},
			func() float64 { return float64(f(load())) })
	}
	for _, c := range []prometheus.Collector{
		fwdPkts, fwdBytes, dropped, m.nackRetransmits, m.plisForwarded, m.plisThrottled, m.layerSwitches, m.speakerChanges,
		gauge("participants", "Participants connected to the node.", func(l Load) int { return l.Participants }),
		gauge("rooms", "Rooms with at least one participant on the node.", func(l Load) int { return l.Rooms }),
		gauge("tracks", "Tracks published on the node.", func(l Load) int { return l.Tracks }),
		gauge("recordings", "Rooms the node records.", func(l Load) int { return l.Recordings }),
	} {
		if err := reg.Register(c); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				return nil, fmt.Errorf("metrics: a media node is already registered with this registerer: %w", err)
			}
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}
