package media

import (
	"io"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/pion/transport/v5/packetio"
)

// TestRTCPHub writes RTCP to the queues one connection's hub made, as the
// SRTCP session does, and checks what its one goroutine reads: every
// packet of a stream with a reader, in order; a stream's backlog once its
// reader comes; nothing of a stream without one.
func TestRTCPHub(t *testing.T) {
	tests := []struct {
		name       string
		registered bool // before the packets come
		late       bool // registered after they came
		want       int
	}{
		{"reader registered first: every packet read", true, false, 5},
		{"reader registered after the packets: the backlog read", false, true, 5},
		{"no reader: nothing read, the packets stay queued", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newRTCPHub(newSRTPBuffers(newPacketPool()))
				done := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); h.run(done) }()
				defer func() { close(done); wg.Wait() }()

				const ssrc = 1234
				q := h.newBuffer(packetio.RTCPBufferPacket, ssrc)
				other := h.newBuffer(packetio.RTCPBufferPacket, ssrc+1)
				var mu sync.Mutex
				var got []byte
				r := &rtcpReader{read: func(buf []byte, _ *resender) error {
					n, err := q.Read(buf) // pion's reader for the stream, in place
					if err != nil {
						return err
					}
					mu.Lock()
					got = append(got, buf[:n]...)
					mu.Unlock()
					return nil
				}}
				if tt.registered {
					h.register(ssrc, r)
				}
				for i := range 5 {
					if _, err := q.Write([]byte{byte(i)}); err != nil {
						t.Fatal(err)
					}
					if _, err := other.Write([]byte{byte(i)}); err != nil {
						t.Fatal(err)
					}
				}
				if tt.late {
					h.register(ssrc, r)
				}
				synctest.Wait() // the hub has read what it will
				mu.Lock()
				defer mu.Unlock()
				if n := len(got); n != tt.want {
					t.Fatalf("read %d packets, want %d", n, tt.want)
				}
				for i, b := range got {
					if int(b) != i {
						t.Fatalf("packet %d read as %d: out of order", i, b)
					}
				}
				if !other.(*packetQueue).pending() {
					t.Error("the stream without a reader was read")
				}
			})
		})
	}
}

// TestRTCPHubReaderEnds checks that a reader that fails, as pion's does
// once its stream is closed, is not called again.
func TestRTCPHubReaderEnds(t *testing.T) {
	h := newRTCPHub(newSRTPBuffers(newPacketPool()))
	q := h.newBuffer(packetio.RTCPBufferPacket, 7)
	calls := 0
	r := &rtcpReader{read: func(buf []byte, _ *resender) error {
		calls++
		return io.EOF
	}}
	h.register(7, r)
	if _, err := q.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	var rs resender
	buf := make([]byte, maxPacket)
	h.drain(7, buf, &rs)
	h.drain(7, buf, &rs)
	if calls != 1 {
		t.Fatalf("reader called %d times, want once", calls)
	}
}
