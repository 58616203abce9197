package main

import (
	"errors"
	"io"
	"path/filepath"
	"time"

	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/obs"
)

// settings are every knob of the signal server.
type settings struct {
	set *config.Set

	dev             bool
	listen          config.Addr
	httpListen      config.Addr
	adminListen     config.Addr
	publicURL       config.URL
	dataDir         string
	database        string
	tlsCert         string
	tlsKey          string
	acmeDomains     config.StringList
	acmeEmail       string
	acmeDirectory   string
	hstsMaxAge      time.Duration
	setupLinkTTL    time.Duration
	shutdownTimeout time.Duration
	logLevel        config.Enum
	logFormat       config.Enum
}

// Defaults that -dev changes, applied only to settings nobody set.
const (
	devListen      = "localhost:8443"
	devHTTPListen  = "localhost:8080"
	devAdminListen = "localhost:9090"
)

func newSettings(stderr io.Writer) *settings {
	s := &settings{
		listen:      config.Addr{Value: ":443"},
		httpListen:  config.Addr{Value: ":80"},
		adminListen: config.Addr{Value: "127.0.0.1:9090"},
		logLevel:    config.Enum{Value: "info", Allowed: obs.LogLevels},
		logFormat:   config.Enum{Value: "json", Allowed: obs.LogFormats},
	}
	s.set = config.New("signal", "SIGNAL", stderr)
	fs := s.set.Flags()
	fs.BoolVar(&s.dev, "dev", false, "development mode: self-signed certificate for localhost under -data-dir, loopback listeners ("+devListen+", "+devHTTPListen+", "+devAdminListen+")")
	fs.Var(&s.listen, "listen", "HTTPS `address` of the site, API and signaling (dev: "+devListen+")")
	fs.Var(&s.httpListen, "http-listen", "plain HTTP `address` that only redirects to HTTPS and answers ACME challenges; off to disable (dev: "+devHTTPListen+")")
	fs.Var(&s.adminListen, "admin-listen", "plain HTTP `address` of /metrics, /healthz and /readyz for monitoring; keep it on a private interface; off to disable (dev: "+devAdminListen+")")
	fs.Var(&s.publicURL, "public-url", "`URL` patients and staff use to reach the site, such as https://consult.example-hospital.org (required unless -dev or -acme-domain)")
	fs.StringVar(&s.dataDir, "data-dir", "./data", "`directory` for the database, development certificate and ACME cache (created mode 0700)")
	fs.StringVar(&s.database, "database", "", "database: sqlite:PATH (default sqlite:<data-dir>/signal.db)")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM certificate chain `file`; re-read when it changes")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM private key `file` of -tls-cert")
	fs.Var(&s.acmeDomains, "acme-domain", "obtain certificates automatically (ACME) for this `domain`; repeatable")
	fs.StringVar(&s.acmeEmail, "acme-email", "", "contact `address` given to the ACME certificate authority")
	fs.StringVar(&s.acmeDirectory, "acme-directory", "", "ACME directory `URL` of an institution's own CA (default Let's Encrypt)")
	fs.DurationVar(&s.hstsMaxAge, "hsts-max-age", 2*365*24*time.Hour, "Strict-Transport-Security max-age sent on every HTTPS response (0 to omit, not recommended)")
	fs.DurationVar(&s.setupLinkTTL, "setup-link-ttl", time.Hour, "lifetime of the one-time link that creates the first administrator (1m to 24h)")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 15*time.Second, "time in-flight requests get to finish on shutdown")
	fs.Var(&s.logLevel, "log-level", "log `level`: debug, info, warn or error")
	fs.Var(&s.logFormat, "log-format", "log `format`: json or text")
	return s
}

// load reads the settings and checks how they fit together.
func (s *settings) load(args []string, getenv func(string) string) error {
	if err := s.set.Load(args, getenv); err != nil {
		return err
	}
	if s.dev {
		for _, d := range []struct {
			name  string
			addr  *config.Addr
			value string
		}{
			{"listen", &s.listen, devListen},
			{"http-listen", &s.httpListen, devHTTPListen},
			{"admin-listen", &s.adminListen, devAdminListen},
		} {
			if !s.set.IsSet(d.name) {
				d.addr.Value = d.value
			}
		}
	}
	if s.database == "" {
		s.database = "sqlite:" + filepath.Join(s.dataDir, "signal.db")
	}
	return s.validate()
}

func (s *settings) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) { errs = append(errs, s.set.Invalid(name, format, args...)) }
	if s.listen.Value == "" {
		bad("listen", "the HTTPS listener cannot be off")
	}
	if s.dataDir == "" {
		bad("data-dir", "must name a directory")
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		bad("tls-key", "-tls-cert and -tls-key go together")
	}
	if s.tlsCert != "" && len(s.acmeDomains.Values) > 0 {
		bad("acme-domain", "choose either -tls-cert/-tls-key or -acme-domain, not both")
	}
	if !s.dev && s.tlsCert == "" && len(s.acmeDomains.Values) == 0 {
		bad("tls-cert", "production needs a certificate: -tls-cert/-tls-key, or -acme-domain; use -dev for a local self-signed one")
	}
	if !s.dev && len(s.acmeDomains.Values) == 0 && s.publicURL.Value == nil {
		bad("public-url", "required outside -dev (unless -acme-domain names the host)")
	}
	if s.hstsMaxAge < 0 {
		bad("hsts-max-age", "must not be negative")
	}
	if s.setupLinkTTL < time.Minute || s.setupLinkTTL > 24*time.Hour {
		bad("setup-link-ttl", "%s is outside 1m to 24h", s.setupLinkTTL)
	}
	if s.shutdownTimeout <= 0 || s.shutdownTimeout > 10*time.Minute {
		bad("shutdown-timeout", "%s is outside (0, 10m]", s.shutdownTimeout)
	}
	return errors.Join(errs...)
}
