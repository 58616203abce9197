package media

import (
	"errors"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// headerCaches makes, for each peer connection, the innermost interceptor
// of every received stream: it parses each packet's RTP header once into
// a header the stream reuses, and hands it up the chain in an attributes
// map the stream also reuses. pion reads each packet with no attributes,
// so the node's RTCP interceptor above (rtcpsched.go) would otherwise
// make a map and parse a header on every packet.
//
// The header and the map are overwritten by the stream's next read. The
// interceptors above read them during the call and keep neither, and the
// SFU ignores the attributes Read returns.
type headerCaches struct {
	key any
}

// newHeaderCaches finds the key interceptor.Attributes caches a parsed
// RTP header under (unexported in pion), by letting it cache one.
func newHeaderCaches() (headerCaches, error) {
	var f headerCaches
	a := interceptor.Attributes{}
	if _, err := a.GetRTPHeader([]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		return f, err
	}
	for k := range a {
		f.key = k
	}
	if f.key == nil {
		return f, errNoHeaderKey
	}
	return f, nil
}

// RTCP packet types of reports (RFC 3550).
const (
	rtcpSenderReport   = 200
	rtcpReceiverReport = 201
)

var errNoHeaderKey = errors.New("interceptor attributes cache no RTP header")

func (f headerCaches) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &headerCache{headerCaches: f}, nil
}

type headerCache struct {
	interceptor.NoOp
	headerCaches
}

// BindRemoteStream wraps the stream's SRTP reader. Reads of one stream
// are serialised (pion's probe of a new stream, then the goroutine pion
// starts for the track, then the connection's reading lock, streams.go),
// so the stream's header and map need no lock.
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
