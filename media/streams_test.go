package media

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/pion/transport/v5/packetio"
)

// queueReader reads q in place of pion's reader for the stream, noting
// what it read.
type queueReader struct {
	q   *packetQueue
	mu  sync.Mutex
	got []byte
}

func (r *queueReader) read(buf []byte, _ *resender) error {
	if buf == nil {
		buf = make([]byte, maxPacket)
	}
	n, err := r.q.Read(buf)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.got = append(r.got, buf[:n]...)
	r.mu.Unlock()
	return nil
}

func (r *queueReader) read1() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.got...)
}

// TestConnStreams writes packets to the queues one connection's streams
// made, as pion's SRTP and SRTCP sessions do, and checks what is read and
// when: every packet of a stream with a reader, in order, on the writing
// goroutine itself; the backlog of a stream whose reader comes late, at
// once when its reader is attached with a read (a received layer), else
// with the stream's next packet (RTCP, attached under pion's locks);
// nothing of a stream without a reader.
func TestConnStreams(t *testing.T) {
	tests := []struct {
		name    string
		kind    packetio.BufferPacketType
		attach  string // "first", "late", "late-read" or ""
		extra   bool   // one more packet after a late attach
		want    int
		pending bool // packets left in the queue
	}{
		{"rtcp, reader first: every packet read", packetio.RTCPBufferPacket, "first", false, 5, false},
		{"rtcp, reader late: the backlog waits for the next packet", packetio.RTCPBufferPacket, "late", false, 0, true},
		{"rtcp, reader late: the next packet brings the backlog", packetio.RTCPBufferPacket, "late", true, 6, false},
		{"rtp, reader first: every packet read", packetio.RTPBufferPacket, "first", false, 5, false},
		{"rtp, reader late with a read: the backlog read at once", packetio.RTPBufferPacket, "late-read", false, 5, false},
		{"no reader: nothing read, the packets stay queued", packetio.RTCPBufferPacket, "", false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newConnStreams(newSRTPBuffers(newPacketPool()))
			const ssrc = 1234
			q := h.newBuffer(tt.kind, ssrc).(*packetQueue)
			other := h.newBuffer(tt.kind, ssrc+1).(*packetQueue)
			qr := &queueReader{q: q}
			r := &streamReader{kind: kindOf(tt.kind), ssrc: ssrc, read: qr.read}
			if tt.attach == "first" {
				h.attach(r)
			}
			for i := range 5 {
				if _, err := q.Write([]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				if _, err := other.Write([]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			switch tt.attach {
			case "late":
				h.attach(r)
			case "late-read":
				h.attachAndRead(r)
			}
			if tt.extra {
				if _, err := q.Write([]byte{5}); err != nil {
					t.Fatal(err)
				}
			}
			got := qr.read1()
			if len(got) != tt.want {
				t.Fatalf("read %d packets, want %d", len(got), tt.want)
			}
			for i, b := range got {
				if int(b) != i {
					t.Fatalf("packet %d read as %d: out of order", i, b)
				}
			}
			if q.pending() != tt.pending {
				t.Errorf("packets left queued: %v, want %v", q.pending(), tt.pending)
			}
			if !other.pending() {
				t.Error("the stream without a reader was read")
			}
		})
	}
}

// TestConnStreamsReaderEnds checks that a reader that fails, as pion's
// does once its stream is closed, is called no more, and that its end
// runs once; a received layer's stream that closes ends its reader by a
// read, although no packet comes.
func TestConnStreamsReaderEnds(t *testing.T) {
	tests := []struct {
		name  string
		kind  packetio.BufferPacketType
		close bool // close the queue instead of writing
		fail  error
	}{
		{"rtcp reader fails", packetio.RTCPBufferPacket, false, io.ErrUnexpectedEOF},
		{"rtp reader fails", packetio.RTPBufferPacket, false, io.ErrUnexpectedEOF},
		{"rtp stream closed", packetio.RTPBufferPacket, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newConnStreams(newSRTPBuffers(newPacketPool()))
				q := h.newBuffer(tt.kind, 7).(*packetQueue)
				calls := 0
				var ends atomic.Int32
				var endErr error
				r := &streamReader{kind: kindOf(tt.kind), ssrc: 7,
					read: func(buf []byte, _ *resender) error {
						calls++
						if tt.fail != nil {
							return tt.fail
						}
						_, err := q.Read(make([]byte, maxPacket))
						return err
					},
					ended: func(err error) { endErr = err; ends.Add(1) }}
				h.attachAndRead(r)
				if tt.close {
					q.Close()
				} else {
					for range 2 {
						if _, err := q.Write([]byte{1}); err != nil {
							t.Fatal(err)
						}
					}
				}
				synctest.Wait()
				if calls != 1 {
					t.Errorf("reader called %d times, want once", calls)
				}
				if n := ends.Load(); n != 1 {
					t.Fatalf("end ran %d times, want once", n)
				}
				want := tt.fail
				if want == nil {
					want = io.EOF
				}
				if !errors.Is(endErr, want) {
					t.Errorf("end got %v, want %v", endErr, want)
				}
				if q.reader.Load() != nil {
					t.Error("the reader is still attached")
				}
			})
		})
	}
}

// TestConnStreamsReadsAreSerialised writes to two RTP streams of one
// connection from two goroutines while a third attaches with a read:
// no two reads of the connection's RTP overlap, and every packet is read
// once.
func TestConnStreamsReadsAreSerialised(t *testing.T) {
	h := newConnStreams(newSRTPBuffers(newPacketPool()))
	qa := h.newBuffer(packetio.RTPBufferPacket, 1).(*packetQueue)
	qb := h.newBuffer(packetio.RTPBufferPacket, 2).(*packetQueue)
	var in atomic.Int32
	var overlap atomic.Bool
	var read atomic.Int32
	reader := func(q *packetQueue) func([]byte, *resender) error {
		return func([]byte, *resender) error {
			if in.Add(1) > 1 {
				overlap.Store(true)
			}
			defer in.Add(-1)
			if _, err := q.Read(make([]byte, maxPacket)); err != nil {
				return err
			}
			read.Add(1)
			return nil
		}
	}
	h.attach(&streamReader{kind: rtpStreams, ssrc: 1, read: reader(qa)})
	const n = 500
	var wg sync.WaitGroup
	for _, q := range []*packetQueue{qa, qb} {
		wg.Go(func() {
			for i := range n {
				if _, err := q.Write([]byte{byte(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() { h.attachAndRead(&streamReader{kind: rtpStreams, ssrc: 2, read: reader(qb)}) })
	wg.Wait()
	if overlap.Load() {
		t.Error("two reads of the connection's RTP overlapped")
	}
	if got := read.Load(); got != 2*n {
		t.Errorf("read %d packets, want %d", got, 2*n)
	}
}
