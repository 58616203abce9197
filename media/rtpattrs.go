package media

import (
	"errors"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// headerCaches makes, for each peer connection, the innermost interceptor
// of every received stream: it parses each packet's RTP header once into
// a header the stream reuses, and hands it up the chain in an attributes
// map the stream also reuses. pion reads each packet with no attributes,
// so each interceptor above (receiver reports, TWCC feedback, the NACK
// generator) would otherwise make a map and parse a header of its own on
// every packet: three allocations per received packet.
//
// The header and the map are overwritten by the stream's next read. The
// interceptors above read them during the call and keep neither, and the
// SFU ignores the attributes Read returns.
//
// On the RTCP side, the receiver reports interceptor parses every compound
// packet read to find the publishers' sender reports; most of what is
// read is subscribers' transport-wide feedback and receiver reports. A
// compound without a sender report is marked as parsed with no packets,
// so nothing is parsed, and one with a sender report is left to it.
type headerCaches struct {
	key, rtcpKey any
	none         any // []rtcp.Packet(nil), boxed once
}

// newHeaderCaches finds the keys interceptor.Attributes caches a parsed
// RTP header and parsed RTCP packets under (unexported in pion), by
// letting it cache one of each.
func newHeaderCaches() (headerCaches, error) {
	var f headerCaches
	a := interceptor.Attributes{}
	if _, err := a.GetRTPHeader([]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		return f, err
	}
	for k := range a {
		f.key = k
	}
	clear(a)
	if _, err := a.GetRTCPPackets([]byte{0x80, rtcpReceiverReport, 0, 1, 0, 0, 0, 1}); err != nil {
		return f, err
	}
	for k := range a {
		f.rtcpKey = k
	}
	if f.key == nil || f.rtcpKey == nil || f.key == f.rtcpKey {
		return f, errNoHeaderKey
	}
	f.none = []rtcp.Packet(nil)
	return f, nil
}

// RTCP packet types of reports (RFC 3550).
const (
	rtcpSenderReport   = 200
	rtcpReceiverReport = 201
)

var errNoHeaderKey = errors.New("interceptor attributes cache no RTP header or RTCP packets")

func (f headerCaches) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &headerCache{headerCaches: f}, nil
}

type headerCache struct {
	interceptor.NoOp
	headerCaches
}

// BindRTCPReader marks compound packets without a sender report as
// parsed, with nothing in them. Each reader pion binds is read by one
// goroutine.
func (c *headerCache) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	attrs := interceptor.Attributes{}
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil || hasSenderReport(b[:n]) {
			return n, a, err
		}
		if a == nil {
			clear(attrs)
			a = attrs
		}
		if _, ok := a[c.rtcpKey]; !ok {
			a[c.rtcpKey] = c.none
		}
		return n, a, nil
	})
}

// hasSenderReport reports whether a compound RTCP packet holds a sender
// report, or cannot be read (then the interceptors judge it).
func hasSenderReport(b []byte) bool {
	for len(b) > 0 {
		pt, _, _, rest, ok := nextRTCP(b)
		if !ok || pt == rtcpSenderReport {
			return true
		}
		b = rest
	}
	return false
}

// BindRemoteStream wraps the stream's SRTP reader. Reads of one stream
// are serialised by pion (one reader per track), so the stream's header
// and map need no lock.
func (c *headerCache) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	var hdr rtp.Header
	attrs := interceptor.Attributes{}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			clear(attrs)
			a = attrs
		}
		if _, ok := a[c.key]; !ok {
			if _, err := hdr.Unmarshal(b[:n]); err == nil {
				a[c.key] = &hdr
			}
		}
		return n, a, nil
	})
}
