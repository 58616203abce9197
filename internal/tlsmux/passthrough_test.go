package tlsmux_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/tlsmux"
)

// passthroughPort is a Passthrough in front of a real HTTPS server, with
// certificates for two names from one CA.
type passthroughPort struct {
	pt    *tlsmux.Passthrough
	roots *x509.CertPool
}

func startPassthrough(t *testing.T, perAddress int) *passthroughPort {
	t.Helper()
	names := newTestNames(t, "names")
	site := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "site answered "+r.Proto)
	}))
	site.EnableHTTP2 = true
	site.TLS = &tls.Config{Certificates: []tls.Certificate{names.cert(t, "site.test")}}
	site.StartTLS()
	t.Cleanup(site.Close)
	turnCert := names.cert(t, "turn.test")
	pt, err := tlsmux.NewPassthrough(listenLoopback(t), tlsmux.PassConfig{TLS: &tls.Config{Certificates: []tls.Certificate{turnCert}},
		Backend: site.Listener.Addr().String(), PerAddress: perAddress, IsTURNName: func(n string) bool { return turnCert.Leaf.VerifyHostname(n) == nil }, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pt.Close() })
	// The TURN side echoes, standing in for the relay.
	go func() {
		for {
			c, err := pt.TURN().Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return &passthroughPort{pt: pt, roots: names.roots}
}

func TestPassthroughRoutesOnTheClientHello(t *testing.T) {
	p := startPassthrough(t, 0)
	tests := []struct {
		name     string
		sni      string
		alpn     []string
		wantCert string // the name the certificate presented is valid for
		wantTURN bool
	}{
		{"browser on the site", "site.test", []string{"h2", "http/1.1"}, "site.test", false},
		{"HTTP/1.1 client on the site", "site.test", []string{"http/1.1"}, "site.test", false},
		{"site name without ALPN", "site.test", nil, "site.test", false},
		{"browser TURN client: the relay's name, no ALPN", "turn.test", nil, "turn.test", true},
		{"TURN client without a name", "", nil, "turn.test", true},
		{"RFC 7443 client", "site.test", []string{"stun.turn"}, "turn.test", true},
		{"HTTP client at the relay's name", "turn.test", []string{"http/1.1"}, "site.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", p.pt.Addr().String(), &tls.Config{ServerName: tt.sni, NextProtos: tt.alpn, RootCAs: p.roots,
				InsecureSkipVerify: tt.sni == "" || tt.sni != tt.wantCert, MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.ConnectionState().PeerCertificates[0].VerifyHostname(tt.wantCert); err != nil {
				t.Fatalf("certificate presented: %v", err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if tt.wantTURN {
				msg := []byte("\x00\x01\x00\x00\x21\x12\xa4\x42 a binding request")
				c.Write(msg)
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
					t.Fatalf("TURN side echoed %q, %v", got, err)
				}
				return
			}
			if c.ConnectionState().NegotiatedProtocol == "h2" {
				return // the site negotiated HTTP/2 itself; requests are tested below
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
			body, _ := io.ReadAll(c)
			if !strings.Contains(string(body), "site answered HTTP/1.1") {
				t.Fatalf("site's answer %q", body)
			}
		})
	}
}

func TestPassthroughServesHTTP2FromTheBackend(t *testing.T) {
	p := startPassthrough(t, 0)
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "site.test", RootCAs: p.roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + p.pt.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "site answered HTTP/2.0" {
		t.Fatalf("answer %q", body)
	}
}

func TestPassthroughDropsWhatIsNotTLS(t *testing.T) {
	p := startPassthrough(t, 0)
	c, err := net.Dial("tcp", p.pt.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
		t.Fatalf("plain HTTP got %q, %v; want the connection closed without an answer", b, err)
	}
}

// Close ends the connections being passed to the backend.
func TestPassthroughCloseEndsPassedConnections(t *testing.T) {
	p := startPassthrough(t, 0)
	c, err := tls.Dial("tcp", p.pt.Addr().String(), &tls.Config{ServerName: "site.test", NextProtos: []string{"http/1.1"}, RootCAs: p.roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := p.pt.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("read after Close: %v; want the connection ended", err)
	}
}

// One client address may have only PerAddress connections at the backend:
// the backend sees them all at the Passthrough's address.
func TestPassthroughLimitsConnectionsPerAddress(t *testing.T) {
	p := startPassthrough(t, 2)
	dial := func() (*tls.Conn, error) {
		return tls.Dial("tcp", p.pt.Addr().String(), &tls.Config{ServerName: "site.test", NextProtos: []string{"http/1.1"}, RootCAs: p.roots})
	}
	var open []*tls.Conn
	for range 2 {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a third connection from one address reached the backend")
	}
	open[0].Close()
	// The slot frees once the Passthrough sees the connection end.
	eventually.True(t, 5*time.Second, "a connection after one closed", func() bool {
		c, err := dial()
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	open[1].Close()
	// TURN connections are the relay's to limit, not counted here.
	for range 3 {
		c, err := tls.Dial("tcp", p.pt.Addr().String(), &tls.Config{ServerName: "turn.test", RootCAs: p.roots})
		if err != nil {
			t.Fatalf("TURN connection: %v", err)
		}
		defer c.Close()
	}
}
