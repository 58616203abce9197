package media

import (
	"io"
	"sync"

	"github.com/pion/transport/v5/packetio"
)

// rtcpHub reads all the RTCP one peer connection receives on one
// goroutine, instead of one blocked reader per forwarded track and per
// received layer.
//
// pion's SRTCP session splits each compound packet it decrypts and
// queues every part on the stream of each SSRC it names, in a queue the
// connection's buffer factory makes (srtpbuf.go). The hub makes those
// queues, so it learns of every write: the queue marks its SSRC ready,
// and the hub's loop reads the marked streams that have a reader, each
// through pion's reader for the stream, which runs the interceptors'
// RTCP side (the estimator's feedback, the publishers' sender reports)
// as a blocked reader did. A reader is only called while its queue holds
// a packet, so it never blocks.
//
// Readers: a forwarded track's, registered when pion binds it (its NACKs
// and keyframe requests, rtcp.go), and a received layer's, once the layer
// arrives. A stream no reader claims is never read, as before: its queue
// stays at the small limit of an unread stream.
type rtcpHub struct {
	bufs srtpBuffers
	wake chan struct{}

	mu      sync.Mutex
	queues  map[uint32]*packetQueue
	readers map[uint32]*rtcpReader
	ready   []uint32
	marked  map[uint32]bool
}

// rtcpReader reads one packet of a stream into buf and acts on it; an
// error ends the stream's reading.
type rtcpReader struct {
	read func(buf []byte, rs *resender) error
}

func newRTCPHub(bufs srtpBuffers) *rtcpHub {
	return &rtcpHub{bufs: bufs, wake: make(chan struct{}, 1), queues: map[uint32]*packetQueue{},
		readers: map[uint32]*rtcpReader{}, marked: map[uint32]bool{}}
}

// newBuffer is the connection's SettingEngine.BufferFactory.
func (h *rtcpHub) newBuffer(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	b := h.bufs.newQueue(kind)
	if kind == packetio.RTCPBufferPacket {
		b.onWrite = func() { h.mark(ssrc) }
		h.mu.Lock()
		h.queues[ssrc] = b // a stream opened again replaces the one closed
		h.mu.Unlock()
	}
	return b
}

// mark notes that ssrc's queue holds a packet.
func (h *rtcpHub) mark(ssrc uint32) {
	h.mu.Lock()
	if !h.marked[ssrc] {
		h.marked[ssrc] = true
		h.ready = append(h.ready, ssrc)
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// register makes read the reader of ssrc's stream, and reads what it
// already holds.
func (h *rtcpHub) register(ssrc uint32, r *rtcpReader) {
	if h == nil {
		return // a session made without a connection, in tests
	}
	h.mu.Lock()
	h.readers[ssrc] = r
	h.mu.Unlock()
	h.mark(ssrc)
}

// unregister ends the reading of ssrc's stream by r, if r is still the
// stream's reader.
func (h *rtcpHub) unregister(ssrc uint32, r *rtcpReader) {
	if h == nil {
		return
	}
	h.mu.Lock()
	if h.readers[ssrc] == r {
		delete(h.readers, ssrc)
	}
	h.mu.Unlock()
}

// run reads the ready streams until done is closed.
func (h *rtcpHub) run(done <-chan struct{}) {
	var rs resender
	buf := make([]byte, maxPacket)
	var ready []uint32
	for {
		select {
		case <-h.wake:
		case <-done:
			return
		}
		h.mu.Lock()
		ready, h.ready = h.ready, ready[:0]
		clear(h.marked)
		h.mu.Unlock()
		for _, ssrc := range ready {
			h.drain(ssrc, buf, &rs)
		}
	}
}

// drain reads what ssrc's queue holds, if the stream has a reader.
func (h *rtcpHub) drain(ssrc uint32, buf []byte, rs *resender) {
	h.mu.Lock()
	q, r := h.queues[ssrc], h.readers[ssrc]
	h.mu.Unlock()
	if q == nil || r == nil {
		return
	}
	for q.pending() {
		if err := r.read(buf, rs); err != nil {
			h.unregister(ssrc, r)
			return
		}
	}
}
