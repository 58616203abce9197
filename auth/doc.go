// Package auth owns who may do what: accounts and their password hashes,
// the password policy, and the one-time setup link that creates the first
// administrator so that no account with a default password ever exists.
package auth
