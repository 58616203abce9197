package tlsconf

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDevCertificateIsKeptAndRenewed(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := DevCertificate(dir, DevHosts, now); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, devKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	tests := []struct {
		name    string
		at      time.Time
		hosts   []string
		renewed bool
	}{
		{"same certificate next day", now.Add(24 * time.Hour), DevHosts, false},
		{"renewed a week before expiry", now.Add(devValidity - 6*24*time.Hour), DevHosts, true},
		{"renewed when a host is missing", now, append([]string{"consult.test"}, DevHosts...), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DevCertificate(dir, DevHosts, now); err != nil { // reset to the first state
				t.Fatal(err)
			}
			before, _ := os.ReadFile(filepath.Join(dir, devCertFile))
			got, err := DevCertificate(dir, tt.hosts, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := os.ReadFile(filepath.Join(dir, devCertFile))
			if changed := string(before) != string(after); changed != tt.renewed {
				t.Fatalf("certificate replaced = %v, want %v", changed, tt.renewed)
			}
			if len(got.Certificate) == 0 {
				t.Fatal("empty certificate")
			}
		})
	}
}

func TestFileSourcePicksUpRenewal(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	// Two distinct self-signed pairs stand in for an original and a renewal.
	certA, keyA, _ := selfSigned([]string{"a.test"}, now)
	certB, keyB, _ := selfSigned([]string{"b.test"}, now)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(c, k []byte, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(certPath, c, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, k, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(certPath, mtime, mtime)
	}
	write(certA, keyA, now.Add(-time.Hour))
	src, err := NewFileSource(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	src.now = func() time.Time { return clock }
	name := func() string {
		c, err := src.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.DNSNames[0]
	}
	if got := name(); got != "a.test" {
		t.Fatalf("initial certificate for %s", got)
	}
	write(certB, keyB, now)
	clock = clock.Add(2 * time.Minute)
	if got := name(); got != "b.test" {
		t.Fatalf("after renewal serving %s, want b.test", got)
	}
	// A broken renewal keeps the working certificate in service.
	write([]byte("garbage"), keyB, now.Add(time.Hour))
	clock = clock.Add(2 * time.Minute)
	if got := name(); got != "b.test" {
		t.Fatalf("after broken renewal serving %s, want b.test", got)
	}
}

func TestNewFileSourceRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	for _, tc := range [][2]string{{"", ""}, {filepath.Join(dir, "missing.pem"), bad}, {bad, bad}} {
		if _, err := NewFileSource(tc[0], tc[1]); err == nil {
			t.Errorf("NewFileSource(%q, %q) accepted", tc[0], tc[1])
		}
	}
}

func TestServerConfigOffersOnlyForwardSecretAEAD(t *testing.T) {
	cfg := Server(nil)
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion = %x", cfg.MinVersion)
	}
	secure := map[uint16]bool{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = true
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !secure[id] || !(contains(name, "ECDHE") && (contains(name, "GCM") || contains(name, "CHACHA20"))) {
			t.Errorf("suite %s offered", name)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
