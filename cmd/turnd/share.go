package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/openconsult/openconsult/internal/tlsmux"
)

// sharePort listens on the TLS address and splits it between the relay and
// an HTTPS server (-https-backend) on the ClientHello, before any TLS is
// terminated: the relay completes the handshakes of TURN clients with its
// own certificate, and every other connection goes to the backend still
// encrypted, so the site keeps its own certificate and key (see
// tlsmux.ByHello for the rule). perAddress bounds one client address's
// connections at the backend, which sees them all at turnd's address
// unless it reads the PROXY header turnd sends.
func sharePort(addr string, turnTLS *tls.Config, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), be backend, perAddress int, log *slog.Logger) (*tlsmux.Passthrough, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("turnd: TLS listener shared with %s: %w", be.addr, err)
	}
	isTURN := func(name string) bool {
		cert, err := getCert(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || cert == nil || len(cert.Certificate) == 0 {
			return false
		}
		leaf := cert.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return false
			}
		}
		return leaf.VerifyHostname(name) == nil
	}
	p, err := tlsmux.NewPassthrough(ln, tlsmux.PassConfig{TLS: turnTLS, Backend: be.addr, IsTURNName: isTURN, PerAddress: perAddress,
		ProxyHeader: be.proxyHeader, Log: log})
	if err != nil {
		ln.Close()
		return nil, err
	}
	log.Info("TLS port shared with an HTTPS server", "addr", ln.Addr().String(), "https_backend", be.addr, "proxy_protocol", be.proxyHeader)
	return p, nil
}

// backend is the HTTPS server behind the shared port (-https-backend) and
// whether it gets a PROXY header (-https-backend-proxy-protocol).
type backend struct {
	addr        string
	proxyHeader bool
}

// sameAddress reports whether two "host:port" addresses are certainly one
// socket address (the same port on the same, a wildcard or a loopback
// host), so that a backend would be the shared port itself.
func sameAddress(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb {
		return false
	}
	x, errX := netip.ParseAddr(ha)
	y, errY := netip.ParseAddr(hb)
	switch {
	case errX != nil || errY != nil:
		return ha == hb || ha == "" || hb == ""
	case x.IsUnspecified() || y.IsUnspecified():
		return true
	}
	return x.Unmap() == y.Unmap() || x.IsLoopback() && y.IsLoopback()
}
