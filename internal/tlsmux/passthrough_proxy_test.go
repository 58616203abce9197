package tlsmux_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/proxyproto"
	"github.com/openconsult/openconsult/internal/tlsmux"
)

// With ProxyHeader, a backend that trusts the Passthrough's address sees
// each client's own address, HTTP/1.1 and HTTP/2 alike.
func TestPassthroughNamesTheClientToTheBackend(t *testing.T) {
	names := newTestNames(t, "names")
	roots := names.roots
	site := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	}))
	// The site listens on 127.0.0.1 and trusts only the Passthrough, which
	// dials it from 127.0.0.1; clients come from 127.0.0.2.
	site.Listener = proxyproto.NewListener(site.Listener, proxyproto.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Required: true})
	site.EnableHTTP2 = true
	site.TLS = &tls.Config{Certificates: []tls.Certificate{names.cert(t, "site.test")}}
	site.StartTLS()
	t.Cleanup(site.Close)
	pt, err := tlsmux.NewPassthrough(listenLoopback(t), tlsmux.PassConfig{TLS: &tls.Config{Certificates: []tls.Certificate{names.cert(t, "turn.test")}},
		Backend: site.Listener.Addr().String(), ProxyHeader: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pt.Close() })
	from := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "site.test"}, ForceAttemptHTTP2: h2,
			DialContext: (&net.Dialer{LocalAddr: from}).DialContext}
		cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := cl.Get("https://" + pt.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		host, _, _ := net.SplitHostPort(string(body))
		if host != "127.0.0.2" {
			t.Fatalf("%s: the site saw the client at %q, want 127.0.0.2", resp.Proto, body)
		}
	}
	// Without the Passthrough, the same client is refused a forged header.
	conn, err := (&net.Dialer{LocalAddr: from}).Dial("tcp", site.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	forged := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: "site.test"})
	conn.Write(proxyproto.AppendV2(nil, netip.MustParseAddrPort("203.0.113.9:4444"), netip.MustParseAddrPort("127.0.0.1:443")))
	_ = forged.SetDeadline(time.Now().Add(10 * time.Second))
	if err := forged.Handshake(); err == nil {
		t.Fatal("the site completed a handshake after a forged PROXY header")
	}
}
