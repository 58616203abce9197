package main

import (
	"flag"

	"github.com/openconsult/openconsult/auth"
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
