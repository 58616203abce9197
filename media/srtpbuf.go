package media

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/pion/transport/v5/deadline"
	"github.com/pion/transport/v5/packetio"
)

// Byte limits of one stream's read queue, as pion's own buffers have:
// what a stream whose reader falls behind may hold before it drops.
const (
	srtpQueueLimit  = 1_000_000
	srtcpQueueLimit = 100_000
)

// srtpBuffers is the node's SettingEngine.BufferFactory: every SRTP and
// SRTCP stream a peer connection receives queues its decrypted packets in
// buffers taken from one pool the whole node shares, and gives each back
// once read. pion's default, a packetio.Buffer per stream, grows to hold
// its longest backlog and never shrinks: after a few bursts on a busy
// machine, pion's buffers were half of the node's heap, most of it empty.
type srtpBuffers struct{ pool *sync.Pool }

func newSRTPBuffers() srtpBuffers {
	return srtpBuffers{pool: &sync.Pool{New: func() any { return new(queuedPacket) }}}
}

func (f srtpBuffers) new(kind packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
	limit := srtpQueueLimit
	if kind == packetio.RTCPBufferPacket {
		limit = srtcpQueueLimit
	}
	return &packetQueue{pool: f.pool, limit: limit, notify: make(chan struct{}, 1), deadline: deadline.New()}
}

// queuedPacket is one packet waiting in a queue.
type queuedPacket struct {
	buf [maxPacket]byte
	n   int
	big []byte // a packet longer than buf, rare
}

func (q *queuedPacket) bytes() []byte {
	if q.big != nil {
		return q.big
	}
	return q.buf[:q.n]
}

// packetQueue is one stream's queue: writes from the SRTP session's
// reader, reads from the stream's. Like packetio.Buffer, a write to a
// full queue fails with packetio.ErrFull (SRTP drops the packet), a read
// into too short a buffer with io.ErrShortBuffer, and a read after Close
// returns what is left and then io.EOF.
type packetQueue struct {
	pool     *sync.Pool
	limit    int
	notify   chan struct{}
	deadline *deadline.Deadline

	mu     sync.Mutex
	q      []*queuedPacket
	head   int
	size   int // bytes queued
	closed bool
}

func (b *packetQueue) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	if b.size+len(p) > b.limit {
		b.mu.Unlock()
		return 0, packetio.ErrFull
	}
	qp := b.pool.Get().(*queuedPacket)
	if len(p) > len(qp.buf) {
		qp.big = append([]byte(nil), p...)
	} else {
		qp.n = copy(qp.buf[:], p)
	}
	b.q = append(b.q, qp)
	b.size += len(p)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *packetQueue) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if b.head < len(b.q) {
			qp := b.q[b.head]
			data := qp.bytes()
			if len(data) > len(p) {
				b.mu.Unlock()
				return 0, io.ErrShortBuffer
			}
			n := copy(p, data)
			b.q[b.head] = nil
			b.head++
			b.size -= n
			if b.head == len(b.q) {
				b.drained()
			}
			b.mu.Unlock()
			qp.big, qp.n = nil, 0
			b.pool.Put(qp)
			return n, nil
		}
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		select {
		case <-b.notify:
		case <-b.deadline.Done():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// drained empties the queue's index; the caller holds mu. An index a
// burst grew large is let go, like the packets.
func (b *packetQueue) drained() {
	b.head = 0
	if cap(b.q) > 64 {
		b.q = nil
	} else {
		b.q = b.q[:0]
	}
}

// Close ends the queue: reads return what is left, then io.EOF.
func (b *packetQueue) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return nil
}

// SetReadDeadline bounds blocked and later reads, as on a net.Conn.
func (b *packetQueue) SetReadDeadline(t time.Time) error {
	b.deadline.Set(t)
	return nil
}
