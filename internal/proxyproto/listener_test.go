package proxyproto_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/proxyproto"
)

// The proxy dials from 127.0.0.1; another host on the loopback network
// dials from 127.0.0.2.
var (
	proxyAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	otherAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
)

func listen(t *testing.T, required bool, timeout time.Duration) *proxyproto.Listener {
	t.Helper()
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := proxyproto.NewListener(base, proxyproto.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Required: required, Timeout: timeout})
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// dialAndSend connects from the given local address and writes b.
func dialAndSend(t *testing.T, l net.Listener, from *net.TCPAddr, b []byte) net.Conn {
	t.Helper()
	c, err := (&net.Dialer{LocalAddr: from}).Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// accept returns the next connection, failing the test after 10 s.
func accept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(got)
			return
		}
		got <- c
	}()
	select {
	case c, ok := <-got:
		if !ok {
			t.Fatal("Accept failed")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// readAll reads what the server side receives until the client closes.
func readBody(t *testing.T, c net.Conn, n int) (string, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestTrustedProxyNamesTheClient(t *testing.T) {
	l := listen(t, true, 0)
	dialAndSend(t, l, proxyAddr, append(proxyproto.AppendV2(nil, client4, site4), "hello"...))
	c := accept(t, l)
	if got := c.RemoteAddr().String(); got != client4.String() {
		t.Fatalf("RemoteAddr %s, want the client %s", got, client4)
	}
	if got := c.LocalAddr().String(); got != site4.String() {
		t.Fatalf("LocalAddr %s, want %s", got, site4)
	}
	if body, err := readBody(t, c, 5); err != nil || body != "hello" {
		t.Fatalf("read %q, %v", body, err)
	}
}

func TestTrustedProxyVersion1AndLocal(t *testing.T) {
	l := listen(t, true, 0)
	dialAndSend(t, l, proxyAddr, []byte("PROXY TCP6 2001:db8::9 2001:db8::7 51234 443\r\nv1"))
	if c := accept(t, l); c.RemoteAddr().String() != client6.String() {
		t.Fatalf("version 1: RemoteAddr %s, want %s", c.RemoteAddr(), client6)
	}
	// A LOCAL header (the proxy's own health check) keeps the proxy's address.
	dialAndSend(t, l, proxyAddr, []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00local"))
	c := accept(t, l)
	if ap := c.RemoteAddr().(*net.TCPAddr).AddrPort(); ap.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("LOCAL: RemoteAddr %s, want the proxy's", ap)
	}
	if body, err := readBody(t, c, 5); err != nil || body != "local" {
		t.Fatalf("read %q, %v", body, err)
	}
}

// closedByServer reports whether the server closed the client's
// connection without an answer.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestTrustedProxyWithoutHeaderIsRefusedWhenRequired(t *testing.T) {
	l := listen(t, true, 0)
	c := dialAndSend(t, l, proxyAddr, []byte("\x16\x03\x01 a ClientHello"))
	// The refused connection is never handed out: the next one is.
	dialAndSend(t, l, proxyAddr, append(proxyproto.AppendV2(nil, client4, site4), "next"...))
	if got := accept(t, l); got.RemoteAddr().String() != client4.String() {
		t.Fatalf("accepted %s, want the connection with a header", got.RemoteAddr())
	}
	if !closedByServer(t, c) {
		t.Fatal("a trusted connection without the required header stayed open")
	}
}

func TestTrustedProxyWithoutHeaderKeepsItsAddressWhenOptional(t *testing.T) {
	l := listen(t, false, 0)
	dialAndSend(t, l, proxyAddr, []byte("\x16\x03\x01"))
	c := accept(t, l)
	if ap := c.RemoteAddr().(*net.TCPAddr).AddrPort(); ap.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("RemoteAddr %s, want the proxy's", ap)
	}
	if body, err := readBody(t, c, 3); err != nil || body != "\x16\x03\x01" {
		t.Fatalf("read %q, %v", body, err)
	}
}

func TestUntrustedAddressCannotForgeAHeader(t *testing.T) {
	l := listen(t, false, 0)
	for _, forged := range [][]byte{proxyproto.AppendV2(nil, client4, site4), proxyproto.AppendV1(nil, client4, site4)} {
		c := dialAndSend(t, l, otherAddr, append(forged, "\x16\x03\x01"...))
		s := accept(t, l)
		if ap := s.RemoteAddr().(*net.TCPAddr).AddrPort(); ap.Addr() != netip.MustParseAddr("127.0.0.2") {
			t.Fatalf("RemoteAddr %s, want the peer's own", ap)
		}
		if _, err := readBody(t, s, 1); err == nil {
			t.Fatal("a forged header was read as data")
		}
		if !closedByServer(t, c) {
			t.Fatal("the forging connection stayed open")
		}
	}
	// Without a header, an untrusted peer is served as it is.
	dialAndSend(t, l, otherAddr, []byte("\x16\x03\x01"))
	if body, err := readBody(t, accept(t, l), 3); err != nil || body != "\x16\x03\x01" {
		t.Fatalf("read %q, %v", body, err)
	}
}

// A trusted peer that sends nothing holds neither Accept nor a goroutine
// beyond the timeout.
func TestSilentProxyNeitherBlocksAcceptNorStays(t *testing.T) {
	l := listen(t, true, 300*time.Millisecond)
	silent := dialAndSend(t, l, proxyAddr, nil)
	half := dialAndSend(t, l, proxyAddr, proxyproto.AppendV2(nil, client4, site4)[:10])
	dialAndSend(t, l, proxyAddr, proxyproto.AppendV2(nil, client6, site6))
	if c := accept(t, l); c.RemoteAddr().String() != client6.String() {
		t.Fatalf("accepted %s first, want the connection that sent its header", c.RemoteAddr())
	}
	for _, c := range []net.Conn{silent, half} {
		if !closedByServer(t, c) {
			t.Fatal("a silent trusted connection stayed open past the timeout")
		}
	}
}

func TestCloseEndsPendingConnections(t *testing.T) {
	l := listen(t, true, time.Minute)
	c := dialAndSend(t, l, proxyAddr, nil)
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a silent connection")
	}
	if !closedByServer(t, c) {
		t.Fatal("pending connection not closed")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
}
