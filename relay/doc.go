// Package relay owns the TURN relay an institution runs inside its own
// firewall, built on pion/turn: UDP and TCP on one address and TURN over
// TLS on another, time-limited credentials in the TURN REST format shared
// with the signal server (and coturn's static-auth-secret), a peer policy
// that refuses internal destinations unless an operator opens them, quotas,
// an optional per-allocation bandwidth cap, and Prometheus metrics.
//
// Logs and metrics name no one: a credential's participant id is kept out
// of both, and refused peers are counted by class, not by address.
package relay
