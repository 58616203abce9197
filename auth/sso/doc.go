// Package sso signs staff in through an institution's OpenID Connect
// identity providers: the authorization code flow with PKCE, state and
// nonce, the ID token verified against the provider's discovery document
// and keys, and the provider's groups mapped to the platform's roles.
//
// The flow's secrets (state, nonce, PKCE verifier) travel in a short-lived
// value sealed with AES-GCM under a server key, which the site keeps in an
// HttpOnly cookie: nothing is stored server-side between the redirect to the
// provider and its return.
package sso
