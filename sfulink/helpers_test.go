package sfulink

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/testpki"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// pki is the link's CA with a node and a signal certificate.
type pki = testpki.Link

func newPKI(t testing.TB) *pki { return testpki.NewLink(t) }

func clientTLS(t testing.TB, p *pki) *tls.Config {
	t.Helper()
	cfg, err := ClientTLS(p.SignalCert, p.SignalKey, p.CA.File)
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

// suiteHeartbeat is the links' ping interval in the node suite, which
// tests media rather than liveness: its two port configurations run side
// by side, and under -race on a busy machine a link declared dead after
// 600 ms of silence was sometimes lost in the middle of a case.
const suiteHeartbeat = time.Second

func startNode(t testing.TB, p *pki, maxParticipants int) *testNode {
	t.Helper()
	cfg, err := ServerTLS(p.NodeCert, p.NodeKey, p.CA.File)
	if err != nil {
		t.Fatal(err)
	}
	return startNodeTLS(t, cfg, maxParticipants)
}

// startSuiteNode starts a node for the node suite, configured as c.
func startSuiteNode(t *testing.T, p *pki, c nodetest.Config) *testNode {
	t.Helper()
	cfg, err := ServerTLS(p.NodeCert, p.NodeKey, p.CA.File)
	if err != nil {
		t.Fatal(err)
	}
	return startNodeAt(t, cfg, c, "127.0.0.1:0", suiteHeartbeat)
}

func startNodeTLS(t testing.TB, cfg *tls.Config, maxParticipants int) *testNode {
	t.Helper()
	return startNodeAt(t, cfg, nodetest.Config{MaxParticipants: maxParticipants}, "127.0.0.1:0", testHeartbeat)
}

func startNodeAt(t testing.TB, cfg *tls.Config, c nodetest.Config, addr string, heartbeat time.Duration) *testNode {
	t.Helper()
	mc := media.Config{Log: quietLog(), Settings: nodetest.LoopbackSettings()}
	c.Apply(&mc)
	sfu, err := media.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{sfu: sfu, ln: ln, url: "wss://" + ln.Addr().String() + "/"}
	n.srv = NewServer(ServerConfig{Node: sfu, Log: quietLog(), Heartbeat: heartbeat})
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

func newTestClient(t testing.TB, url string, cfg *tls.Config) *Client {
	t.Helper()
	return newClientWith(t, url, cfg, testHeartbeat)
}

func newClientWith(t testing.TB, url string, cfg *tls.Config, heartbeat time.Duration) *Client {
	t.Helper()
	c, err := NewClient(t.Context(), ClientConfig{URL: url, TLS: cfg, Log: quietLog(), Heartbeat: heartbeat, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// startPool is a pool over nodes with the test PKI's client certificate;
// heartbeat 0 means DefaultHeartbeat.
func startPool(t *testing.T, p *pki, heartbeat time.Duration, nodes ...string) *Pool {
	t.Helper()
	pool, err := NewPool(t.Context(), PoolConfig{Nodes: nodes, TLS: clientTLS(t, p), Log: quietLog(), Heartbeat: heartbeat})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// joined is a node with one client whose member m_1 of c_1 has joined,
// the recorder of its events and a context for the test's further calls.
type joined struct {
	p   *pki
	n   *testNode
	c   *Client
	r   *recorder
	ctx context.Context
}

func joinedClient(t *testing.T) joined {
	t.Helper()
	j := joined{p: newPKI(t), r: newRecorder()}
	j.n = startNode(t, j.p, 0)
	j.c = newTestClient(t, j.n.url, clientTLS(t, j.p))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	j.ctx = ctx
	if _, err := j.c.Join(ctx, "c_1", "m_1", j.r); err != nil {
		t.Fatal(err)
	}
	return j
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
