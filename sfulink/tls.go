package sfulink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/openconsult/openconsult/internal/tlsconf"
)

// ServerTLS is the link listener's configuration: the node's certificate
// from certFile and keyFile (re-read when renewed), TLS 1.3 only (both ends
// are ours), and a client certificate chained to the CA in clientCAFile
// required of every peer.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	src, err := tlsconf.NewFileSource(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("link certificate: %w", err)
	}
	pool, err := loadCAs(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("link client CA: %w", err)
	}
	cfg := tlsconf.Server(src.GetCertificate)
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{"http/1.1"} // WebSocket upgrades need HTTP/1.1
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = pool
	return cfg, nil
}

// ClientTLS is a signal process's configuration for links: its client
// certificate from certFile and keyFile (re-read when renewed, at most once
// a minute) and the CA in caFile that signed the nodes' certificates.
func ClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	src, err := tlsconf.NewFileSource(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("link client certificate: %w", err)
	}
	pool, err := loadCAs(caFile)
	if err != nil {
		return nil, fmt.Errorf("link node CA: %w", err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.GetCertificate(nil)
		},
	}, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, errors.New("no CA file given")
	}
	pemData, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
