package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/openconsult/openconsult/media/wire"
)

// wireStreams runs a connection's interceptor chain (the node's header
// cache, retransmitter, estimator and RTCP, engine.go) on the node's own
// transport, as pion's PeerConnection runs it on its SRTP sessions: each
// received stream is bound once with a reader at the bottom of the chain
// that returns the packet being delivered, so a packet goes up through
// the interceptors on the goroutine that decrypted it, and then to the
// stream's handler; each sent stream is bound with a writer at the bottom
// that encrypts and sends; RTCP both ways goes through the chain's one
// reader and one writer.
//
// It is the wire.Handler of its connection.
type wireStreams struct {
	conn  *wire.Conn
	chain interceptor.Interceptor
	rtcpW interceptor.RTCPWriter
	rtcpR interceptor.RTCPReader

	// onRTCP gets every RTCP packet received, after the chain read it;
	// onUnknown every RTP packet of an SSRC no stream is bound to (a
	// simulcast layer's first packets), which it may bind.
	onRTCP    func(p []byte)
	onUnknown func(p []byte, h *rtp.Header)

	mu     sync.RWMutex
	remote map[uint32]*wireRemote
	local  map[uint32]*interceptor.StreamInfo

	// The packet being delivered, for the readers at the bottom of the
	// chain; set and read on the delivering goroutine, which the
	// connection serialises.
	cur   []byte
	attrs interceptor.Attributes
	rbuf  []byte // what the chain's readers read into
}

// wireRemote is one bound received stream.
type wireRemote struct {
	info   *interceptor.StreamInfo
	reader interceptor.RTPReader
	onRTP  func(p []byte, a interceptor.Attributes)
}

var errNoPacket = errors.New("no packet being delivered")

func newWireStreams(chain interceptor.Interceptor) *wireStreams {
	w := &wireStreams{chain: chain, remote: map[uint32]*wireRemote{}, local: map[uint32]*interceptor.StreamInfo{},
		rbuf: make([]byte, maxPacket), attrs: interceptor.Attributes{}}
	w.rtcpR = chain.BindRTCPReader(interceptor.RTCPReaderFunc(w.readCurrent))
	return w
}

// attach starts the chain's RTCP writer on conn, which the chain's
// interceptors may write from then on (the node's RTCP scheduler starts
// writing for the connection here).
func (w *wireStreams) attach(conn *wire.Conn) {
	w.conn = conn
	w.rtcpW = w.chain.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		raw, err := rtcp.Marshal(pkts)
		if err != nil {
			return 0, fmt.Errorf("rtcp: %w", err)
		}
		return len(raw), conn.WriteRTCP(raw)
	}))
}

// readCurrent is the reader at the bottom of the chain: it returns the
// packet being delivered, once.
func (w *wireStreams) readCurrent(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	if w.cur == nil {
		return 0, a, errNoPacket
	}
	n := copy(b, w.cur)
	w.cur = nil
	if a == nil {
		a = w.attrs
	}
	return n, a, nil
}

func (w *wireStreams) rtpReader() interceptor.RTPReader {
	return interceptor.RTPReaderFunc(w.readCurrent)
}

// bindRemote binds a received stream; its packets go to onRTP after the
// chain, on the delivering goroutine.
func (w *wireStreams) bindRemote(info *interceptor.StreamInfo, onRTP func(p []byte, a interceptor.Attributes)) {
	r := &wireRemote{info: info, onRTP: onRTP}
	r.reader = w.chain.BindRemoteStream(info, w.rtpReader())
	w.mu.Lock()
	defer w.mu.Unlock()
	w.remote[info.SSRC] = r
}

func (w *wireStreams) unbindRemote(ssrc uint32) {
	w.mu.Lock()
	r := w.remote[ssrc]
	delete(w.remote, ssrc)
	w.mu.Unlock()
	if r != nil {
		w.chain.UnbindRemoteStream(r.info)
	}
}

// bindLocal binds a sent stream and returns its writer: through the
// chain, then encrypted and sent.
func (w *wireStreams) bindLocal(info *interceptor.StreamInfo) interceptor.RTPWriter {
	w.mu.Lock()
	w.local[info.SSRC] = info
	w.mu.Unlock()
	return w.chain.BindLocalStream(info, interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, _ interceptor.Attributes) (int, error) {
		return len(payload), w.conn.WriteRTP(h, payload)
	}))
}

func (w *wireStreams) unbindLocal(ssrc uint32) {
	w.mu.Lock()
	info := w.local[ssrc]
	delete(w.local, ssrc)
	w.mu.Unlock()
	if info != nil {
		w.chain.UnbindLocalStream(info)
	}
}

// writeRTCP sends pkts through the chain's writer.
func (w *wireStreams) writeRTCP(pkts []rtcp.Packet) error {
	if w.rtcpW == nil {
		return wire.ErrNotConnected
	}
	_, err := w.rtcpW.Write(pkts, nil)
	return err
}

// RTP implements wire.Handler.
func (w *wireStreams) RTP(p []byte, h *rtp.Header) {
	w.mu.RLock()
	r := w.remote[h.SSRC]
	w.mu.RUnlock()
	if r == nil {
		if w.onUnknown != nil {
			w.onUnknown(p, h)
		}
		return
	}
	clear(w.attrs)
	w.cur = p
	n, a, err := r.reader.Read(w.rbuf, w.attrs)
	w.cur = nil
	if err != nil {
		return
	}
	r.onRTP(w.rbuf[:n], a)
}

// RTCP implements wire.Handler.
func (w *wireStreams) RTCP(p []byte) {
	clear(w.attrs)
	w.cur = p
	n, _, err := w.rtcpR.Read(w.rbuf, w.attrs)
	w.cur = nil
	if err != nil || w.onRTCP == nil {
		return
	}
	w.onRTCP(w.rbuf[:n])
}

// forEachFeedback calls fn for each NACK, PLI and FIR in compound RTCP
// packet b, with the SSRC of the media stream it is about (a FIR's
// entries each name one), up to the first malformed packet.
// Transport-wide feedback and REMB are about the connection, not a
// stream, and the chain reads them.
func forEachFeedback(b []byte, fn func(ssrc uint32, pkt []byte)) {
	for len(b) > 0 {
		pt, format, pkt, rest, ok := nextRTCP(b)
		if !ok {
			return
		}
		b = rest
		switch {
		case pt == rtcpRTPFB && format == rtcpFmtNack, pt == rtcpPSFB && format == rtcpFmtPLI:
			if len(pkt) >= 12 {
				fn(binary.BigEndian.Uint32(pkt[8:]), pkt)
			}
		case pt == rtcpPSFB && format == rtcpFmtFIR:
			for fci := pkt[min(12, len(pkt)):]; len(fci) >= 8; fci = fci[8:] {
				fn(binary.BigEndian.Uint32(fci), pkt)
			}
		}
	}
}

// close ends the chain: the RTCP scheduler stops writing for the
// connection.
func (w *wireStreams) close() error {
	return w.chain.Close()
}
