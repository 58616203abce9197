package main

import (
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/openconsult/openconsult/internal/testpki"
	"github.com/openconsult/openconsult/relay"
)

// prodArgs are the settings of a production site, to which the relay
// settings under test are added.
func prodArgs() []string {
	return []string{"-public-url", "https://consult.example-hospital.org", "-tls-cert", "c.pem", "-tls-key", "k.pem",
		"-master-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "-listen", "198.51.100.7:443"}
}

// loadProd loads prodArgs and args with the environment env, and checks
// that the settings are refused with an error that mentions every one of
// want, or accepted when want is empty.
func loadProd(t *testing.T, args []string, env map[string]string, want []string) {
	t.Helper()
	s := newSettings(io.Discard)
	err := s.load(append(prodArgs(), args...), func(k string) string { return env[k] })
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// localhostCert issues a server certificate for localhost from a new CA
// and returns its files.
func localhostCert(t *testing.T) (certFile, keyFile string) {
	return testpki.NewCA(t, "site").Issue(t, "localhost", true)
}

// embeddedRelay is the relay a -dev signal starts, with what browsers are
// told of it.
type embeddedRelay struct {
	*relay.Server
	stun, turn []string
	secret     []byte
}

// startEmbeddedRelay starts the embedded relay of a -dev signal with the
// extra settings args (without the TLS listener), closed with the test.
func startEmbeddedRelay(t *testing.T, args ...string) *embeddedRelay {
	t.Helper()
	s := newSettings(io.Discard)
	base := []string{"-dev", "-data-dir", t.TempDir(), "-relay-tls-listen", "off"}
	if err := s.load(append(base, args...), func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	public, _ := url.Parse("https://localhost:8443")
	r, stun, turnURLs, secret, err := startRelay(s, nil, public, nil, nil, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &embeddedRelay{Server: r, stun: stun, turn: turnURLs, secret: secret}
}

// credential returns the username and password a browser gets for the
// relay.
func (r *embeddedRelay) credential(member string) (user, pass string) {
	servers := iceServers(r.stun, r.turn, r.secret, time.Hour)(member, 0)
	return servers[1].Username, servers[1].Credential
}

// allocate makes a TURN allocation with the client cfg describes (realm
// localhost); the client and the allocation are closed with the test.
func allocate(t *testing.T, cfg turn.ClientConfig) net.PacketConn {
	t.Helper()
	cfg.Realm = "localhost"
	cl, err := turn.NewClient(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := cl.Allocate()
	if err != nil {
		t.Fatalf("Allocate through %s: %v", cfg.TURNServerAddr, err)
	}
	t.Cleanup(func() { relayed.Close() })
	return relayed
}

// udpConn listens on a UDP port of address ("127.0.0.1" or "[::1]"),
// closed with the test.
func udpConn(t *testing.T, network, address string) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket(network, address+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendToPeer sends msg through the allocation to a peer on 127.0.0.1 and
// returns where the peer heard it from.
func sendToPeer(t *testing.T, relayed net.PacketConn, msg string) net.Addr {
	t.Helper()
	peer := udpConn(t, "udp4", "127.0.0.1")
	if _, err := relayed.WriteTo([]byte(msg), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := peer.ReadFrom(buf)
	if err != nil || !slices.Equal(buf[:n], []byte(msg)) {
		t.Fatalf("peer read %q, %v; want %q", buf[:n], err, msg)
	}
	return from
}
