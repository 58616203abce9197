// Package tlsconf owns the TLS settings of every listener the platform opens:
// the hardened server configuration and where certificates come from (files
// that are re-read when renewed, ACME, or a self-signed certificate for
// development kept on disk).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Server returns the hardened server configuration: TLS 1.2 at least, 1.3
// preferred by the handshake, and for 1.2 only forward-secret AEAD suites
// (Mozilla "intermediate" minus the CBC suites). getCert supplies the
// certificate.
func Server(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: getCert,
	}
}

// FileSource serves a certificate and key from PEM files and picks up a
// renewed pair (certbot, an institution's PKI job) without a restart: files
// are re-read when their modification time changes, checked at most once per
// interval.
type FileSource struct {
	certPath, keyPath string
	interval          time.Duration
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	modTime   time.Time
	checkedAt time.Time
}

// NewFileSource loads the pair once, failing when it is unusable, so a bad
// path stops the start rather than the first handshake.
func NewFileSource(certPath, keyPath string) (*FileSource, error) {
	if certPath == "" || keyPath == "" {
		return nil, errors.New("both a certificate and a key file are needed")
	}
	s := &FileSource{certPath: certPath, keyPath: keyPath, interval: time.Minute, now: time.Now}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// GetCertificate implements tls.Config.GetCertificate. A failed reload keeps
// serving the previous certificate.
func (s *FileSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.checkedAt) >= s.interval {
		s.checkedAt = now
		if fi, err := os.Stat(s.certPath); err == nil && !fi.ModTime().Equal(s.modTime) {
			_ = s.reloadLocked()
		}
	}
	return s.cert, nil
}

func (s *FileSource) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *FileSource) reloadLocked() error {
	fi, err := os.Stat(s.certPath)
	if err != nil {
		return fmt.Errorf("certificate file: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(s.certPath, s.keyPath)
	if err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", s.certPath, s.keyPath, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse certificate %s: %w", s.certPath, err)
	}
	pair.Leaf = leaf
	s.cert, s.modTime = &pair, fi.ModTime()
	return nil
}
