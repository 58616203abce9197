package tlsmux

import (
	"bytes"
	"crypto/tls"
	"net"
	"testing"
)

// FuzzPeekHello: whatever a client sends first, PeekHello returns without
// answering and hands back exactly the bytes it read, a prefix of the input.
func FuzzPeekHello(f *testing.F) {
	f.Add(clientHello(f, "turn.example-hospital.org", nil))
	f.Add(clientHello(f, "", []string{"h2", "http/1.1"}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, read, err := PeekHello(bytes.NewReader(in))
		if !bytes.HasPrefix(in, read) {
			t.Fatalf("returned %d bytes that are not what was read", len(read))
		}
		if err != nil && (h.ServerName != "" || h.ALPN != nil) {
			t.Fatalf("error %v with a hello %+v", err, h)
		}
	})
}

// clientHello records the first flight of a Go TLS client.
func clientHello(f *testing.F, name string, alpn []string) []byte {
	f.Helper()
	c, s := net.Pipe()
	go func() {
		_ = tls.Client(c, &tls.Config{ServerName: name, NextProtos: alpn, InsecureSkipVerify: true}).Handshake()
	}()
	var buf [4096]byte
	n, err := s.Read(buf[:])
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	c.Close()
	return buf[:n]
}

func TestPeekHelloReadsWhatTheClientAsks(t *testing.T) {
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		_ = tls.Client(c, &tls.Config{ServerName: "turn.example-hospital.org", NextProtos: []string{"stun.turn"}, InsecureSkipVerify: true}).Handshake()
		c.Close()
	}()
	h, read, err := PeekHello(s)
	if err != nil || h.ServerName != "turn.example-hospital.org" || len(h.ALPN) != 1 || h.ALPN[0] != "stun.turn" || len(read) < 40 || read[0] != 0x16 {
		t.Fatalf("PeekHello = %+v, %d bytes, %v", h, len(read), err)
	}
}
