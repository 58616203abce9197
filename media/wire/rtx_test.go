package wire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// rtxOf is the RTX packet (RFC 4588) that retransmits orig on stream
// ssrc with payload type pt and sequence number seq, padded by pad.
func rtxOf(t testing.TB, orig *rtp.Packet, ssrc uint32, pt uint8, seq uint16, pad byte) []byte {
	t.Helper()
	r := &rtp.Packet{Header: orig.Header.Clone(), Payload: binary.BigEndian.AppendUint16(nil, orig.SequenceNumber)}
	r.Payload = append(r.Payload, orig.Payload...)
	r.SSRC, r.PayloadType, r.SequenceNumber = ssrc, pt, seq
	if pad > 0 {
		r.Padding, r.PaddingSize = true, pad
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUnwrapRTX: a retransmission comes back as the packet it repairs,
// with its extensions, byte for byte; malformed ones are refused.
func TestUnwrapRTX(t *testing.T) {
	orig := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, PayloadType: 96, SequenceNumber: 4242, Timestamp: 9000, SSRC: 1111,
		Extension: true, ExtensionProfile: rtp.ExtensionProfileOneByte}, Payload: []byte{0x90, 0x80, 1, 2, 3, 4, 5}}
	if err := orig.SetExtension(1, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := orig.SetExtension(3, []byte{0, 7}); err != nil {
		t.Fatal(err)
	}
	want, err := orig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pkt  []byte
		ok   bool
	}{
		{"plain", rtxOf(t, orig, 2222, 97, 17, 0), true},
		{"padded", rtxOf(t, orig, 2222, 97, 18, 4), true},
		{"no original sequence number", rtxOf(t, &rtp.Packet{Header: orig.Header}, 2222, 97, 19, 0)[:len(want)-len(orig.Payload)+1], false},
		{"padding longer than the payload", func() []byte {
			b := rtxOf(t, orig, 2222, 97, 20, 4)
			b[len(b)-1] = 200
			return b
		}(), false},
		{"shorter than a header", []byte{0x80, 97, 0, 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h rtp.Header
			if _, err := h.Unmarshal(tt.pkt); err != nil && tt.ok {
				t.Fatal(err)
			}
			got, err := UnwrapRTX(tt.pkt, &h, orig.SSRC, orig.PayloadType)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("unwrapped\n%x\nwant\n%x", got, want)
			}
			var back rtp.Packet
			if err := back.Unmarshal(got); err != nil {
				t.Fatal(err)
			}
			if h.SequenceNumber != 4242 || h.SSRC != 1111 || h.PayloadType != 96 || h.Padding || !bytes.Equal(back.Payload, orig.Payload) {
				t.Fatalf("header after: %+v", h)
			}
		})
	}
}

// FuzzUnwrapRTX: no packet makes unwrapping panic or return anything but
// an RTP packet of the media stream.
func FuzzUnwrapRTX(f *testing.F) {
	orig := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, SSRC: 1}, Payload: []byte{1, 2, 3}}
	f.Add(rtxOf(f, orig, 2, 97, 5, 0))
	f.Add(rtxOf(f, orig, 2, 97, 5, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h rtp.Header
		if _, err := h.Unmarshal(b); err != nil {
			return
		}
		out, err := UnwrapRTX(b, &h, 1111, 96)
		if err != nil {
			return
		}
		var back rtp.Header
		if _, err := back.Unmarshal(out); err != nil {
			t.Fatalf("unwrapped %x does not parse: %v", out, err)
		}
		if back.SSRC != 1111 || back.PayloadType != 96 || back.Padding {
			t.Fatalf("unwrapped header %+v", back)
		}
	})
}
