package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// chunkConn delivers a byte stream a few bytes per Read.
type chunkConn struct {
	net.Conn
	data  []byte
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data[:min(c.chunk, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)     { return len(p), nil }
func (c *chunkConn) Close() error                    { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error { return nil }

func gatedStream(t testing.TB, data []byte, chunk int) *gatedConn {
	s := gateServer(t, testSecret)
	l := newGatedListener(nil, s, func() {})
	return &gatedConn{Conn: &chunkConn{data: data, chunk: chunk}, l: l, in: inspector{s: s, stream: true}, buf: make([]byte, inboundMTU)}
}

// readFrames reads the stream as pion's STUNConn does, frame by frame.
func readFrames(c *gatedConn) ([][]byte, error) {
	var frames [][]byte
	var stream []byte
	buf := make([]byte, 100) // smaller than some frames: Read must hand them over in parts
	for {
		n, err := c.Read(buf)
		stream = append(stream, buf[:n]...)
		for {
			l, ferr := frameLen(stream)
			if ferr != nil {
				return frames, ferr
			}
			if l == 0 || len(stream) < l {
				break
			}
			frames, stream = append(frames, stream[:l]), stream[l:]
		}
		if err != nil {
			if len(stream) > 0 {
				return frames, io.ErrUnexpectedEOF
			}
			return frames, err
		}
	}
}

func channelData(n int) []byte {
	f := []byte{0x40, 0x01, byte(n >> 8), byte(n)}
	f = append(f, bytes.Repeat([]byte{0xAB}, n)...)
	for len(f)%4 != 0 {
		f = append(f, 0) // padding on streams
	}
	return f
}

func TestGatedStreamFramesWhateverTheChunking(t *testing.T) {
	binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw
	indication := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		stun.RawAttribute{Type: stun.AttrData, Value: bytes.Repeat([]byte{1}, 300)}).Raw
	frames := [][]byte{binding, channelData(1), channelData(5), indication, channelData(1200), binding}
	var stream []byte
	for _, f := range frames {
		stream = append(stream, f...)
	}
	for _, chunk := range []int{1, 3, 7, 64, 1599, 100000} {
		got, err := readFrames(gatedStream(t, stream, chunk))
		if !errors.Is(err, io.EOF) {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if len(got) != len(frames) {
			t.Fatalf("chunk %d: %d frames, want %d", chunk, len(got), len(frames))
		}
		for i := range frames {
			if !bytes.Equal(got[i], frames[i]) {
				t.Fatalf("chunk %d: frame %d differs", chunk, i)
			}
		}
	}
}

func TestGatedStreamDropsOversizedFrames(t *testing.T) {
	big := channelData(inboundMTU) // pion drops what does not fit its buffer
	stream := append(append(channelData(8), big...), channelData(9)...)
	got, err := readFrames(gatedStream(t, stream, 512))
	if !errors.Is(err, io.EOF) || len(got) != 2 || !bytes.Equal(got[0], channelData(8)) || !bytes.Equal(got[1], channelData(9)) {
		t.Fatalf("got %d frames, %v; want the two small ones", len(got), err)
	}
}

func TestGatedStreamRefusesGarbage(t *testing.T) {
	for _, stream := range [][]byte{
		{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc}, // a TLS ClientHello on the plain port
		{0x00, 0x01, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef},       // STUN header without the magic cookie
		{0x80, 0x00, 0x00, 0x00},
	} {
		if _, err := readFrames(gatedStream(t, stream, 4)); !errors.Is(err, errNotTURNFrame) {
			t.Errorf("%q: %v, want errNotTURNFrame", stream, err)
		}
	}
}

func FuzzGatedStream(f *testing.F) {
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw, uint8(3))
	f.Add(append(channelData(3), channelData(2000)...), uint8(200))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		frames, _ := readFrames(gatedStream(t, stream, int(chunk)+1))
		total := 0
		for _, fr := range frames {
			l, err := frameLen(fr)
			if err != nil || l != len(fr) || l >= inboundMTU {
				t.Fatalf("frame of %d bytes with length %d, %v", len(fr), l, err)
			}
			total += l
		}
		if total > len(stream) {
			t.Fatalf("%d bytes of frames from a %d-byte stream", total, len(stream))
		}
	})
}

// repeatConn delivers the same frame for ever, a read at a time.
type repeatConn struct {
	net.Conn
	frame []byte
}

func (c *repeatConn) Read(p []byte) (int, error)      { return copy(p, c.frame), nil }
func (c *repeatConn) SetReadDeadline(time.Time) error { return nil }

// BenchmarkGatedStreamChannelData is the gate's per-frame work for a client
// on TCP or TLS: framing a ChannelData message and passing it on.
func BenchmarkGatedStreamChannelData(b *testing.B) {
	c := gatedStream(b, nil, 1)
	c.Conn = &repeatConn{frame: channelData(200)}
	p := make([]byte, inboundMTU)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Read(p); err != nil {
			b.Fatal(err)
		}
	}
}
