package media

import (
	"io"
	"sync"

	"github.com/pion/transport/v5/packetio"
)

// connStreams reads the streams one peer connection receives, RTP and
// RTCP, on the goroutine that queued their packets, instead of one
// blocked reader per stream.
//
// pion's SRTP and SRTCP sessions each have one goroutine that decrypts
// what the connection receives and queues each packet on its stream, in
// a queue the connection's buffer factory makes (srtpbuf.go). These
// queues are made here, so a write is followed, on the same goroutine,
// by reading the stream through pion's reader for it (which runs the
// interceptors' side of each packet: the node's own RTCP bookkeeping,
// the estimator's feedback, the publishers' sender reports) and acting
// on the packet: forwarding a publisher's RTP, answering a subscriber's
// NACK or keyframe request. A reader is only called while its queue holds
// a packet, so it never blocks; a packet waits for no other goroutine.
// A forwarded packet still goes to each subscriber's writer
// (connwriter.go), so a slow subscriber holds nothing up here.
//
// Readers: a received layer's RTP, attached by the goroutine pion starts
// for the layer once it has read what pion kept while probing the layer
// (session.go); a received layer's RTCP, once it arrives; a forwarded
// track's RTCP, once pion binds it (rtcp.go). A stream no reader claims is
// never read, as before: its RTCP queue stays at the small limit of an
// unread stream. Reads of one kind are serialised per connection, which
// costs nothing on the way in (one goroutine writes them all) and
// orders them with the reading that attaching a reader starts.
type connStreams struct {
	bufs srtpBuffers

	mu      sync.Mutex
	queues  [2]map[uint32]*packetQueue // by kind and SSRC: the newest
	readers [2]map[uint32]*streamReader

	reading [2]sync.Mutex // per kind: serialises the reads
	buf     []byte        // the RTCP reads' buffer, under reading[rtcpStreams]
	rs      resender      // the RTCP reads' resender state, likewise
}

// Stream kinds, as indexes.
const (
	rtpStreams  = 0
	rtcpStreams = 1
)

// streamReader reads one stream.
type streamReader struct {
	// read reads one packet of the stream through pion's reader and acts
	// on it; buf and rs are the connection's RTCP buffer and resender
	// state (nil for RTP, which is read into the node's packet pool). An
	// error ends the stream's reading.
	read func(buf []byte, rs *resender) error
	// ended, if set, runs once after read failed, on a goroutine of its
	// own: a received layer unpublishes there. A reader with ended holds
	// a count of the node's wait group from before it is attached until
	// ended returns, which owns that goroutine.
	ended func(error)

	kind int
	ssrc uint32
	done bool // under the connection's reading lock for the kind
}

func newConnStreams(bufs srtpBuffers) *connStreams {
	h := &connStreams{bufs: bufs, buf: make([]byte, maxPacket)}
	for k := range h.queues {
		h.queues[k] = map[uint32]*packetQueue{}
		h.readers[k] = map[uint32]*streamReader{}
	}
	return h
}

func kindOf(t packetio.BufferPacketType) int {
	if t == packetio.RTCPBufferPacket {
		return rtcpStreams
	}
	return rtpStreams
}

// newBuffer is the connection's SettingEngine.BufferFactory.
func (h *connStreams) newBuffer(t packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	b := h.bufs.newQueue(t)
	k := kindOf(t)
	b.onWrite = func() { h.drain(k, b) }
	if k == rtpStreams {
		// A closed stream gets no more writes: its reader learns of the
		// end by reading. pion closes the stream holding its own locks,
		// which pion's reader takes, so not here.
		b.onClose = func() {
			if b.reader.Load() != nil {
				go h.drain(k, b)
			}
		}
	}
	h.mu.Lock()
	h.queues[k][ssrc] = b // a stream opened again replaces the one closed
	if r := h.readers[k][ssrc]; r != nil {
		b.reader.Store(r)
	}
	h.mu.Unlock()
	return b
}

// queue is the newest queue of the stream, or nil.
func (h *connStreams) queue(kind int, ssrc uint32) *packetQueue {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.queues[kind][ssrc]
}

// attach makes r the reader of its stream. What the stream holds is read
// with its next packet: attaching may happen inside pion's binding of a
// track, under pion's locks, which reading takes.
func (h *connStreams) attach(r *streamReader) *packetQueue {
	if h == nil {
		return nil // a session made without a connection, in tests
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.readers[r.kind][r.ssrc] = r
	q := h.queues[r.kind][r.ssrc]
	if q != nil {
		q.reader.Store(r)
	}
	return q
}

// attachAndRead makes r the reader of its stream and reads what the
// stream holds, on the calling goroutine, which holds no lock of pion's.
func (h *connStreams) attachAndRead(r *streamReader) {
	if q := h.attach(r); q != nil {
		h.drain(r.kind, q)
	}
}

// detach ends the reading of r's stream by r, if r is still its reader.
func (h *connStreams) detach(r *streamReader) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readers[r.kind][r.ssrc] == r {
		delete(h.readers[r.kind], r.ssrc)
	}
	if q := h.queues[r.kind][r.ssrc]; q != nil {
		q.reader.CompareAndSwap(r, nil)
	}
}

// drain reads what q holds, and its end once closed, if it has a reader.
func (h *connStreams) drain(kind int, q *packetQueue) {
	r := q.reader.Load()
	if r == nil {
		return
	}
	h.reading[kind].Lock()
	err := h.readAll(r, q)
	h.reading[kind].Unlock()
	if err == nil {
		return
	}
	h.detach(r)
	if r.ended != nil {
		go r.ended(err)
	}
}

// readAll reads q through r while it holds a packet or is closed; the
// caller holds the reading lock of r's kind.
func (h *connStreams) readAll(r *streamReader, q *packetQueue) error {
	buf, rs := []byte(nil), (*resender)(nil)
	if r.kind == rtcpStreams {
		buf, rs = h.buf, &h.rs
	}
	for !r.done && q.readable() {
		if err := r.read(buf, rs); err != nil {
			r.done = true
			return err
		}
	}
	return nil
}
