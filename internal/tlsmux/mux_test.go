package tlsmux_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/tlsmux"
	"github.com/openconsult/openconsult/relay"
)

var secret = []byte("secret-of-the-shared-port-relay")

// sharedPort is an HTTPS server and a TURN relay on one loopback port.
type sharedPort struct {
	mux       *tlsmux.Mux
	roots     *x509.CertPool
	relay     *relay.Server
	serverTLS *tls.Config
}

func startSharedPort(t testing.TB, timeout time.Duration) *sharedPort {
	t.Helper()
	names := newTestNames(t, "site")
	cert := names.cert(t, "localhost")
	base := listenLoopback(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	m, err := tlsmux.New(base, tlsmux.Config{Timeout: timeout, TLS: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Mux.Close: %v", err)
		}
	})
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "site "+r.Proto)
	})}
	go srv.Serve(m.HTTP())
	t.Cleanup(func() { srv.Close() })

	cfg := relay.DefaultConfig()
	cfg.Realm, cfg.Listen, cfg.RelayBindIP = "localhost", "127.0.0.1:0", netip.MustParseAddr("127.0.0.1")
	cfg.Secrets, cfg.TLSListener = [][]byte{secret}, m.TURN()
	cfg.Policy.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &sharedPort{mux: m, roots: names.roots, relay: r, serverTLS: serverTLS}
}

func (p *sharedPort) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: p.roots, ServerName: "localhost", NextProtos: protos}
}

// allocateAndRelay allocates over TURN-over-TLS on the shared port and
// relays one datagram each way between the allocation and a peer.
func (p *sharedPort) allocateAndRelay(t *testing.T, protos ...string) {
	t.Helper()
	c, err := allocateOverTLS(p.mux.Addr().String(), p.tlsConfig(protos...), "patient")
	if err != nil {
		t.Fatalf("TURN over the shared port: %v", err)
	}
	defer c.Close()
	relayed := c.relayed
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relayed.WriteTo([]byte("from the patient"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "from the patient" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	if _, err := peer.WriteTo([]byte("to the patient"), from); err != nil {
		t.Fatal(err)
	}
	_ = relayed.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err = relayed.ReadFrom(buf); err != nil || string(buf[:n]) != "to the patient" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
}

func TestSharedPortRelaysTURNOverTLS(t *testing.T) {
	p := startSharedPort(t, 0)
	for _, tc := range []struct {
		name   string
		protos []string
	}{
		{"no ALPN, as browsers", nil},
		{"ALPN stun.turn", []string{"stun.turn"}},
	} {
		t.Run(tc.name, func(t *testing.T) { p.allocateAndRelay(t, tc.protos...) })
	}
}

func TestSharedPortServesHTTPS(t *testing.T) {
	p := startSharedPort(t, 0)
	url := "https://" + p.mux.Addr().String() + "/"
	for _, tc := range []struct {
		name      string
		transport *http.Transport
		want      string
	}{
		{"HTTP/2", &http.Transport{TLSClientConfig: p.tlsConfig(), ForceAttemptHTTP2: true}, "site HTTP/2.0"},
		{"HTTP/1.1", &http.Transport{TLSClientConfig: p.tlsConfig("http/1.1")}, "site HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.transport.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tc.transport, Timeout: 5 * time.Second}).Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tc.want {
				t.Fatalf("body %q, want %q", body, tc.want)
			}
		})
	}
	t.Run("HTTP/1.1 without ALPN", func(t *testing.T) {
		c, err := tls.Dial("tcp", p.mux.Addr().String(), p.tlsConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "site HTTP/1.1" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}

// A connection that completes no handshake, or sends nothing after it,
// is closed when the timeout runs out rather than holding a goroutine.
func TestSharedPortClosesSilentConnections(t *testing.T) {
	p := startSharedPort(t, 300*time.Millisecond)
	for _, tc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"no handshake", func() (net.Conn, error) { return net.Dial("tcp", p.mux.Addr().String()) }},
		{"nothing after the handshake", func() (net.Conn, error) { return tls.Dial("tcp", p.mux.Addr().String(), p.tlsConfig()) }},
		{"three bytes of a STUN header", func() (net.Conn, error) {
			c, err := tls.Dial("tcp", p.mux.Addr().String(), p.tlsConfig())
			if err == nil {
				_, err = c.Write([]byte{0, 1, 0})
			}
			return c, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			closed := make(chan error, 1)
			go func() {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := c.Read(make([]byte, 1))
				closed <- err
			}()
			var err2 error
			eventually.True(t, 5*time.Second, "the server closes the connection", func() bool {
				select {
				case err2 = <-closed:
					return true
				default:
					return false
				}
			})
			var ne net.Error
			if errors.As(err2, &ne) && ne.Timeout() {
				t.Fatalf("the connection was still open after 10s: %v", err2)
			}
		})
	}
}

func TestMuxCloseEndsPendingConnections(t *testing.T) {
	p := startSharedPort(t, time.Minute)
	c, err := net.Dial("tcp", p.mux.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() { p.mux.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a silent connection")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("pending connection not closed: %v", err)
	}
	if _, err := net.Dial("tcp", p.mux.Addr().String()); err == nil {
		t.Fatal("the shared port still accepts after Close")
	}
}

// Once the site's server closes the HTTP listener (a graceful shutdown),
// the shared port refuses new clients instead of completing their
// handshakes and resetting their requests.
func TestClosingTheHTTPListenerStopsAccepting(t *testing.T) {
	p := startSharedPort(t, 0)
	if err := p.mux.HTTP().Close(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.mux.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("the shared port still accepts with the HTTP listener closed")
	}
}
