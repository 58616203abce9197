package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/proxyproto"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/internal/testpki"
	"github.com/openconsult/openconsult/relay"
)

// One TLS port serves TURN with the relay's certificate and passes HTTPS,
// still encrypted, to a real HTTPS server with its own: coturn's
// turnutils_uclient and pion's client relay over TLS on the port, and a
// browser-like HTTP/2 client gets the site's page and certificate there.
func TestTLSPortSharedWithAnHTTPSBackend(t *testing.T) {
	uclient, err := exec.LookPath("turnutils_uclient")
	if err != nil && os.Getenv("CI") != "" {
		t.Fatal("turnutils_uclient not found; install Debian's coturn package")
	}
	roots, pair, turnCert, turnKey := sharePKI(t)
	site := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the site over "+r.Proto)
	}))
	site.EnableHTTP2 = true
	site.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	site.StartTLS()
	defer site.Close()

	shared := startSharing(t, turnCert, turnKey, site.Listener.Addr().String(), "-allow-peer", "127.0.0.1")

	t.Run("HTTPS client gets the site and its certificate", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "consult.test", RootCAs: roots}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + shared + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "the site over HTTP/2.0" || resp.TLS.PeerCertificates[0].VerifyHostname("consult.test") != nil {
			t.Fatalf("answer %q", body)
		}
	})
	t.Run("pion client over TLS with the relay's name", func(t *testing.T) {
		c, err := tls.Dial("tcp", shared, &tls.Config{ServerName: "turn.test", RootCAs: roots})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		user, pass := relay.MintCredential([]byte(testSecret), "g_tls", time.Hour, time.Now())
		cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: shared, Conn: turn.NewSTUNConn(c), Username: user, Password: pass, Realm: "openconsult"})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.Listen(); err != nil {
			t.Fatal(err)
		}
		relayed, err := cl.Allocate()
		if err != nil {
			t.Fatalf("Allocate over TLS on the shared port: %v", err)
		}
		relayed.Close()
	})
	t.Run("coturn's client over TLS", func(t *testing.T) {
		if uclient == "" {
			t.Skip("turnutils_uclient not found; install Debian's coturn package")
		}
		_, port, _ := net.SplitHostPort(shared)
		cctx, ccancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer ccancel()
		out, err := exec.CommandContext(cctx, uclient, "-S", "-t", "-y", "-c", "-X", "-n", "20", "-u", "g_interop", "-W", testSecret, "-p", port, "127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("turnutils_uclient: %v\n%s", err, out)
		}
		if text := string(out); !strings.Contains(text, "tot_recv_msgs=40") || !strings.Contains(text, "Total lost packets 0 ") {
			t.Fatalf("coturn's client did not get every message back over TLS:\n%s", text)
		}
	})
}

func TestHTTPSBackendSettings(t *testing.T) {
	env := map[string]string{"TURND_AUTH_SECRET": testSecret}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-tls-listen", "off", "-https-backend", "10.0.0.5:8443"}, "-tls-listen"},
		{[]string{"-tls-listen", ":443", "-tls-cert", "c", "-tls-key", "k", "-https-backend", "10.0.0.5"}, "not host:port"},
		{[]string{"-tls-listen", ":443", "-tls-cert", "c", "-tls-key", "k", "-https-backend", "127.0.0.1:443"}, "loop"},
		{[]string{"-tls-listen", ":443", "-tls-cert", "c", "-tls-key", "k", "-https-backend-proxy-protocol"}, "needs -https-backend"},
	}
	for _, tt := range tests {
		s := newSettings(io.Discard)
		err := s.load(append(tt.args, "-relay-ip", "192.0.2.10"), func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "-https-backend") {
			t.Errorf("%v: %v, want an error on -https-backend mentioning %q", tt.args, err, tt.want)
		}
	}
	s := newSettings(io.Discard)
	if err := s.load([]string{"-tls-listen", ":443", "-tls-cert", "c", "-tls-key", "k", "-https-backend", "10.0.0.5:8443", "-relay-ip", "192.0.2.10"}, func(k string) string { return env[k] }); err != nil {
		t.Errorf("a backend on another address: %v", err)
	}
}

// With -https-backend-proxy-protocol the site behind turnd, trusting
// turnd's address for PROXY headers, sees each client's own address.
func TestHTTPSBackendLearnsTheClientAddress(t *testing.T) {
	roots, pair, turnCert, turnKey := sharePKI(t)
	site := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	}))
	site.Listener = proxyproto.NewListener(site.Listener, proxyproto.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Required: true})
	site.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	site.StartTLS()
	defer site.Close()

	shared := startSharing(t, turnCert, turnKey, site.Listener.Addr().String(), "-https-backend-proxy-protocol")
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "consult.test", RootCAs: roots},
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + shared + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if host, _, _ := net.SplitHostPort(string(body)); host != "127.0.0.2" {
		t.Fatalf("the site saw the client at %q, want 127.0.0.2 (turnd dials from 127.0.0.1)", body)
	}
}

// sharePKI issues the site's certificate (consult.test) and the relay's
// (turn.test) from one test CA, and returns the CA's pool.
func sharePKI(t *testing.T) (roots *x509.CertPool, site tls.Certificate, turnCert, turnKey string) {
	t.Helper()
	ca := testpki.NewCA(t, "names")
	pem, _ := os.ReadFile(ca.File)
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	siteCert, siteKey := ca.IssueNamed(t, "consult.test")
	turnCert, turnKey = ca.IssueNamed(t, "turn.test")
	site, err := tls.LoadX509KeyPair(siteCert, siteKey)
	if err != nil {
		t.Fatal(err)
	}
	return roots, site, turnCert, turnKey
}

// startSharing runs turnd with TURN over TLS on a port it shares with the
// HTTPS site at backend, plus the extra flags, until the test ends, and
// returns the shared address.
func startSharing(t *testing.T, turnCert, turnKey, backend string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncbuf.Buffer{}
	done := make(chan error, 1)
	args := append([]string{"-listen", "127.0.0.1:0", "-tls-listen", "127.0.0.1:0", "-tls-cert", turnCert, "-tls-key", turnKey,
		"-https-backend", backend, "-metrics", "off", "-relay-ports", "40400-40500", "-log-format", "json"}, extra...)
	env := map[string]string{"TURND_AUTH_SECRET": testSecret}
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("turnd's log:\n%s", logs.String())
		}
	})
	var shared string
	eventually.True(t, 10*time.Second, "the relay listening line", func() bool {
		for line := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "relay listening" {
				shared, _ = m["tls"].(string)
			}
		}
		return shared != ""
	})
	return shared
}
