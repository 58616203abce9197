// Package sso signs staff in through an institution's identity providers.
//
// OpenID Connect: the authorization code flow with PKCE, state and nonce,
// the ID token verified against the provider's discovery document and
// keys; signing out can end the provider's session (RP-initiated logout).
//
// SAML 2.0 (crewjam/saml): an HTTP-Redirect AuthnRequest, and at the
// assertion consumer service an HTTP-POST answer whose assertion must be
// signed by a certificate of the provider's metadata, meant for this
// platform, within its validity, in response to the request this browser
// started, and never used before (an AssertionLedger shared by every
// server remembers assertion ids until they expire).
//
// For both kinds the provider's groups map to the platform's roles, and
// the flow's secrets (state, nonce, PKCE verifier; RelayState and request
// id) travel in a short-lived value sealed with AES-GCM under a server key,
// bound to its kind, which the site keeps in an HttpOnly cookie: nothing is
// stored server-side between the redirect to the provider and its return.
package sso
