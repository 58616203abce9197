// Package proxyproto reads and writes the PROXY protocol header (HAProxy's
// PROXY protocol, versions 1 and 2) that a TCP proxy sends at the start of
// a connection to tell the server behind it the client's address: turnd
// sends it to the site it passes connections to (-https-backend), and
// signal believes it only from the sources it is told to trust.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Limits on what a header may be, so that a peer cannot make the reader
// buffer more.
const (
	// MaxV1 is the longest version 1 header, CRLF included (spec 2.1).
	MaxV1 = 107
	// MaxV2 is the longest version 2 header accepted: the 16-byte
	// preamble and up to 2032 bytes of addresses and TLVs, more than any
	// proxy sends (HAProxy's longest, with TLS details, is well under).
	MaxV2 = 2048
)

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// ErrIncomplete means more bytes are needed to tell.
var ErrIncomplete = errors.New("proxyproto: incomplete header")

// ErrNoHeader means the bytes do not start with a PROXY protocol header.
var ErrNoHeader = errors.New("proxyproto: no PROXY header")

// Header is what a PROXY protocol header says. Local (version 2's LOCAL
// command, version 1's UNKNOWN, or an address family other than TCP over
// IPv4 or IPv6) means the proxy speaks for itself: the connection's own
// addresses apply, and Source and Destination are zero.
type Header struct {
	Version             int
	Local               bool
	Source, Destination netip.AddrPort
}

// Parse reads a header from the start of b and returns it with its length.
// It returns ErrIncomplete while b is a prefix of a header that could still
// be valid, ErrNoHeader as soon as b cannot start one, and another error
// for a malformed header.
func Parse(b []byte) (Header, int, error) {
	switch {
	case startsWith(b, sigV2):
		return parseV2(b)
	case startsWith(b, sigV1):
		return parseV1(b)
	}
	return Header{}, 0, ErrNoHeader
}

// startsWith reports whether b and sig agree on their common length, and
// so b could still be, or is, sig followed by more.
func startsWith(b, sig []byte) bool {
	n := min(len(b), len(sig))
	return bytes.Equal(b[:n], sig[:n])
}

func parseV1(b []byte) (Header, int, error) {
	end := bytes.Index(b[:min(len(b), MaxV1)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= MaxV1 {
			return Header{}, 0, errors.New("proxyproto: version 1 header longer than 107 bytes")
		}
		return Header{}, 0, ErrIncomplete
	}
	n := end + 2
	f := strings.Split(string(b[len(sigV1):end]), " ")
	h := Header{Version: 1}
	if f[0] == "UNKNOWN" {
		h.Local = true
		return h, n, nil
	}
	if len(f) != 5 || (f[0] != "TCP4" && f[0] != "TCP6") {
		return Header{}, 0, errors.New("proxyproto: malformed version 1 header")
	}
	src, err1 := v1Addr(f[1], f[3], f[0] == "TCP4")
	dst, err2 := v1Addr(f[2], f[4], f[0] == "TCP4")
	if err := errors.Join(err1, err2); err != nil {
		return Header{}, 0, fmt.Errorf("proxyproto: version 1 header: %w", err)
	}
	h.Source, h.Destination = src, dst
	return h, n, nil
}

// v1Addr parses one address and port of a version 1 header, strictly: no
// zone, no leading zeros in the port, the family the header names.
func v1Addr(ip, port string, four bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is4() != four {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", ip)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || strconv.FormatUint(p, 10) != port {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

func parseV2(b []byte) (Header, int, error) {
	if len(b) < 16 {
		return Header{}, 0, ErrIncomplete
	}
	verCmd, fam := b[12], b[13]
	size := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	switch {
	case verCmd>>4 != 2:
		return Header{}, 0, fmt.Errorf("proxyproto: version %d in a version 2 header", verCmd>>4)
	case verCmd&0xF > 1:
		return Header{}, 0, fmt.Errorf("proxyproto: unknown command %d", verCmd&0xF)
	case size > MaxV2:
		return Header{}, 0, fmt.Errorf("proxyproto: version 2 header of %d bytes, more than %d", size, MaxV2)
	case len(b) < size:
		return Header{}, 0, ErrIncomplete
	}
	h := Header{Version: 2, Local: verCmd&0xF == 0}
	body := b[16:size]
	switch fam {
	case 0x11: // TCP over IPv4
		if len(body) < 12 {
			return Header{}, 0, errors.New("proxyproto: version 2 IPv4 addresses cut short")
		}
		src, dst := netip.AddrFrom4([4]byte(body[0:4])), netip.AddrFrom4([4]byte(body[4:8]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10]))
		h.Destination = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:12]))
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return Header{}, 0, errors.New("proxyproto: version 2 IPv6 addresses cut short")
		}
		src, dst := netip.AddrFrom16([16]byte(body[0:16])), netip.AddrFrom16([16]byte(body[16:32]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34]))
		h.Destination = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[34:36]))
	default: // unspecified, UDP, UNIX: the connection's own addresses
		h.Local = true
	}
	if h.Local {
		h.Source, h.Destination = netip.AddrPort{}, netip.AddrPort{}
	}
	return h, size, nil
}

// AppendV2 appends a version 2 PROXY header for a TCP connection from src
// to dst, both IPv4 (an IPv4-mapped IPv6 address counts as IPv4) or else
// both written as IPv6, without TLVs.
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, sigV2...)
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() && d.Is4() {
		b = append(b, 0x21, 0x11, 0, 12)
		b = append(b, s.AsSlice()...)
		b = append(b, d.AsSlice()...)
	} else {
		s16, d16 := as16(s), as16(d)
		b = append(b, 0x21, 0x21, 0, 36)
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// AppendV1 appends a version 1 header, as older proxies send it.
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if !s.Is4() || !d.Is4() {
		s, d = netip.AddrFrom16(as16(s)), netip.AddrFrom16(as16(d))
		return fmt.Appendf(b, "PROXY TCP6 %s %s %d %d\r\n", s, d, src.Port(), dst.Port())
	}
	return fmt.Appendf(b, "PROXY TCP4 %s %s %d %d\r\n", s, d, src.Port(), dst.Port())
}

// as16 is a's 16-byte form; the zero Addr becomes ::.
func as16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}
