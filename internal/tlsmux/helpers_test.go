package tlsmux_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/openconsult/openconsult/internal/testpki"
	"github.com/openconsult/openconsult/relay"
)

// testNames is a CA that clients trust, issuing server certificates.
type testNames struct {
	ca    *testpki.CA
	roots *x509.CertPool
}

func newTestNames(t testing.TB, caName string) *testNames {
	t.Helper()
	ca := testpki.NewCA(t, caName)
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &testNames{ca: ca, roots: roots}
}

// cert issues a server certificate for the DNS name.
func (n *testNames) cert(t testing.TB, name string) tls.Certificate {
	t.Helper()
	c, k := n.ca.IssueNamed(t, name)
	cert, err := tls.LoadX509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// listenLoopback listens on an ephemeral TCP port of 127.0.0.1.
func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// turnClient is a TURN client with an allocation, over a TLS connection.
type turnClient struct {
	conn    *tls.Conn
	client  *turn.Client
	relayed net.PacketConn
}

// allocateOverTLS connects to addr with cfg and makes a TURN allocation
// for member with a credential of the relay's secret.
func allocateOverTLS(addr string, cfg *tls.Config, member string) (*turnClient, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	user, pass := relay.MintCredential(secret, member, time.Hour, time.Now())
	cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: addr, Conn: turn.NewSTUNConn(conn),
		Username: user, Password: pass, Realm: "localhost", RTO: 2 * time.Second})
	if err != nil {
		conn.Close()
		return nil, err
	}
	tc := &turnClient{conn: conn, client: cl}
	if err := cl.Listen(); err != nil {
		tc.Close()
		return nil, err
	}
	if tc.relayed, err = cl.Allocate(); err != nil {
		tc.Close()
		return nil, fmt.Errorf("allocate: %w", err)
	}
	return tc, nil
}

// Close releases the allocation and closes the client and its connection.
func (c *turnClient) Close() error {
	var err error
	if c.relayed != nil {
		err = c.relayed.Close()
	}
	c.client.Close()
	return errors.Join(err, c.conn.Close())
}
