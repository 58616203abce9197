package media

import (
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

// readRTCP reads what the subscriber sends about this track until the
// sender stops. Reading is what runs the interceptors' RTCP side: the
// lean estimator takes in transport-wide feedback while this loop reads.
// NACKs are answered here from the track's sent log (nackcache.go).
// Keyframe requests (PLI, and FIR from older clients) go on to the
// publisher as a PLI for the layer this subscriber is on, throttled per
// layer by requestKeyframe.
//
// It reads into a buffer of its own and parses a compound packet only
// when it carries one of those: most of what a subscriber sends is
// transport-wide feedback and receiver reports, which pion's ReadRTCP
// would parse again, allocating, after the estimator read them.
func (d *downTrack) readRTCP() {
	var rs resender
	buf := make([]byte, maxPacket)
	for {
		n, _, err := d.sender.Read(buf)
		if err != nil {
			return
		}
		if !wantsAnswer(buf[:n]) {
			continue
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				d.answerNack(p, &rs)
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				l := d.current.Load()
				if l < 0 {
					l = d.target.Load()
				}
				d.pub.requestKeyframe(int(l))
			}
		}
	}
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

// readPublisherRTCP reads what a publisher sends about one layer of a
// track (rid "" for a track without simulcast) until the track ends. The
// node acts on none of it itself, but reading is what runs the
// interceptors' RTCP side: the node's RTCP interceptor (rtcpsched.go)
// notes each sender report, so the receiver reports the node sends back
// carry the last one and the delay since it, from which the publisher
// computes its round-trip time; and the stream's queue is drained instead
// of holding reports nobody reads.
func readPublisherRTCP(receiver *webrtc.RTPReceiver, rid string) {
	buf := make([]byte, maxPacket)
	for {
		if _, _, err := receiver.ReadSimulcast(buf, rid); err != nil {
			return
		}
	}
}
