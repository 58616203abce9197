package media

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/deadline"
	"github.com/pion/transport/v5/packetio"
)

// Limits of one stream's read queue, in bytes of buffers held: what a
// stream whose reader falls behind may hold before it drops. RTP gets
// pion's own limit (1 MB of packets), RTCP 32 KiB (128 small packets,
// seconds of a subscriber's feedback; pion allows 100 kB).
//
// An RTCP stream nobody has read yet holds 4 KiB at most: pion hands a
// compound report to the stream of every SSRC it names, and opens a
// stream for each, read or not; the connection's streams (streams.go)
// read a subscriber's stream once pion binds its track, and each
// publisher layer's once the layer arrives, but a stream no track claims
// is never read. When publishers' RTCP was not read, their streams filled
// their queues to the limit: 3 MB of the heap in a run of ten consults
// at 32 KiB, more at pion's 100 kB.
const (
	srtpQueueLimit        = 1_000_000
	srtcpQueueLimit       = 32 << 10
	srtcpUnreadQueueLimit = 4 << 10
)

// srtpBuffers is the node's SettingEngine.BufferFactory: every SRTP and
// SRTCP stream a peer connection receives queues its decrypted packets in
// buffers taken from the pools of the node's packets (packetPool: 256,
// 640, 1,024 or 1,500 bytes, the smallest that holds the packet), and
// gives each back once read. pion's default, a packetio.Buffer per
// stream, grows to hold its longest backlog and never shrinks: after a
// few bursts on a busy machine, pion's buffers were a quarter of the
// node's heap, most of it empty. The shared UDP port's queues (udpmux.go)
// take their buffers from the same pools.
type srtpBuffers struct{ pool *packetPool }

func newSRTPBuffers(pool *packetPool) srtpBuffers { return srtpBuffers{pool: pool} }

func (f srtpBuffers) new(kind packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
	return f.newQueue(kind)
}

func (f srtpBuffers) newQueue(kind packetio.BufferPacketType) *packetQueue {
	b := &packetQueue{pools: f, limit: srtpQueueLimit, unreadLimit: srtpQueueLimit, notify: make(chan struct{}, 1), deadline: deadline.New()}
	if kind == packetio.RTCPBufferPacket {
		b.limit, b.unreadLimit = srtcpQueueLimit, srtcpUnreadQueueLimit
	}
	return b
}

// queuedPacket is one packet waiting in a queue, in a buffer of its size
// class or, longer than maxPacket, a slice of its own.
type queuedPacket struct {
	buf  []byte
	n    int
	huge bool
}

func (f srtpBuffers) get(p []byte) queuedPacket {
	if len(p) > maxPacket {
		return queuedPacket{buf: append([]byte(nil), p...), n: len(p), huge: true}
	}
	b := f.pool.bufFor(len(p))
	copy(b, p)
	return queuedPacket{buf: b, n: len(p)}
}

func (f srtpBuffers) put(q queuedPacket) {
	if !q.huge && q.buf != nil {
		f.pool.putBuf(q.buf)
	}
}

func (q queuedPacket) bytes() []byte { return q.buf[:q.n] }

// held is the memory the packet takes, counted against the limit.
func (q queuedPacket) held() int { return len(q.buf) }

// heldFor is the memory a packet of n bytes takes in a queue.
func heldFor(n int) int {
	switch {
	case n <= smallBuf:
		return smallBuf
	case n <= mediumBuf:
		return mediumBuf
	case n <= largeBuf:
		return largeBuf
	case n <= maxPacket:
		return maxPacket
	}
	return n
}

// packetQueue is one stream's queue: writes from the SRTP session's
// reader, reads from the stream's. Like packetio.Buffer, a write to a
// full queue fails with packetio.ErrFull (SRTP drops the packet), a read
// into too short a buffer with io.ErrShortBuffer, and a read after Close
// returns what is left and then io.EOF.
type packetQueue struct {
	pools       srtpBuffers
	limit       int
	unreadLimit int // until the first Read
	notify      chan struct{}
	deadline    *deadline.Deadline
	onWrite     func()                       // after each packet queued, if set (streams.go)
	onClose     func()                       // after Close, if set
	reader      atomic.Pointer[streamReader] // the stream's reader (streams.go)

	mu     sync.Mutex
	q      []queuedPacket
	head   int
	size   int // bytes of buffers held
	closed bool
	read   bool   // Read was called
	reads  uint64 // packets read
}

func (b *packetQueue) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	limit := b.limit
	if !b.read {
		limit = b.unreadLimit
	}
	if b.size+heldFor(len(p)) > limit {
		b.mu.Unlock()
		return 0, packetio.ErrFull
	}
	qp := b.pools.get(p)
	b.q = append(b.q, qp)
	b.size += qp.held()
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	if b.onWrite != nil {
		b.onWrite()
	}
	return len(p), nil
}

// pending reports whether a packet is queued.
func (b *packetQueue) pending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.head < len(b.q)
}

func (b *packetQueue) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		b.read = true
		if b.head < len(b.q) {
			qp := b.q[b.head]
			data := qp.bytes()
			if len(data) > len(p) {
				b.mu.Unlock()
				return 0, io.ErrShortBuffer
			}
			n := copy(p, data)
			b.q[b.head] = queuedPacket{}
			b.head++
			b.reads++
			b.size -= qp.held()
			if b.head == len(b.q) {
				b.drained()
			}
			b.mu.Unlock()
			b.pools.put(qp)
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

// readable reports whether a Read would return at once: a packet is
// queued, or the queue is closed.
func (b *packetQueue) readable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.head < len(b.q) || b.closed
}

// readCount is the number of packets read so far.
func (b *packetQueue) readCount() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads
}

// Close ends the queue: reads return what is left, then io.EOF.
func (b *packetQueue) Close() error {
	b.mu.Lock()
	was := b.closed
	b.closed = true
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	if !was && b.onClose != nil {
		b.onClose()
	}
	return nil
}

// SetReadDeadline bounds blocked and later reads, as on a net.Conn.
func (b *packetQueue) SetReadDeadline(t time.Time) error {
	b.deadline.Set(t)
	return nil
}
