package tlsmux

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// Hello is what a client's ClientHello says before any TLS is terminated:
// the server name it asks for (SNI) and the protocols it offers (ALPN).
type Hello struct {
	ServerName string
	ALPN       []string
}

var errHelloRead = errors.New("tlsmux: ClientHello read")

// PeekHello reads a ClientHello from r without answering it, and returns
// what it says with every byte read, which whoever terminates the
// connection must receive first. crypto/tls parses the message: PeekHello
// runs a server handshake that stops as soon as the ClientHello is known.
func PeekHello(r io.Reader) (Hello, []byte, error) {
	var read bytes.Buffer
	var h Hello
	got := false
	cfg := &tls.Config{GetConfigForClient: func(ch *tls.ClientHelloInfo) (*tls.Config, error) {
		h, got = Hello{ServerName: ch.ServerName, ALPN: slices.Clone(ch.SupportedProtos)}, true
		return nil, errHelloRead
	}}
	err := tls.Server(helloConn{r: io.TeeReader(r, &read)}, cfg).Handshake()
	if !got {
		return Hello{}, read.Bytes(), fmt.Errorf("tlsmux: no TLS ClientHello: %w", err)
	}
	return h, read.Bytes(), nil
}

// ByHello decides from a ClientHello, before the handshake: ALPN offering
// "stun.turn" is TURN; ALPN offering anything else (h2, http/1.1,
// acme-tls/1) is HTTP; without ALPN (browsers offer none on TURN
// connections) a server name isTURN accepts, or none at all, is TURN and
// another name is HTTP.
func ByHello(h Hello, isTURN func(name string) bool) Kind {
	switch {
	case slices.Contains(h.ALPN, ALPNTURN):
		return TURN
	case len(h.ALPN) > 0:
		return HTTP
	case h.ServerName == "" || isTURN(h.ServerName):
		return TURN
	}
	return HTTP
}

// helloConn is the read side of a connection whose handshake must not
// answer: writes fail.
type helloConn struct{ r io.Reader }

func (c helloConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (helloConn) Write([]byte) (int, error)        { return 0, io.ErrClosedPipe }
func (helloConn) Close() error                     { return nil }
func (helloConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (helloConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (helloConn) SetDeadline(time.Time) error      { return nil }
func (helloConn) SetReadDeadline(time.Time) error  { return nil }
func (helloConn) SetWriteDeadline(time.Time) error { return nil }
