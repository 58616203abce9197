package media

import (
	"github.com/pion/rtcp"
)

// readRTCP reads what the subscriber sends about this track until the
// sender stops. Reading is what runs the interceptors' RTCP side: the
// lean estimator takes in transport-wide feedback while this loop reads. NACKs are
// answered here from the track's sent log (nackcache.go). Keyframe requests (PLI, and FIR from
// older clients) go on to the publisher as a PLI for the layer this
// subscriber is on, throttled per layer by requestKeyframe.
func (d *downTrack) readRTCP() {
	var rs resender
	for {
		pkts, _, err := d.sender.ReadRTCP()
		if err != nil {
			return
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
