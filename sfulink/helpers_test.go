package sfulink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of the CA certificate
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), name+"-ca.pem")
	writePEM(t, file, "CERTIFICATE", der)
	return &testCA{cert: cert, key: key, file: file}
}

// issue makes a leaf certificate for 127.0.0.1 (server) or for a client,
// returning the certificate and key files.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pki is the link's CA with a node certificate and a signal client
// certificate.
type pki struct {
	ca                    *testCA
	nodeCert, nodeKey     string
	signalCert, signalKey string
}

func newPKI(t *testing.T) *pki {
	ca := newCA(t, "link")
	p := &pki{ca: ca}
	p.nodeCert, p.nodeKey = ca.issue(t, "sfu-1", true)
	p.signalCert, p.signalKey = ca.issue(t, "signal-1", false)
	return p
}

func (p *pki) clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := ClientTLS(p.signalCert, p.signalKey, p.ca.file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// quietLog discards logs unless SFULINK_TEST_LOG names a file to append
// them to, for debugging.
func quietLog() *slog.Logger {
	if name := os.Getenv("SFULINK_TEST_LOG"); name != "" {
		if f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
			return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testNode is a real media node behind a real link listener on loopback.
type testNode struct {
	sfu  *media.SFU
	srv  *Server
	http *http.Server
	ln   net.Listener
	url  string
	stop func() // the node dies: links drop, nothing listens
}

const testHeartbeat = 200 * time.Millisecond

func startNode(t *testing.T, p *pki, maxParticipants int) *testNode {
	t.Helper()
	cfg, err := ServerTLS(p.nodeCert, p.nodeKey, p.ca.file)
	if err != nil {
		t.Fatal(err)
	}
	return startNodeTLS(t, cfg, maxParticipants)
}

func startNodeTLS(t *testing.T, cfg *tls.Config, maxParticipants int) *testNode {
	t.Helper()
	return startNodeAt(t, cfg, maxParticipants, "127.0.0.1:0")
}

func startNodeAt(t *testing.T, cfg *tls.Config, maxParticipants int, addr string) *testNode {
	t.Helper()
	sfu, err := media.New(media.Config{Log: quietLog(), Settings: nodetest.LoopbackSettings(), MaxParticipants: maxParticipants})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{sfu: sfu, ln: ln, url: "wss://" + ln.Addr().String() + "/"}
	n.srv = NewServer(ServerConfig{Node: sfu, Log: quietLog(), Heartbeat: testHeartbeat})
	n.http = &http.Server{Handler: n.srv, TLSConfig: cfg, ErrorLog: slog.NewLogLogger(quietLog().Handler(), slog.LevelDebug)}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := n.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	n.stop = func() {
		n.http.Close()
		n.srv.Close()
		sfu.Close()
		wg.Wait()
	}
	t.Cleanup(n.stop)
	return n
}

func newTestClient(t *testing.T, url string, cfg *tls.Config) *Client {
	t.Helper()
	c, err := NewClient(t.Context(), ClientConfig{URL: url, TLS: cfg, Log: quietLog(), Heartbeat: testHeartbeat, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// recorder is a participant's events without a browser behind them.
type recorder struct {
	closed chan error
}

func newRecorder() *recorder { return &recorder{closed: make(chan error, 4)} }

func (r *recorder) Answer(string)  {}
func (r *recorder) Offer(string)   {}
func (r *recorder) Speaker(string) {}
func (r *recorder) Closed(err error) {
	select {
	case r.closed <- err:
	default:
	}
}

func (r *recorder) waitClosed(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-r.closed:
		return err
	case <-time.After(within):
		t.Fatalf("no Closed within %s", within)
		return nil
	}
}

// proxy forwards TCP to a node until it is cut: then it drops every
// packet silently in both directions, as a crashed host or a broken
// network does, and accepts nothing more.
type proxy struct {
	ln     net.Listener
	target string
	url    string

	mu    sync.Mutex
	cut   bool
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, url: "wss://" + ln.Addr().String() + "/"}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			down.Close()
			up.Close()
			continue
		}
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		p.wg.Go(func() { p.copy(up, down) })
		p.wg.Go(func() { p.copy(down, up) })
	}
}

func (p *proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if err != nil {
			if !cut { // after the cut, nothing tells the other side
				dst.Close()
			}
			return
		}
		if cut {
			continue // swallowed
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// cutOff blackholes the node: established connections stay open but
// silent, new ones are refused.
func (p *proxy) cutOff() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.ln.Close()
}
