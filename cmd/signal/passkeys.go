package main

import (
	"flag"
	"log/slog"
	"net/netip"
	"net/url"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/site"
)

// passkeySettings are the institution's choices about passkeys (WebAuthn).
type passkeySettings struct {
	passwordless       bool
	requireAttestation bool
	requiredForAdmins  bool
}

func (p *passkeySettings) register(fs *flag.FlagSet) {
	fs.BoolVar(&p.passwordless, "passkey-passwordless", false, "offer sign-in with a discoverable passkey alone (user verification required), without the password")
	fs.BoolVar(&p.requiredForAdmins, "passkey-required-for-admins", false, "administrators must sign in with a passkey: codes are refused once they have one, and administration waits until they register one")
	fs.BoolVar(&p.requireAttestation, "passkey-require-attestation", false, "accept only passkeys and security keys whose attestation statement names their make and model")
}

func (p passkeySettings) options() auth.PasskeyOptions {
	return auth.PasskeyOptions{Passwordless: p.passwordless, RequireAttestation: p.requireAttestation, RequireForAdmins: p.requiredForAdmins}
}

// asked reports whether a passkey option was chosen.
func (p passkeySettings) asked() bool {
	return p.passwordless || p.requireAttestation || p.requiredForAdmins
}

// ipHost reports whether the site is reached at an IP address rather than
// a domain name. WebAuthn binds passkeys to a domain, so such a site has
// none.
func ipHost(public *url.URL) bool {
	_, err := netip.ParseAddr(public.Hostname())
	return err == nil
}

// validatePasskeys refuses passkey options a site reached at an IP address
// cannot honour.
func (s *settings) validatePasskeys() error {
	if s.publicURL.Value != nil && ipHost(s.publicURL.Value) && s.passkeys.asked() {
		return s.set.Invalid("public-url", "%s is an IP address: passkeys (WebAuthn) need a domain name, so the -passkey-* options cannot apply; give the site a name", s.publicURL.Value.Host)
	}
	return nil
}

// newPasskeys returns the passkey service, or none, with a warning, for a
// site reached at an IP address: staff then sign in with a password and a
// code.
func newPasskeys(accounts *auth.Service, db auth.PasskeyStore, s *settings, public *url.URL, log *slog.Logger) (site.Passkeys, error) {
	if ipHost(public) {
		log.Warn("passkeys off: the site is reached at an IP address and WebAuthn needs a domain name", "host", public.Hostname())
		return nil, nil
	}
	return accounts.NewPasskeys(db, s.passkeys.options())
}
