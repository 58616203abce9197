package wire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v5/deadline"
)

// Certificate is the node's DTLS certificate, self-signed as WebRTC's are:
// the remote side trusts it by the fingerprint the node's session
// description carries.
type Certificate struct {
	TLS         tls.Certificate
	Fingerprint string // SHA-256, as in a=fingerprint: "sha-256 AB:CD:..."
}

// NewCertificate makes an ECDSA P-256 certificate valid for 30 days.
func NewCertificate() (Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certificate{}, fmt.Errorf("dtls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return Certificate{}, fmt.Errorf("dtls certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "WebRTC"},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Certificate{}, fmt.Errorf("dtls certificate: %w", err)
	}
	return Certificate{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		Fingerprint: "sha-256 " + fingerprint(der)}, nil
}

// fingerprint is der's SHA-256 in the colon-separated upper-case hex of
// RFC 8122.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// verifyFingerprint accepts the remote certificate only if its SHA-256
// fingerprint is one the remote description gave ("sha-256 AB:..."), in
// constant time.
func verifyFingerprint(want []string) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("dtls: the remote side sent no certificate")
		}
		got := []byte(fingerprint(raw[0]))
		for _, w := range want {
			alg, value, ok := strings.Cut(strings.TrimSpace(w), " ")
			if ok && strings.EqualFold(alg, "sha-256") && subtle.ConstantTimeCompare(got, []byte(strings.ToUpper(strings.TrimSpace(value)))) == 1 {
				return nil
			}
		}
		return errors.New("dtls: the remote certificate does not match the fingerprint of the remote description")
	}
}

// srtpProfiles are offered in this order: AES-128-GCM is the cheapest per
// packet, and every current browser has it.
func srtpProfiles() []dtls.SRTPProtectionProfile {
	return []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}
}

func srtpProfile(p dtls.SRTPProtectionProfile) (srtp.ProtectionProfile, error) {
	switch p {
	case dtls.SRTP_AEAD_AES_128_GCM:
		return srtp.ProtectionProfileAeadAes128Gcm, nil
	case dtls.SRTP_AEAD_AES_256_GCM:
		return srtp.ProtectionProfileAeadAes256Gcm, nil
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, nil
	}
	return 0, fmt.Errorf("dtls: no SRTP protection profile in common (%v)", p)
}

// srtpContexts are a connection's SRTP keys, one context for what it
// receives and one for what it sends, derived from the DTLS handshake
// (RFC 5764).
func srtpContexts(c *dtls.Conn, client bool) (rx, tx *srtp.Context, err error) {
	p, ok := c.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, nil, errors.New("dtls: the handshake negotiated no SRTP")
	}
	profile, err := srtpProfile(p)
	if err != nil {
		return nil, nil, err
	}
	state, ok := c.ConnectionState()
	if !ok {
		return nil, nil, errors.New("dtls: no connection state after the handshake")
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		return nil, nil, fmt.Errorf("srtp keys: %w", err)
	}
	if rx, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile); err != nil {
		return nil, nil, fmt.Errorf("srtp receive context: %w", err)
	}
	if tx, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile); err != nil {
		return nil, nil, fmt.Errorf("srtp send context: %w", err)
	}
	return rx, tx, nil
}

// dtlsLink is the net.PacketConn pion's DTLS connection runs on: the
// DTLS records the connection's deliverer routes to it, queued, and
// writes sent to the remote side's selected address. It holds at most
// dtlsQueue records: a handshake's flights are a few each.
type dtlsLink struct {
	in       chan []byte
	closed   chan struct{}
	once     sync.Once
	deadline *deadline.Deadline
	local    net.Addr
	send     func(b []byte) error
	onClose  func() // the DTLS connection closed it: a close_notify, or the connection's end
}

const dtlsQueue = 64

func newDTLSLink(local net.Addr, send func([]byte) error, onClose func()) *dtlsLink {
	return &dtlsLink{in: make(chan []byte, dtlsQueue), closed: make(chan struct{}), deadline: deadline.New(),
		local: local, send: send, onClose: onClose}
}

// deliver queues a copy of a DTLS record, or drops it when the queue is
// full or the link closed: DTLS retransmits.
func (l *dtlsLink) deliver(p []byte) {
	select {
	case <-l.closed:
		return
	default:
	}
	select {
	case l.in <- append([]byte(nil), p...):
	default:
	}
}

func (l *dtlsLink) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-l.in:
		return copy(b, p), remoteAddr(), nil
	case <-l.closed:
		return 0, nil, io.EOF
	case <-l.deadline.Done():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (l *dtlsLink) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-l.closed:
		return 0, net.ErrClosed
	default:
	}
	if err := l.send(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (l *dtlsLink) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.onClose()
	})
	return nil
}

func (l *dtlsLink) LocalAddr() net.Addr { return l.local }

func (l *dtlsLink) SetDeadline(t time.Time) error { return l.SetReadDeadline(t) }

func (l *dtlsLink) SetReadDeadline(t time.Time) error {
	l.deadline.Set(t)
	return nil
}

// SetWriteDeadline does nothing: a write is a datagram sent at once.
func (l *dtlsLink) SetWriteDeadline(time.Time) error { return nil }

// remoteAddr is the address pion's DTLS connection is told the remote
// side has: the link itself routes to the selected pair, which may
// change without the DTLS connection knowing.
func remoteAddr() net.Addr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.IPv4Unspecified(), 9))
}

// handshake runs the DTLS handshake on l, as the server (the remote side
// chose setup:active) or the client, and checks the remote certificate
// against fingerprints.
func handshake(ctx context.Context, l *dtlsLink, cert tls.Certificate, client bool, fingerprints []string) (*dtls.Conn, error) {
	shared := []dtls.Option{
		dtls.WithCertificates(cert),
		dtls.WithSRTPProtectionProfiles(srtpProfiles()...),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		// The certificate is self-signed; it is checked against the
		// fingerprint of the remote description instead.
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(verifyFingerprint(fingerprints)),
	}
	var c *dtls.Conn
	var err error
	if client {
		opts := make([]dtls.ClientOption, 0, len(shared))
		for _, o := range shared {
			opts = append(opts, o)
		}
		c, err = dtls.ClientWithOptions(l, remoteAddr(), opts...)
	} else {
		opts := make([]dtls.ServerOption, 0, len(shared)+1)
		for _, o := range shared {
			opts = append(opts, o)
		}
		opts = append(opts, dtls.WithClientAuth(dtls.RequireAnyClientCert))
		c, err = dtls.ServerWithOptions(l, remoteAddr(), opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("dtls: %w", err)
	}
	if err := c.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("dtls handshake: %w", err)
	}
	return c, nil
}
