package tlsconf

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"slices"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACME obtains and renews certificates automatically for the listed domains
// only, caching account key and certificates under cacheDir.
type ACME struct {
	manager *autocert.Manager
}

// NewACME prepares automatic certificates; directoryURL empty means the ACME
// client's default CA (Let's Encrypt), an institution may point it at its own.
func NewACME(domains []string, email, cacheDir, directoryURL string) *ACME {
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(filepath.Clean(cacheDir)),
		HostPolicy: autocert.HostWhitelist(domains...),
		Email:      email,
	}
	if directoryURL != "" {
		m.Client = &acme.Client{DirectoryURL: directoryURL}
	}
	return &ACME{manager: m}
}

// Configure makes cfg answer TLS-ALPN-01 challenges and serve ACME
// certificates.
func (a *ACME) Configure(cfg *tls.Config) {
	cfg.GetCertificate = a.manager.GetCertificate
	if !slices.Contains(cfg.NextProtos, acme.ALPNProto) {
		cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
	}
}

// HTTPHandler answers HTTP-01 challenges on the plain HTTP listener and hands
// every other request to fallback (the HTTPS redirect).
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	return a.manager.HTTPHandler(fallback)
}
