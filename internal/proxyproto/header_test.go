package proxyproto_test

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
	"testing/iotest"

	"github.com/openconsult/openconsult/internal/proxyproto"
)

var (
	client4 = netip.MustParseAddrPort("203.0.113.9:51234")
	site4   = netip.MustParseAddrPort("198.51.100.7:443")
	client6 = netip.MustParseAddrPort("[2001:db8::9]:51234")
	site6   = netip.MustParseAddrPort("[2001:db8::7]:443")
)

func TestParseReadsBothVersions(t *testing.T) {
	unix := append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x31\x00\x04"), 1, 2, 3, 4)
	for _, tc := range []struct {
		name string
		in   []byte
		want proxyproto.Header
	}{
		{"v2 IPv4", proxyproto.AppendV2(nil, client4, site4), proxyproto.Header{Version: 2, Source: client4, Destination: site4}},
		{"v2 IPv6", proxyproto.AppendV2(nil, client6, site6), proxyproto.Header{Version: 2, Source: client6, Destination: site6}},
		{"v2 LOCAL", []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"), proxyproto.Header{Version: 2, Local: true}},
		{"v2 UNIX family", unix, proxyproto.Header{Version: 2, Local: true}},
		{"v2 IPv4 with a TLV", append(proxyproto.AppendV2(nil, client4, site4)[:15:15], append([]byte{12 + 4}, append(proxyproto.AppendV2(nil, client4, site4)[16:], 0x04, 0, 1, 0)...)...),
			proxyproto.Header{Version: 2, Source: client4, Destination: site4}},
		{"v1 TCP4", []byte("PROXY TCP4 203.0.113.9 198.51.100.7 51234 443\r\n"), proxyproto.Header{Version: 1, Source: client4, Destination: site4}},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::9 2001:db8::7 51234 443\r\n"), proxyproto.Header{Version: 1, Source: client6, Destination: site6}},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), proxyproto.Header{Version: 1, Local: true}},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"), proxyproto.Header{Version: 1, Local: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(bytes.Clone(tc.in), "\x16\x03\x01 and the rest"...)
			h, n, err := proxyproto.Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			if h != tc.want || n != len(tc.in) {
				t.Fatalf("got %+v, %d bytes; want %+v, %d", h, n, tc.want, len(tc.in))
			}
			for i := range len(tc.in) {
				if _, _, err := proxyproto.Parse(tc.in[:i]); !errors.Is(err, proxyproto.ErrIncomplete) {
					t.Fatalf("first %d bytes: %v, want ErrIncomplete", i, err)
				}
			}
		})
	}
}

func TestParseRefusesMalformedHeaders(t *testing.T) {
	v2 := proxyproto.AppendV2(nil, client4, site4)
	with := func(i int, v byte) []byte { b := bytes.Clone(v2); b[i] = v; return b }
	long := append(bytes.Clone(v2[:14]), 0x08, 0x00) // 2048 bytes of addresses
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"v2 version 3", with(12, 0x31)},
		{"v2 command 2", with(12, 0x22)},
		{"v2 IPv4 cut short", append(bytes.Clone(v2[:15]), 4, 1, 2, 3, 4)},
		{"v2 longer than the limit", long},
		{"v1 TCP5", []byte("PROXY TCP5 203.0.113.9 198.51.100.7 51234 443\r\n")},
		{"v1 family mismatch", []byte("PROXY TCP6 203.0.113.9 198.51.100.7 51234 443\r\n")},
		{"v1 port with a leading zero", []byte("PROXY TCP4 203.0.113.9 198.51.100.7 051234 443\r\n")},
		{"v1 port out of range", []byte("PROXY TCP4 203.0.113.9 198.51.100.7 65536 443\r\n")},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 2001:db8::7 1 443\r\n")},
		{"v1 missing field", []byte("PROXY TCP4 203.0.113.9 198.51.100.7 51234\r\n")},
		{"v1 without CRLF in 107 bytes", append([]byte("PROXY TCP4 "), bytes.Repeat([]byte{'1'}, 120)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := proxyproto.Parse(tc.in)
			if err == nil || errors.Is(err, proxyproto.ErrIncomplete) || errors.Is(err, proxyproto.ErrNoHeader) {
				t.Fatalf("Parse = %v, want an error", err)
			}
		})
	}
}

func TestParseTellsOtherProtocolsAtOnce(t *testing.T) {
	for _, in := range []string{"\x16\x03\x01\x02\x00", "GET / HTTP/1.1\r\n", "PROXZ", "\r\n\r\n\x00\r\nQUIZ"} {
		if _, _, err := proxyproto.Parse([]byte(in)); !errors.Is(err, proxyproto.ErrNoHeader) {
			t.Errorf("Parse(%q) = %v, want ErrNoHeader", in, err)
		}
	}
}

func TestAppendV1RoundTrips(t *testing.T) {
	for _, pair := range [][2]netip.AddrPort{{client4, site4}, {client6, site6}, {client4, site6}} {
		h, _, err := proxyproto.Parse(proxyproto.AppendV1(nil, pair[0], pair[1]))
		if err != nil {
			t.Fatal(err)
		}
		if h.Source.Addr().Unmap() != pair[0].Addr() || h.Destination.Port() != pair[1].Port() {
			t.Fatalf("%v -> %+v", pair, h)
		}
	}
}

// ReadHeader reads no further than the header's end, one byte at a time
// or all at once, and returns what it read beyond.
func TestReadHeaderKeepsTheBytesAfterIt(t *testing.T) {
	in := append(proxyproto.AppendV2(nil, client6, site6), "\x16\x03\x01"...)
	for name, r := range map[string]io.Reader{"whole": bytes.NewReader(in), "byte by byte": iotest.OneByteReader(bytes.NewReader(in))} {
		h, rest, err := proxyproto.ReadHeader(r)
		if err != nil || h.Source != client6 {
			t.Fatalf("%s: %+v, %v", name, h, err)
		}
		more, _ := io.ReadAll(r)
		if got := string(append(rest, more...)); got != "\x16\x03\x01" {
			t.Fatalf("%s: after the header %q", name, got)
		}
	}
	if _, rest, err := proxyproto.ReadHeader(bytes.NewReader([]byte("\x16\x03\x01"))); !errors.Is(err, proxyproto.ErrNoHeader) || string(rest) != "\x16\x03\x01" {
		t.Fatalf("no header: %q, %v", rest, err)
	}
	if _, _, err := proxyproto.ReadHeader(bytes.NewReader(in[:20])); err == nil {
		t.Fatal("a header cut short was accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(proxyproto.AppendV2(nil, client4, site4))
	f.Add(proxyproto.AppendV2(nil, client6, site6))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
	f.Add([]byte("PROXY TCP4 203.0.113.9 198.51.100.7 51234 443\r\nGET"))
	f.Add([]byte("PROXY TCP6 2001:db8::9 2001:db8::7 51234 443\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("\x16\x03\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := proxyproto.Parse(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with length %d", err, n)
			}
			return
		}
		if n < 15 || n > len(b) || n > proxyproto.MaxV2 || h.Version == 1 && n > proxyproto.MaxV1 {
			t.Fatalf("length %d of %d bytes (version %d)", n, len(b), h.Version)
		}
		if h.Local != (h.Source == netip.AddrPort{}) {
			t.Fatalf("Local %v with source %v", h.Local, h.Source)
		}
		// What was read is read the same from a stream, byte by byte.
		h2, rest, err := proxyproto.ReadHeader(iotest.OneByteReader(bytes.NewReader(b)))
		if err != nil || h2 != h || len(rest) != 0 {
			t.Fatalf("ReadHeader = %+v, %d left, %v; Parse = %+v", h2, len(rest), err, h)
		}
		if !h.Local {
			again, _, err := proxyproto.Parse(proxyproto.AppendV2(nil, h.Source, h.Destination))
			if err != nil || again.Source.Addr().Unmap() != h.Source.Addr().Unmap() || again.Destination.Port() != h.Destination.Port() {
				t.Fatalf("written again: %+v, %v; was %+v", again, err, h)
			}
		}
	})
}
