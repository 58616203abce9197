// Package testpki makes throwaway certificate authorities and certificates
// for tests of mutual TLS, such as the link between signal and media
// nodes. Keys are ECDSA P-256, valid for an hour around now, written as PEM
// files under the test's temporary directory.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test.
type CA struct {
	File string // PEM of the CA certificate

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA named name.
func NewCA(t testing.TB, name string) *CA {
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
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), name+"-ca.pem")
	writePEM(t, file, "CERTIFICATE", der)
	return &CA{File: file, cert: cert, key: key}
}

// Issue makes a leaf certificate named cn: a server certificate for
// 127.0.0.1 and localhost, or a client certificate. It returns the
// certificate and key files.
func (ca *CA) Issue(t testing.TB, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	if server {
		return ca.issue(t, cn, true, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
	}
	return ca.issue(t, cn, false, nil, nil)
}

// IssueServer makes a server certificate named cn for the given IP
// addresses, such as a test network's documentation addresses.
func (ca *CA) IssueServer(t testing.TB, cn string, ips ...net.IP) (certFile, keyFile string) {
	t.Helper()
	return ca.issue(t, cn, true, ips, nil)
}

// IssueNamed makes a server certificate for the given DNS names (the
// first is also its file name), such as two names sharing one address.
func (ca *CA) IssueNamed(t testing.TB, names ...string) (certFile, keyFile string) {
	t.Helper()
	return ca.issue(t, names[0], true, nil, names)
}

func (ca *CA) issue(t testing.TB, cn string, server bool, ips []net.IP, names []string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
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
		tmpl.IPAddresses = ips
		tmpl.DNSNames = names
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

// Link is the CA of a signal–media node link with a node certificate for
// 127.0.0.1 and a signal client certificate.
type Link struct {
	CA                    *CA
	NodeCert, NodeKey     string
	SignalCert, SignalKey string
}

// NewLink makes a Link.
func NewLink(t testing.TB) *Link {
	t.Helper()
	ca := NewCA(t, "link")
	l := &Link{CA: ca}
	l.NodeCert, l.NodeKey = ca.Issue(t, "sfu-1", true)
	l.SignalCert, l.SignalKey = ca.Issue(t, "signal-1", false)
	return l
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
