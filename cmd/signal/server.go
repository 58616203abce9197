package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/internal/serve"
	"github.com/openconsult/openconsult/internal/tlsconf"
	"github.com/openconsult/openconsult/internal/tlsmux"
	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/mailer"
	"github.com/openconsult/openconsult/recording"
	"github.com/openconsult/openconsult/relay"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/site"
	"github.com/openconsult/openconsult/store"
)

// server is a started signal process: database open, listeners bound.
type server struct {
	log        *slog.Logger
	db         *store.DB
	grace      time.Duration
	servers    []serve.Server
	background []func(context.Context) // owned loops, stopped with the servers
	stopping   []func(context.Context) // run once the servers stopped, before the database closes
	closers    []func() error          // closed after the servers stopped
	// recordings records consults; the live consult starts them.
	recordings *recording.Service
}

// start wires the process together. Anything that can fail (database,
// certificates, ports) fails here, before a URL is announced.
func start(ctx context.Context, s *settings, stdout, stderr io.Writer) (_ *server, err error) {
	log, err := obs.NewLogger(stderr, s.logLevel.Value, s.logFormat.Value)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := store.Open(ctx, s.database)
	if err != nil {
		return nil, err
	}
	var listeners []net.Listener
	defer func() {
		if err != nil {
			for _, ln := range listeners {
				ln.Close()
			}
			db.Close()
		}
	}()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("database migrations: %w", err)
	}
	version, _ := db.SchemaVersion(ctx)
	log.Info("database ready", "dialect", db.Dialect(), "schema_version", version, "migrations_applied", applied)

	tlsConfig, acme, err := serverTLS(s)
	if err != nil {
		return nil, err
	}
	listen := func(name, addr string) (net.Listener, error) {
		ln, err := serve.Listen(name, addr)
		if err == nil {
			listeners = append(listeners, ln)
		}
		return ln, err
	}
	httpsLn, err := listen("HTTPS", s.listen.Value)
	if err != nil {
		return nil, err
	}
	if s.proxyProto.on() {
		httpsLn = withProxyProtocol(s, httpsLn, log)
		listeners = append(listeners, httpsLn)
	}
	public := publicURL(s, httpsLn.Addr())

	reg := obs.NewRegistry()
	health := obs.NewHealth(log, 2*time.Second)
	health.AddCheck("database", db.Ping)

	master, err := masterKey(s, log)
	if err != nil {
		return nil, err
	}
	keys, err := keyring.Open(ctx, db, master)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	signer, err := auditSigner(s, db, public.Hostname()+"/audit")
	if err != nil {
		return nil, err
	}
	auditLog, err := openAuditLog(ctx, s, db, signer, log, reg, health)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			auditLog.file.Close()
		}
	}()
	recorder := auditRecorder{log: auditLog.Log}

	var mail auth.Mailer = &mailer.Outbox{Dir: s.outboxDir, From: "noreply@" + public.Hostname(), Log: log, Now: time.Now}
	if s.smtpAddr != "" {
		mail = &mailer.SMTP{Addr: s.smtpAddr, From: s.smtpFrom, Username: s.smtpUsername, Password: s.smtpPassword, Now: time.Now}
	}
	policy := auth.DefaultPolicy
	policy.RequireTOTP = s.requireTOTP
	policy.Password.MinLength = s.passwordMinLength
	policy.Password.RequireMixed = s.passwordMixed
	policy.Password.ContextWords = auth.ContextWords(s.institution)
	policy.Password.MaxRepeat, policy.Password.MaxAge = s.passwordMaxRepeat, s.passwordMaxAge
	policy.MaxFailures, policy.LockoutFor = s.lockoutAttempts, s.lockoutDuration
	policy.IdleTimeout, policy.AbsoluteTimeout = s.sessionIdle, s.sessionMaxAge
	policy.PasswordSignInOff, policy.BreakGlass = !s.passwordSignIn, breakGlassNames(s.breakGlass.Values)
	hashing := auth.NewHashGate(s.hashConcurrency, s.hashWait)
	log.Info("password hashing bounded", "concurrent", hashing.Size(), "wait", s.hashWait.String())
	setup := &auth.Setup{Store: db, TTL: s.setupLinkTTL, Hash: auth.DefaultHashParams, Policy: policy.Password, Now: time.Now, Gate: hashing}
	proxies, _ := s.proxyPrefixes() // validated with the settings

	stun, turnURLs, turnSecret := s.stunURLs.Values, s.turnURLs.Values, []byte(s.turnSecret)
	httpsSrv := serve.Server{Name: "https", Listener: httpsLn, TLS: tlsConfig}
	var mux *tlsmux.Mux
	if s.relayOnHTTPS {
		if mux, err = shareHTTPSPort(httpsLn, tlsConfig, public, log); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				mux.Close()
			}
		}()
		httpsSrv.Listener, httpsSrv.Handshaken = mux.HTTP(), true
	}
	var embedded *relay.Server
	if s.relayListen.on() {
		var shared net.Listener
		if mux != nil {
			shared = mux.TURN()
		}
		if embedded, stun, turnURLs, turnSecret, err = startRelay(s, tlsConfig, public, shared, reg, log); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				embedded.Close()
			}
		}()
	}
	var mediaNode signaling.MediaNode
	var closeMedia func()
	switch {
	case s.sfuEmbedded:
		sfu, err := startSFU(s, reg, log)
		if err != nil {
			return nil, err
		}
		mediaNode, closeMedia = sfu, sfu.Close
	case len(s.sfuNodes.Values) > 0:
		pool, err := connectSFUNodes(ctx, s, reg, log)
		if err != nil {
			return nil, err
		}
		mediaNode, closeMedia = pool, pool.Close
	}
	defer func() {
		if err != nil && closeMedia != nil {
			closeMedia()
		}
	}()
	objects, err := objectStore(ctx, s, keys, log)
	if err != nil {
		return nil, err
	}
	health.AddCheck("object store", func(ctx context.Context) error {
		_, err := objects.Backend().List(ctx, "health/")
		return err
	})
	consults := &consult.Service{Store: db, Sealer: keys, Log: log, Public: public, LinkTTL: s.linkTTL, Now: time.Now,
		DenialLimit: s.guestDenialLimit, Objects: objects, Documents: documentLimits(s),
		Uploads: consult.NewUploadLimiter(s.documentUploadsPerMin)}
	if moved, err := consults.MoveDocuments(ctx); err != nil {
		return nil, fmt.Errorf("move shared documents into the object store: %w", err)
	} else if moved > 0 {
		log.Info("shared documents moved into the object store", "documents", moved)
	}
	// The live consult starts recordings here once every member agreed;
	// the site plays them back and retention deletes them.
	recordings := &recording.Service{Store: db, Objects: objects, Sealer: keys, Audit: recorder, Log: log, Now: time.Now}
	ice := iceServers(stun, turnURLs, turnSecret, s.turnTTL)
	large, err := signaling.NewLargeMessages(int64(s.largeMessageMiB)<<20, reg)
	if err != nil {
		return nil, err
	}
	log.Info("large signaling messages bounded", "at_once", large.Messages(), "mib", s.largeMessageMiB)
	roomDeps := signaling.RoomDeps{
		Chat: consults, Audit: recorder, Records: consults, Log: log, Now: time.Now, Grace: s.resumeGrace,
		ICE: func(_, member string) []signaling.ICEServer { return ice(member, 0) },
		RelayOnly: func(ctx context.Context, consultID string) (bool, error) {
			if s.relayOnly {
				return true, nil
			}
			c, err := db.ConsultByID(ctx, consultID)
			return c.RelayOnly, err
		},
		// An open call page's session is checked well inside the idle
		// timeout, so the call itself keeps the session alive.
		SessionCheck: min(time.Minute, s.sessionIdle/2),
		Media:        mediaNode, SFUMinParticipants: s.sfuMinParticipants, SFUReturnAfter: s.sfuReturnAfter,
		LargeMessages: large,
	}
	roomDeps.Recordings = recordings
	roomDeps.RecordingPolicy = signaling.RecordingPolicy{Viewers: s.recordingViewers.Values, Retention: s.recordingRetention}
	if s.roomHook != nil {
		s.roomHook(&roomDeps)
	}
	hub, closeLive, err := newLiveConsults(s, db, roomDeps, master, reg, log)
	if err != nil {
		return nil, err
	}

	accounts, err := auth.NewService(auth.Deps{Store: db, Sealer: keys, Audit: recorder, Mail: mail, Live: hub, Log: log, PublicURL: public,
		Issuer: s.institution, Hash: auth.DefaultHashParams, Hashing: hashing, Policy: policy, Now: time.Now, SSO: db})
	if err != nil {
		return nil, err
	}
	resets := auth.NewResetQueue(accounts, 256)
	passkeys, err := newPasskeys(accounts, db, s, public, log)
	if err != nil {
		return nil, err
	}

	flows, err := ssoFlows(s, public, keys, db, log)
	if err != nil {
		return nil, err
	}
	limiter, closeLimiter, err := sharedLimiter(s, log)
	if err != nil {
		return nil, err
	}
	web, err := site.New(site.Options{
		Log: log, Health: health, Metrics: obs.NewHTTPMetrics(reg, "site"), Setup: setup, Accounts: accounts,
		Consults: consults, Audit: auditLog.Log, Signaling: hub, Documents: consults, Rooms: hub, Lobbies: hub, DocAudit: recorder, Upgrader: signaling.Upgrader(public), RelayOnly: s.relayOnly, ICE: ice, Now: time.Now,
		PasswordLo: policy.Password.MinLength, PasswordHi: policy.Password.MaxLength,
		HSTSMaxAge: s.hstsMaxAge, Resets: resets, Passkeys: passkeys, TrustedProxies: proxies, ClientHeader: s.clientAddressHeader(),
		SSO: flows, SSOAccounts: accounts, Limiter: limiter, LegalHolds: db,
		Recordings: recordings, RecordingRoles: s.recordingViewers.Values,
		Institution: site.Institution{Name: s.institution, Logo: s.logo}, Hosts: consults,
	})
	if err != nil {
		return nil, err
	}
	retention := &consult.Sweeper{Store: db, Objects: objects, Audit: recorder, Log: log, Now: time.Now,
		Retention: s.documentRetention, Every: time.Hour, Recordings: db, RecordingRetention: s.recordingRetention}
	srv := &server{log: log, db: db, grace: s.shutdownTimeout, background: append([]func(context.Context){hub.Run, resets.Run, retention.Run},
		auditLog.loops(s.auditCheckpointEach)...),
		stopping:   []func(context.Context){recordings.Shutdown, func(ctx context.Context) { auditLog.shutdown(ctx, log) }},
		recordings: recordings,
		closers:    []func() error{auditLog.file.Close},
	}
	if closeLimiter != nil {
		srv.closers = append(srv.closers, closeLimiter)
	}
	if closeLive != nil {
		srv.closers = append(srv.closers, closeLive)
	}
	if embedded != nil {
		srv.closers = append(srv.closers, embedded.Close)
	}
	if mux != nil {
		srv.closers = append(srv.closers, mux.Close)
	}
	if closeMedia != nil {
		srv.closers = append(srv.closers, func() error { closeMedia(); return nil })
	}
	httpsSrv.Handler = web.Handler()
	srv.servers = append(srv.servers, httpsSrv)

	if s.httpListen.Value != "" {
		ln, err := listen("HTTP redirect", s.httpListen.Value)
		if err != nil {
			return nil, err
		}
		var h http.Handler = site.RedirectHandler(public)
		if acme != nil {
			h = acme.HTTPHandler(h)
		}
		srv.servers = append(srv.servers, serve.Server{Name: "http-redirect", Listener: ln, Handler: h})
	}
	if s.adminListen.Value != "" {
		ln, err := listen("admin", s.adminListen.Value)
		if err != nil {
			return nil, err
		}
		srv.servers = append(srv.servers, serve.Server{Name: "admin", Listener: ln, Handler: obs.AdminHandler(reg, health)})
	}

	token, expires, issued, err := setup.IssueIfNeeded(ctx)
	if err != nil {
		return nil, fmt.Errorf("setup link: %w", err)
	}
	if issued {
		// The link goes to the operator's terminal, never into the log
		// stream, which may be shipped elsewhere.
		fmt.Fprintf(stdout, "No account exists yet. Create the first administrator with this one-time link\n(valid until %s):\n\n    %s/setup/%s\n\n",
			expires.UTC().Format(time.RFC3339), public, token)
		log.Info("setup link issued", "expires", expires.UTC())
	}
	fmt.Fprintf(stdout, "OpenConsult is running. Open %s\n", public)
	return srv, nil
}

// serve runs until ctx is cancelled, then shuts down and closes the database.
func (srv *server) serve(ctx context.Context) error {
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, loop := range srv.background {
		wg.Go(func() { loop(bg) })
	}
	err := serve.Run(ctx, srv.log, srv.grace, srv.servers...)
	for _, f := range srv.stopping {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), srv.grace)
		f(sctx)
		cancel()
	}
	stop()
	wg.Wait()
	for _, c := range srv.closers {
		if cerr := c(); cerr != nil {
			srv.log.Warn("close", "err", cerr)
		}
	}
	if cerr := srv.db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close database: %w", cerr)
	}
	srv.log.Info("stopped")
	return err
}

// serverTLS picks the certificate source: development self-signed, files, or
// ACME (which also answers challenges on the HTTP listener).
func serverTLS(s *settings) (*tls.Config, *tlsconf.ACME, error) {
	switch {
	case s.tlsCert != "":
		src, err := tlsconf.NewFileSource(s.tlsCert, s.tlsKey)
		if err != nil {
			return nil, nil, err
		}
		return tlsconf.Server(src.GetCertificate), nil, nil
	case len(s.acmeDomains.Values) > 0:
		acme := tlsconf.NewACME(s.acmeDomains.Values, s.acmeEmail, filepath.Join(s.dataDir, "acme"), s.acmeDirectory)
		cfg := tlsconf.Server(nil)
		acme.Configure(cfg)
		return cfg, acme, nil
	default: // -dev; validate refuses the rest
		cert, err := tlsconf.DevCertificate(filepath.Join(s.dataDir, "tls"), tlsconf.DevHosts, time.Now())
		if err != nil {
			return nil, nil, fmt.Errorf("development certificate: %w", err)
		}
		return tlsconf.Server(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }), nil, nil
	}
}

// publicURL is the configured public address, the first ACME domain, or in
// development https://localhost with the port actually bound.
func publicURL(s *settings, bound net.Addr) *url.URL {
	switch {
	case s.publicURL.Value != nil:
		return s.publicURL.Value
	case len(s.acmeDomains.Values) > 0:
		return &url.URL{Scheme: "https", Host: s.acmeDomains.Values[0]}
	default:
		host := "localhost"
		if port := bound.(*net.TCPAddr).Port; port != 443 {
			host = net.JoinHostPort(host, strconv.Itoa(port))
		}
		return &url.URL{Scheme: "https", Host: host}
	}
}

// The live consult starts recordings through the recording service.
var _ signaling.Recordings = (*recording.Service)(nil)
