// Package tlsmux serves HTTPS and TURN over TLS on one address and port,
// such as 443, for patients whose networks allow nothing else. It completes
// each TLS handshake itself, then tells the two apart: the ALPN protocol
// "stun.turn" (RFC 7443) or first bytes that are a STUN message go to the
// TURN listener, everything else to the HTTP listener. Browsers offer no
// ALPN on TURN connections, so the first bytes decide for them.
//
// Passthrough shares a port with an HTTPS server that terminates its own
// TLS instead (turnd -https-backend): it decides on the ClientHello
// (ByHello) and passes the site's connections on still encrypted, so that
// each name keeps its own certificate.
package tlsmux

import "encoding/binary"

// Kind is where a connection goes.
type Kind int

const (
	// Undecided means more bytes are needed.
	Undecided Kind = iota
	// HTTP is anything that is not a STUN message.
	HTTP
	// TURN is a connection that starts with a STUN message.
	TURN
)

func (k Kind) String() string {
	switch k {
	case HTTP:
		return "http"
	case TURN:
		return "turn"
	}
	return "undecided"
}

// ALPNTURN is the ALPN protocol of STUN and TURN over TLS (RFC 7443).
const ALPNTURN = "stun.turn"

// PeekLen is the most bytes Classify needs to decide.
const PeekLen = 8

const stunCookie = 0x2112A442

// Classify decides from the first bytes a client sent after the TLS
// handshake. A STUN message has its two top bits zero and the magic cookie
// 0x2112A442 at bytes 4 to 8 (RFC 8489, 5); an HTTP request starts with an
// ASCII method, whose first byte already has a top bit set. A client's first
// TURN message is always STUN (an Allocate, or a Binding), never
// ChannelData. Classify returns Undecided only while fewer than PeekLen
// bytes are given and they could still be STUN.
func Classify(b []byte) Kind {
	if len(b) == 0 {
		return Undecided
	}
	if b[0]>>6 != 0 {
		return HTTP
	}
	if len(b) < PeekLen {
		return Undecided
	}
	if binary.BigEndian.Uint32(b[4:8]) != stunCookie {
		return HTTP
	}
	return TURN
}

// ByALPN decides from the protocol negotiated in the handshake, when one
// was: "stun.turn" is TURN, any other protocol (h2, http/1.1, acme-tls/1)
// is HTTP. Without one it returns Undecided and the first bytes decide.
func ByALPN(proto string) Kind {
	switch proto {
	case "":
		return Undecided
	case ALPNTURN:
		return TURN
	}
	return HTTP
}
