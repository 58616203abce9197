// Command sfu is a media node: it receives and forwards the RTP of consults
// with three or more participants, and of recorded consults, whose media it
// records and streams back over the link to the signal process that stores
// it. Signal
// processes reach it over an internal link authenticated with mutual TLS
// (package sfulink), on -link-listen; monitoring (/metrics, /healthz,
// /readyz) is on -admin-listen.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openconsult/openconsult/internal/cli"
	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/internal/serve"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/sfulink"
)

func main() { cli.Main("sfu", run) }

type settings struct {
	set             *config.Set
	adminListen     config.Addr
	linkListen      config.Addr
	linkCert        string
	linkKey         string
	linkClientCA    string
	maxParticipants int
	maxTracks       int
	udpListen       config.Addr
	ownTransport    bool
	tcpListen       config.Addr
	publicIPs       config.StringList
	shutdownTimeout time.Duration
	logLevel        config.Enum
	logFormat       config.Enum
}

func newSettings(stderr io.Writer) *settings {
	s := &settings{
		adminListen: config.Addr{Value: "127.0.0.1:9091"},
		linkListen:  config.Addr{Value: ":7443"},
		udpListen:   config.Addr{Value: ":7882"},
		tcpListen:   config.Addr{Value: ":7881"},
		logLevel:    config.Enum{Value: "info", Allowed: obs.LogLevels},
		logFormat:   config.Enum{Value: "json", Allowed: obs.LogFormats},
	}
	s.set = config.New("sfu", "SFU", stderr)
	fs := s.set.Flags()
	fs.Var(&s.adminListen, "admin-listen", "plain HTTP `address` of /metrics, /healthz and /readyz; keep it on a private interface")
	fs.Var(&s.linkListen, "link-listen", "`address` of the internal link signal servers connect to (mutual TLS); keep it on a private interface")
	fs.StringVar(&s.linkCert, "link-cert", "", "PEM certificate chain `file` of the node on the link (re-read when it changes)")
	fs.StringVar(&s.linkKey, "link-key", "", "PEM private key `file` of -link-cert")
	fs.StringVar(&s.linkClientCA, "link-client-ca", "", "PEM `file` of the CA that signs signal servers' link client certificates; required: only its certificates may open sessions")
	fs.IntVar(&s.maxParticipants, "max-participants", 200, "participants the node takes at most before it answers full and signal picks another node (the embedded node's default too); 0 for no limit")
	fs.IntVar(&s.maxTracks, "max-tracks", 0, "tracks (a simulcast camera counts once) the node forwards at most before it answers full; 0 for no limit")
	fs.Var(&s.udpListen, "media-udp-listen", "UDP `address` every browser sends media to (one port for all participants); open it to the internet")
	fs.BoolVar(&s.ownTransport, "media-own-transport", true, "run sessions on the node's own transport (ICE-lite, DTLS and SRTP on the -media-udp-listen port, ICE-TCP on -media-tcp-listen) instead of pion's peer connections: far fewer goroutines and less CPU per participant; false for pion's")
	fs.Var(&s.tcpListen, "media-tcp-listen", "passive ICE-TCP `address` for browsers whose networks block UDP; off to disable")
	fs.Var(&s.publicIPs, "public-ip", "`address` browsers reach the node at when it sits behind 1:1 NAT (advertised instead of the host's own); repeatable")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 15*time.Second, "time in-flight work gets to finish on shutdown")
	fs.Var(&s.logLevel, "log-level", "log `level`: debug, info, warn or error")
	fs.Var(&s.logFormat, "log-format", "log `format`: json or text")
	return s
}

func (s *settings) load(args []string, getenv func(string) string) error {
	if err := s.set.Load(args, getenv); err != nil {
		return err
	}
	var errs []error
	if s.adminListen.Value == "" {
		errs = append(errs, s.set.Invalid("admin-listen", "the node must be observable: give an address"))
	}
	if s.linkListen.Value == "" {
		errs = append(errs, s.set.Invalid("link-listen", "signal servers reach the node only through the link: give an address"))
	}
	if s.linkCert == "" || s.linkKey == "" {
		errs = append(errs, s.set.Invalid("link-cert", "the link needs the node's certificate and key: give -link-cert and -link-key"))
	}
	if s.linkClientCA == "" {
		errs = append(errs, s.set.Invalid("link-client-ca", "without the CA of signal's client certificates anyone could open sessions: give its PEM file"))
	}
	if s.maxParticipants < 0 {
		errs = append(errs, s.set.Invalid("max-participants", "%d is negative (0 for no limit)", s.maxParticipants))
	}
	if s.maxTracks < 0 {
		errs = append(errs, s.set.Invalid("max-tracks", "%d is negative (0 for no limit)", s.maxTracks))
	}
	if s.udpListen.Value == "" {
		errs = append(errs, s.set.Invalid("media-udp-listen", "browsers send media over UDP first: give an address"))
	}
	for _, ip := range s.publicIPs.Values {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, s.set.Invalid("public-ip", "%q is not an IP address", ip))
		}
	}
	if s.shutdownTimeout <= 0 || s.shutdownTimeout > 10*time.Minute {
		errs = append(errs, s.set.Invalid("shutdown-timeout", "%s is outside (0, 10m]", s.shutdownTimeout))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	s := newSettings(stderr)
	if err := s.load(args, getenv); err != nil {
		return err
	}
	log, err := obs.NewLogger(stderr, s.logLevel.Value, s.logFormat.Value)
	if err != nil {
		return err
	}
	linkTLS, err := sfulink.ServerTLS(s.linkCert, s.linkKey, s.linkClientCA)
	if err != nil {
		return fmt.Errorf("-link-cert, -link-key, -link-client-ca: %w", err)
	}
	reg := obs.NewRegistry()
	node, err := media.New(media.Config{Log: log, MaxParticipants: s.maxParticipants, MaxTracks: s.maxTracks,
		UDPListen: s.udpListen.Value, TCPListen: s.tcpListen.Value, PublicIPs: s.publicIPs.Values, OwnTransport: s.ownTransport, Metrics: reg})
	if err != nil {
		return fmt.Errorf("media node: %w", err)
	}
	log.Info("media listening", "addrs", fmt.Sprint(node.Addrs()), "public_ips", len(s.publicIPs.Values))
	adminLn, err := serve.Listen("admin", s.adminListen.Value)
	if err != nil {
		node.Close()
		return err
	}
	linkLn, err := serve.Listen("link", s.linkListen.Value)
	if err != nil {
		adminLn.Close()
		node.Close()
		return err
	}
	link := sfulink.NewServer(sfulink.ServerConfig{Node: node, Log: log})

	registerMetrics(reg, link)
	health := obs.NewHealth(log, 2*time.Second)
	// Ready from the moment the link listener is open until shutdown
	// begins, so that signal's health checks stop choosing a leaving node.
	var ready atomic.Bool
	ready.Store(true)
	stop := context.AfterFunc(ctx, func() { ready.Store(false) })
	defer stop()
	health.AddCheck("link", func(context.Context) error {
		if !ready.Load() {
			return errors.New("link listener closed")
		}
		return nil
	})

	log.Info("sfu node started", "max_participants", s.maxParticipants)
	err = serve.Run(ctx, log, s.shutdownTimeout,
		serve.Server{Name: "admin", Listener: adminLn, Handler: obs.AdminHandler(reg, health)},
		serve.Server{Name: "link", Listener: linkLn, Handler: link, TLS: linkTLS})
	// The listeners are closed; the links are WebSockets the HTTP server
	// no longer tracks. Every session hears that the node shuts down, so
	// signal moves its consult, before the links close.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	if serr := link.Shutdown(shutdownCtx); serr != nil {
		log.Warn("links closed before their messages were out", "err", serr)
	}
	node.Close()
	log.Info("stopped")
	return err
}

// registerMetrics adds the link's series; the media node registers its own
// (sfu_participants, sfu_rooms, sfu_forwarded_packets_total, ...).
func registerMetrics(reg *prometheus.Registry, link *sfulink.Server) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sfu_links", Help: "Signal servers connected over the link."},
		func() float64 { return float64(link.Links()) }))
}
