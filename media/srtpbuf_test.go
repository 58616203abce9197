package media

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/pion/transport/v5/packetio"
)

// TestPacketQueue: packets come out whole and in order, a full queue
// refuses with packetio.ErrFull (SRTP then drops the packet), a short
// buffer with io.ErrShortBuffer, a deadline ends a blocked read, and
// after Close what is left is read before io.EOF.
func TestPacketQueue(t *testing.T) {
	b := newSRTPBuffers(newPacketPool()).new(packetio.RTCPBufferPacket, 1).(*packetQueue)
	_ = b.SetReadDeadline(time.Now())
	if _, err := b.Read(make([]byte, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of an empty queue past its deadline: %v", err)
	}
	_ = b.SetReadDeadline(time.Time{})
	big := make([]byte, 1200)
	n := 0
	for ; ; n++ {
		big[0] = byte(n)
		if _, err := b.Write(big); err != nil {
			if !errors.Is(err, packetio.ErrFull) {
				t.Fatalf("write %d: %v, want packetio.ErrFull", n, err)
			}
			break
		}
	}
	if n != srtcpQueueLimit/maxPacket {
		t.Fatalf("%d packets of 1,200 bytes queued, want %d: the limit counts the buffers held", n, srtcpQueueLimit/maxPacket)
	}
	if _, err := b.Read(make([]byte, 100)); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("short read: %v, want io.ErrShortBuffer", err)
	}
	out := make([]byte, maxPacket)
	for i := range n {
		m, err := b.Read(out)
		if err != nil || m != 1200 || out[0] != byte(i) {
			t.Fatalf("read %d: %d bytes, first %d, %v", i, m, out[0], err)
		}
	}
	if len(b.q) != 0 || b.head != 0 || b.size != 0 {
		t.Fatalf("a drained queue keeps %d entries from %d and %d bytes", len(b.q), b.head, b.size)
	}
	_ = b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := b.Read(out); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	_ = b.SetReadDeadline(time.Time{})
	if _, err := b.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if m, err := b.Read(out); m != 3 || err != nil {
		t.Fatalf("read after close: %d, %v; want the 3 bytes left", m, err)
	}
	if _, err := b.Read(out); !errors.Is(err, io.EOF) {
		t.Fatalf("read of a closed, empty queue: %v, want io.EOF", err)
	}
	if _, err := b.Write([]byte{1}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after close: %v, want io.ErrClosedPipe", err)
	}
}

// TestPacketQueueWakesABlockedReader: a read waiting on an empty queue
// returns the next packet written, and Close ends it.
func TestPacketQueueWakesABlockedReader(t *testing.T) {
	b := newSRTPBuffers(newPacketPool()).new(packetio.RTPBufferPacket, 1)
	got := make(chan error, 2)
	go func() {
		out := make([]byte, maxPacket)
		_, err := b.Read(out)
		got <- err
		_, err = b.Read(out)
		got <- err
	}()
	if _, err := b.Write([]byte{0x80, 1}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("blocked read: %v", err)
	}
	_ = b.Close()
	if err := <-got; !errors.Is(err, io.EOF) {
		t.Fatalf("read blocked at Close: %v, want io.EOF", err)
	}
}

// TestUnreadRTCPQueueStaysSmall: an RTCP stream nobody reads (a
// publisher's track's) keeps a few packets, not a reader's allowance.
func TestUnreadRTCPQueueStaysSmall(t *testing.T) {
	b := newSRTPBuffers(newPacketPool()).new(packetio.RTCPBufferPacket, 1).(*packetQueue)
	report := make([]byte, 100)
	for range 1000 {
		_, _ = b.Write(report)
	}
	if b.size > srtcpUnreadQueueLimit {
		t.Fatalf("an unread RTCP queue holds %d bytes, want at most %d", b.size, srtcpUnreadQueueLimit)
	}
	if b.size < srtcpUnreadQueueLimit-smallBuf {
		t.Fatalf("an unread RTCP queue holds only %d bytes", b.size)
	}
	rtp := newSRTPBuffers(newPacketPool()).new(packetio.RTPBufferPacket, 1).(*packetQueue)
	for range 100 {
		if _, err := rtp.Write(make([]byte, 1200)); err != nil {
			t.Fatalf("RTP before the first read: %v; the first packets must wait for the track's reader", err)
		}
	}
}
