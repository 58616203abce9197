package media

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// RTCP packet types and formats the node acts on (RFC 4585).
const (
	rtcpRTPFB   = 205 // transport layer feedback
	rtcpPSFB    = 206 // payload-specific feedback
	rtcpFmtNack = 1   // generic NACK, in RTPFB
	rtcpFmtPLI  = 1   // picture loss indication, in PSFB
	rtcpFmtFIR  = 4   // full intra request, in PSFB
)

// onRTCP acts on one RTCP packet the subscriber sent about this track,
// read as it arrives (streams.go); reading it ran the
// interceptors' RTCP side: the lean estimator took in transport-wide
// feedback. NACKs are answered here from the track's sent log
// (nackcache.go). Keyframe requests (PLI, and FIR from older clients) go
// on to the publisher as a PLI for the layer this subscriber is on,
// throttled per layer by requestKeyframe.
//
// A packet is parsed only when it carries one of those: most of what a
// subscriber sends is transport-wide feedback and receiver reports, which
// pion's ReadRTCP would parse again, allocating, after the estimator read
// them.
func (d *downTrack) onRTCP(b []byte, rs *resender) {
	if !wantsAnswer(b) {
		return
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerNack:
			d.answerNack(p, rs)
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			l := d.current.Load()
			if l < 0 {
				l = d.target.Load()
			}
			d.pub.requestKeyframe(int(l))
		}
	}
}

// rtcpReaderFor reads the track's RTCP stream through pion's reader r,
// which runs the interceptors.
func (d *downTrack) rtcpReaderFor(ssrc uint32, r interceptor.RTCPReader) *streamReader {
	return &streamReader{kind: rtcpStreams, ssrc: ssrc, read: func(buf []byte, rs *resender) error {
		n, _, err := r.Read(buf, nil)
		if err != nil {
			return err
		}
		d.onRTCP(buf[:n], rs)
		return nil
	}}
}

// wantsAnswer reports whether a compound RTCP packet holds a NACK, a PLI
// or a FIR.
func wantsAnswer(b []byte) bool {
	for len(b) > 0 {
		pt, format, _, rest, ok := nextRTCP(b)
		if !ok {
			return true // malformed here: let the parser judge it all
		}
		switch {
		case pt == rtcpRTPFB && format == rtcpFmtNack,
			pt == rtcpPSFB && (format == rtcpFmtPLI || format == rtcpFmtFIR):
			return true
		}
		b = rest
	}
	return false
}

// publisherRTCPReader reads what a publisher sends about one layer of a
// track (rid "" for a track without simulcast), as it arrives
// (streams.go). The node acts on none of it itself, but reading is what runs the
// interceptors' RTCP side: the node's RTCP interceptor (rtcpsched.go)
// notes each sender report, so the receiver reports the node sends back
// carry the last one and the delay since it, from which the publisher
// computes its round-trip time; and the stream's queue is drained instead
// of holding reports nobody reads.
func publisherRTCPReader(receiver *webrtc.RTPReceiver, rid string, ssrc uint32) *streamReader {
	return &streamReader{kind: rtcpStreams, ssrc: ssrc, read: func(buf []byte, _ *resender) error {
		_, _, err := receiver.ReadSimulcast(buf, rid)
		return err
	}}
}
