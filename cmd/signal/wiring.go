package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/internal/tlsmux"
	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/relay"
	"github.com/openconsult/openconsult/sfulink"
	"github.com/openconsult/openconsult/signaling"
)

// masterKey loads the master key from the environment/flag, from the
// passphrase-protected key file, or in -dev from a development key file
// under the data directory.
func masterKey(s *settings, log *slog.Logger) (keyring.MasterKey, error) {
	switch {
	case s.masterKey != "":
		return keyring.MasterKeyFromBase64(s.masterKey)
	case s.keyFile != "":
		return readKeyFile(s.keyFile, s.keyPassphrase, s.keyPassphraseFile)
	default: // -dev only; validate refuses the rest
		path := filepath.Join(s.dataDir, "dev-master.key")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			m, err := keyring.NewMasterKey()
			if err != nil {
				return keyring.MasterKey{}, err
			}
			if err := os.WriteFile(path, []byte(m.Base64()+"\n"), 0o600); err != nil {
				return keyring.MasterKey{}, fmt.Errorf("development master key: %w", err)
			}
			b = []byte(m.Base64())
		} else if err != nil {
			return keyring.MasterKey{}, fmt.Errorf("development master key: %w", err)
		}
		log.Warn("development master key kept beside the database; never use -dev for patient data", "path", path)
		return keyring.MasterKeyFromBase64(string(b))
	}
}

// readKeyFile opens a master key file with its passphrase, given or in
// passFile.
func readKeyFile(path, pass, passFile string) (keyring.MasterKey, error) {
	if passFile != "" {
		b, err := os.ReadFile(passFile)
		if err != nil {
			return keyring.MasterKey{}, fmt.Errorf("key passphrase file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	return keyring.ReadKeyFile(path, pass)
}

// previousMasterKey is the master key before a rotation, given as base64
// or as a key file.
type previousMasterKey struct {
	masterKey, keyFile, passphrase, passphraseFile string
}

// load returns the previous master key, or false when none is given.
func (p previousMasterKey) load() (keyring.MasterKey, bool, error) {
	var m keyring.MasterKey
	var err error
	switch {
	case p.masterKey != "":
		m, err = keyring.MasterKeyFromBase64(p.masterKey)
	case p.keyFile != "":
		m, err = readKeyFile(p.keyFile, p.passphrase, p.passphraseFile)
	default:
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("previous master key: %w", err)
	}
	return m, true, nil
}

// auditRecorder adapts the audit log to what auth and signaling record.
type auditRecorder struct {
	log *audit.Log
}

func outcome(ok bool) string {
	if ok {
		return audit.Success
	}
	return audit.Failure
}

// Record implements auth.Recorder.
func (a auditRecorder) Record(ctx context.Context, ev auth.Event) error {
	_, err := a.log.Append(ctx, audit.Entry{Type: ev.Type, Outcome: outcome(ev.Success), Requester: ev.Requester, Message: ev.Message,
		SourceIP: ev.Client.IP, UserAgent: ev.Client.UserAgent, Fields: ev.Fields})
	return err
}

// RecordSession implements signaling.Recorder.
func (a auditRecorder) RecordSession(ctx context.Context, event, consultID, memberID, message string, fields map[string]string) error {
	_, err := a.log.Append(ctx, audit.Entry{Type: event, Outcome: audit.Success, Requester: memberID, Room: consultID, Message: message, Fields: fields})
	return err
}

// iceServers builds the RTCConfiguration servers with credentials for one
// participant.
func iceServers(stun, turn []string, secret []byte, ttl time.Duration) func(subject string, ttl time.Duration) []signaling.ICEServer {
	return func(subject string, want time.Duration) []signaling.ICEServer {
		if want <= 0 {
			want = ttl
		}
		var out []signaling.ICEServer
		if len(stun) > 0 {
			out = append(out, signaling.ICEServer{URLs: stun})
		}
		if len(turn) > 0 {
			user, pass := relay.MintCredential(secret, subject, want, time.Now())
			out = append(out, signaling.ICEServer{URLs: turn, Username: user, Credential: pass})
		}
		return out
	}
}

// startRelay runs the embedded TURN relay and returns the ICE server URLs
// and secret that point browsers at it (unless -turn-url names others).
// shared, when not nil, is the TURN side of the HTTPS port. In -dev the
// browsers are on this machine or its local network, so loopback and
// private peers are allowed; otherwise the default peer policy applies.
func startRelay(s *settings, site *tls.Config, public *url.URL, shared net.Listener, reg prometheus.Registerer, log *slog.Logger) (
	_ *relay.Server, stun, turn []string, secret []byte, err error) {
	secret = []byte(s.turnSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	bind, err := s.relayBind()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	bind6, public6 := s.relay6()
	def := relay.DefaultConfig() // turnd's per-address limits too
	cfg := relay.Config{Realm: public.Hostname(), Listen: s.relayListen.Values[0], MoreListen: s.relayListen.Values[1:],
		RelayBindIP: bind, PublicIP: s.relayPublic(), RelayBindIP6: bind6, PublicIP6: public6, PortMin: 49152, PortMax: 65535,
		Secrets: [][]byte{secret}, UserQuota: 10, TotalQuota: 1000, Log: log, Metrics: reg,
		MaxBPS: s.relayMaxBPS, MaxTotalBPS: s.relayMaxTotalBPS,
		AllocationRate: def.AllocationRate, AllocationBurst: def.AllocationBurst, StreamsPerAddress: def.StreamsPerAddress}
	if s.dev {
		for _, p := range []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} {
			cfg.Policy.Allow = append(cfg.Policy.Allow, netip.MustParsePrefix(p))
		}
	}
	switch {
	case shared != nil:
		cfg.TLSListener = shared
	case s.relayTLSListen.Value != "":
		cfg.TLSListen, cfg.TLS = s.relayTLSListen.Value, site.Clone()
		cfg.TLS.NextProtos = nil
	}
	r, err := relay.New(cfg)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(s.turnURLs.Values) > 0 {
		return r, s.stunURLs.Values, s.turnURLs.Values, []byte(s.turnSecret), nil
	}
	nat := map[netip.Addr]netip.Addr{bind: s.relayPublic(), bind6: public6}
	stun, turn = relayURLs(public, advertised(r.Addrs(), nat), r.TLSAddr(), shared != nil)
	log.Info("relay URLs given to browsers", "urls", strings.Join(append(append([]string{}, stun...), turn...), " "))
	return r, stun, turn, secret, nil
}

// shareHTTPSPort splits the HTTPS listener between the site and the
// embedded relay. A TURN client without SNI gets the certificate of the
// site's host name, the name in its turns: URL.
func shareHTTPSPort(ln net.Listener, site *tls.Config, public *url.URL, log *slog.Logger) (*tlsmux.Mux, error) {
	cfg := site.Clone()
	if get := cfg.GetCertificate; get != nil {
		name := public.Hostname()
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName == "" {
				h := *hello
				h.ServerName = name
				hello = &h
			}
			return get(hello)
		}
	}
	return tlsmux.New(ln, tlsmux.Config{TLS: cfg, Log: log})
}

// startSFU starts the embedded media node. In -dev browsers run on this
// machine, so the node also offers its loopback address.
func startSFU(s *settings, reg prometheus.Registerer, log *slog.Logger) (*media.SFU, error) {
	var se webrtc.SettingEngine
	if s.dev {
		se.SetIncludeLoopbackCandidate(true)
	}
	sfu, err := media.New(media.Config{Log: log, Settings: se, MaxParticipants: s.sfuMaxParticipants, Metrics: reg,
		UDPListen: s.sfuUDPListen.Value, TCPListen: s.sfuTCPListen.Value, PublicIPs: s.sfuPublicIPs.Values, OwnTransport: s.sfuOwnTransport})
	if err != nil {
		return nil, s.set.Invalid("sfu-udp-listen", "media node: %v", err)
	}
	log.Info("embedded media node started", "addrs", fmt.Sprint(sfu.Addrs()), "max_participants", s.sfuMaxParticipants, "min_participants", s.sfuMinParticipants)
	return sfu, nil
}

// connectSFUNodes starts the authenticated links to the remote media nodes.
func connectSFUNodes(ctx context.Context, s *settings, reg prometheus.Registerer, log *slog.Logger) (*sfulink.Pool, error) {
	tlsCfg, err := sfulink.ClientTLS(s.sfuLinkCert, s.sfuLinkKey, s.sfuLinkCA)
	if err != nil {
		return nil, s.set.Invalid("sfu-link-cert", "%v", err)
	}
	metrics, err := sfulink.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	pool, err := sfulink.NewPool(ctx, sfulink.PoolConfig{Nodes: s.sfuNodes.Values, TLS: tlsCfg, Log: log, Metrics: metrics})
	if err != nil {
		return nil, s.set.Invalid("sfu-node", "%v", err)
	}
	log.Info("media nodes configured", "nodes", len(s.sfuNodes.Values), "min_participants", s.sfuMinParticipants)
	return pool, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
