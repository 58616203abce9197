package media

import (
	"github.com/pion/rtcp"
)

// readRTCP reads what the subscriber sends about this track until the
// sender stops. Reading is what runs the interceptors' RTCP side: the NACK
// responder answers NACKs from its cache and GCC takes in transport-wide
// feedback while this loop reads. Keyframe requests (PLI, and FIR from
// older clients) go on to the publisher as a PLI for the layer this
// subscriber is on, throttled per layer by requestKeyframe.
func (d *downTrack) readRTCP() {
	for {
		pkts, _, err := d.sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
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
