package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/site"
	"github.com/openconsult/openconsult/site/redislimit"
)

// settings are every knob of the signal server.
type settings struct {
	set  *config.Set
	tool bool // an operator subcommand: no listeners, so no certificate needed
	// roomHook, set by tests only, adjusts the live consults' collaborators
	// before the hub starts.
	roomHook func(*signaling.RoomDeps)

	dev             bool
	check           bool
	listen          config.Addr
	httpListen      config.Addr
	adminListen     config.Addr
	publicURL       config.URL
	dataDir         string
	database        string
	tlsCert         string
	tlsKey          string
	acmeDomains     config.StringList
	acmeEmail       string
	acmeDirectory   string
	hstsMaxAge      time.Duration
	setupLinkTTL    time.Duration
	shutdownTimeout time.Duration
	logLevel        config.Enum
	logFormat       config.Enum

	institution       string
	institutionLogo   string
	logo              site.Logo // read from institutionLogo by validate
	requireTOTP       bool
	passkeys          passkeySettings
	passwordMinLength int
	passwordMixed     bool
	lockoutAttempts   int
	lockoutDuration   time.Duration
	sessionIdle       time.Duration
	sessionMaxAge     time.Duration
	passwordMaxRepeat int
	passwordMaxAge    time.Duration
	hashConcurrency   int
	hashWait          time.Duration
	trustedProxies    config.StringList
	proxyProto        proxyProtocol
	clientHeader      config.Enum
	redis             string
	oidcProviders     string
	getenv            func(string) string // for secrets named in files
	passwordSignIn    bool
	breakGlass        config.StringList

	smtpAddr     string
	smtpFrom     string
	smtpUsername string
	smtpPassword string
	outboxDir    string

	masterKey         string
	keyFile           string
	keyPassphrase     string
	keyPassphraseFile string
	// previous is the master key before a rotation, which the replicas'
	// bus accepts as well until every replica runs the new one.
	previous            previousMasterKey
	auditKeyFile        string
	auditCheckpointEach time.Duration
	auditCheckpointDir  string
	auditSyslog         string
	auditWitness        string

	linkTTL     time.Duration
	resumeGrace time.Duration
	relayOnly   bool
	stunURLs    config.StringList
	turnURLs    config.StringList
	turnSecret  string
	turnTTL     time.Duration

	guestDenialLimit int

	relayListen      listenList
	relayTLSListen   config.Addr
	relayOnHTTPS     bool
	relayPublicIP    string
	relayIP6         string
	relayPublicIP6   string
	relayMaxBPS      int64
	relayMaxTotalBPS int64

	sfuEmbedded        bool
	sfuMinParticipants int
	largeMessageMiB    int
	sfuReturnAfter     time.Duration
	sfuMaxParticipants int
	sfuUDPListen       config.Addr
	sfuOwnTransport    bool
	sfuTCPListen       config.Addr
	sfuPublicIPs       config.StringList
	sfuNodes           config.StringList
	sfuLinkCert        string
	sfuLinkKey         string
	sfuLinkCA          string

	objectStore           config.Enum
	objectDir             string
	documentMaxFiles      int
	documentMaxMiB        int
	documentUploadsPerMin int
	documentRetention     time.Duration
	recordingRetention    time.Duration
	recordingViewers      config.StringList

	azureContainer        string
	azureConnectionString string
	azureAccountURL       string
	azureAccountKey       string
	azureSAS              string
}

// Defaults that -dev changes, applied only to settings nobody set.
const (
	devListen      = "localhost:8443"
	devHTTPListen  = "localhost:8080"
	devAdminListen = "localhost:9090"
	devRelay       = "127.0.0.1:3478"
	devRelayTLS    = "127.0.0.1:5349"
)

func newSettings(stderr io.Writer) *settings {
	s := &settings{
		listen:      config.Addr{Value: ":443"},
		httpListen:  config.Addr{Value: ":80"},
		adminListen: config.Addr{Value: "127.0.0.1:9090"},
		logLevel:    config.Enum{Value: "info", Allowed: obs.LogLevels},
		logFormat:   config.Enum{Value: "json", Allowed: obs.LogFormats},
		objectStore: config.Enum{Value: "filesystem", Allowed: []string{"filesystem", "azure"}},
	}
	s.clientHeader = config.Enum{Value: "x-forwarded-for", Allowed: []string{"x-forwarded-for", "forwarded"}}
	s.set = config.New("signal", "SIGNAL", stderr)
	fs := s.set.Flags()
	fs.BoolVar(&s.dev, "dev", false, "development mode: self-signed certificate for localhost under -data-dir, loopback listeners ("+devListen+", "+devHTTPListen+", "+devAdminListen+")")
	fs.BoolVar(&s.check, "check", false, "validate the configuration (settings, certificate files, where browsers are sent for the TURN relay), print a summary and exit")
	fs.Var(&s.listen, "listen", "HTTPS `address` of the site, API and signaling (dev: "+devListen+")")
	fs.Var(&s.httpListen, "http-listen", "plain HTTP `address` that only redirects to HTTPS and answers ACME challenges; off to disable (dev: "+devHTTPListen+")")
	fs.Var(&s.adminListen, "admin-listen", "plain HTTP `address` of /metrics, /healthz and /readyz for monitoring; keep it on a private interface; off to disable (dev: "+devAdminListen+")")
	fs.Var(&s.publicURL, "public-url", "`URL` patients and staff use to reach the site, such as https://consult.example-hospital.org (required unless -dev or -acme-domain)")
	fs.StringVar(&s.dataDir, "data-dir", "./data", "`directory` for the database, development certificate and ACME cache (created mode 0700)")
	fs.StringVar(&s.database, "database", "", "database: sqlite:PATH (default sqlite:<data-dir>/signal.db) or postgres://USER@HOST:PORT/DB; prefer SIGNAL_DATABASE or PGPASSWORD for a password")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM certificate chain `file`; re-read when it changes")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM private key `file` of -tls-cert")
	fs.Var(&s.acmeDomains, "acme-domain", "obtain certificates automatically (ACME) for this `domain`; repeatable")
	fs.StringVar(&s.acmeEmail, "acme-email", "", "contact `address` given to the ACME certificate authority")
	fs.StringVar(&s.acmeDirectory, "acme-directory", "", "ACME directory `URL` of an institution's own CA (default Let's Encrypt)")
	fs.DurationVar(&s.hstsMaxAge, "hsts-max-age", 2*365*24*time.Hour, "Strict-Transport-Security max-age sent on every HTTPS response (0 to omit, not recommended)")
	fs.DurationVar(&s.setupLinkTTL, "setup-link-ttl", time.Hour, "lifetime of the one-time link that creates the first administrator (1m to 24h)")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 15*time.Second, "time in-flight requests get to finish on shutdown")
	fs.Var(&s.logLevel, "log-level", "log `level`: debug, info, warn or error")
	fs.Var(&s.logFormat, "log-format", "log `format`: json or text")

	fs.StringVar(&s.institution, "institution", "OpenConsult", "`name` shown in authenticator apps, e-mail and at the top of every page (patients see it on the join page and in the waiting room)")
	fs.StringVar(&s.institutionLogo, "institution-logo", "", "logo `file` shown next to -institution on every page: PNG, JPEG, WebP or GIF up to 256 KiB (SVG is refused); served at /institution-logo")
	fs.BoolVar(&s.requireTOTP, "require-totp", true, "require a second factor (TOTP) for every account; false lets users choose")
	s.passkeys.register(fs)
	fs.IntVar(&s.passwordMinLength, "password-min-length", 12, "minimum password length in characters (8 to 64)")
	fs.BoolVar(&s.passwordMixed, "password-composition", false, "also require an upper-case letter, a lower-case letter and a digit")
	fs.IntVar(&s.lockoutAttempts, "lockout-attempts", 5, "failed sign-ins that lock a username (3 to 20)")
	fs.DurationVar(&s.lockoutDuration, "lockout-duration", 15*time.Minute, "how long a locked username stays locked (1m to 24h)")
	fs.DurationVar(&s.sessionIdle, "session-idle-timeout", 30*time.Minute, "a session without activity ends after this (1m to 12h)")
	fs.DurationVar(&s.sessionMaxAge, "session-max-age", 12*time.Hour, "a session ends this long after sign-in, whatever the activity (1h to 7 days)")
	fs.IntVar(&s.passwordMaxRepeat, "password-max-repeat", 0, "refuse passwords with more than this many identical characters in a row (0: no such rule; 1 to 10)")
	fs.DurationVar(&s.passwordMaxAge, "password-max-age", 0, "make users choose a new password at sign-in once theirs is this old, such as 2160h for 90 days (0: passwords do not expire; otherwise at least 24h)")
	fs.IntVar(&s.hashConcurrency, "password-hash-concurrency", 0, "password hashes (argon2id, 64 MiB each) computed at once; the process's memory for hashing is bounded by this times 64 MiB (0: the number of CPUs; at most 256)")
	fs.DurationVar(&s.hashWait, "password-hash-wait", auth.DefaultHashWait, "how long a sign-in or password change waits for a hashing slot before the answer is 503 with Retry-After (0 to 30s)")
	fs.Var(&s.trustedProxies, "trusted-proxy", "`CIDR` (or address) of a reverse proxy whose -client-address-header names the client, for rate limits and the audit log; repeatable; other peers' headers are ignored")
	s.proxyProto.register(fs)
	fs.StringVar(&s.redis, "redis", "", "redis://[:PASSWORD@]HOST:PORT/DB (or rediss://) where every signal server keeps the per-address rate limits, so replicas share them; password in the URL or SIGNAL_REDIS_PASSWORD; empty keeps them in memory")
	fs.StringVar(&s.oidcProviders, "oidc-providers", "", "TOML `file` of identity providers (OpenID Connect, and SAML 2.0 with kind = \"saml\") for staff single sign-on (see docs/operations.md); default none")
	fs.BoolVar(&s.passwordSignIn, "password-signin", true, "allow local password sign-in; false leaves single sign-on as the only way in except for -break-glass accounts")
	fs.Var(&s.breakGlass, "break-glass", "`username` that may still sign in with a password when -password-signin=false; repeatable")
	fs.Var(&s.clientHeader, "client-address-header", "`header` the -trusted-proxy proxies append the client's address to: x-forwarded-for or forwarded (RFC 7239); the right-most address that is not a trusted proxy is the client")

	fs.StringVar(&s.smtpAddr, "smtp-addr", "", "`host:port` of the institution's SMTP relay (STARTTLS required off loopback); empty writes mail to -outbox-dir")
	fs.StringVar(&s.smtpFrom, "smtp-from", "", "sender `address` of the platform's e-mail (required with -smtp-addr)")
	fs.StringVar(&s.smtpUsername, "smtp-username", "", "SMTP user name, when the relay asks for one")
	fs.StringVar(&s.smtpPassword, "smtp-password", "", "SMTP password (prefer the environment variable to the command line)")
	fs.StringVar(&s.outboxDir, "outbox-dir", "", "`directory` for outgoing mail when no SMTP relay is set (default <data-dir>/outbox)")

	fs.StringVar(&s.masterKey, "master-key", "", "base64 master key that protects encrypted fields (prefer SIGNAL_MASTER_KEY); alternative to -key-file")
	fs.StringVar(&s.keyFile, "key-file", "", "passphrase-protected master key `file` (create with: signal keys init); alternative to -master-key")
	fs.StringVar(&s.keyPassphrase, "key-passphrase", "", "passphrase of -key-file (prefer SIGNAL_KEY_PASSPHRASE or -key-passphrase-file to the command line)")
	fs.StringVar(&s.keyPassphraseFile, "key-passphrase-file", "", "`file` holding the passphrase of -key-file")
	fs.StringVar(&s.previous.masterKey, "previous-master-key", "", "during a rotation of the master key, the base64 previous master key (prefer SIGNAL_PREVIOUS_MASTER_KEY): replicas on it and on the new key keep understanding each other on Redis")
	fs.StringVar(&s.previous.keyFile, "previous-key-file", "", "during a rotation of the master key, the previous master key `file`, as -previous-master-key")
	fs.StringVar(&s.previous.passphrase, "previous-key-passphrase", "", "passphrase of -previous-key-file (prefer SIGNAL_PREVIOUS_KEY_PASSPHRASE or -previous-key-passphrase-file)")
	fs.StringVar(&s.previous.passphraseFile, "previous-key-passphrase-file", "", "`file` holding the passphrase of -previous-key-file")
	fs.StringVar(&s.auditKeyFile, "audit-key-file", "", "Ed25519 signing key `file` of audit checkpoints (default <data-dir>/audit-signing.key; created at first start on SQLite, by signal audit keygen on PostgreSQL)")
	fs.DurationVar(&s.auditCheckpointEach, "audit-checkpoint-interval", 5*time.Minute, "how often a signed audit checkpoint is issued when the log grew (1m to 24h)")
	fs.StringVar(&s.auditCheckpointDir, "audit-checkpoint-dir", "", "`directory` of the append-only file of signed audit checkpoints kept outside the database (created mode 0700; default <data-dir>/audit-checkpoints): place it on other storage than the database")
	fs.StringVar(&s.auditSyslog, "audit-syslog", "", "also send each signed audit checkpoint to syslog: local, or udp:, tcp: or unixgram: and an `address` (default off)")
	fs.StringVar(&s.auditWitness, "audit-witness-url", "", "also POST each signed audit checkpoint to this https `URL` (a witness), retried without delaying the log (default off)")

	fs.DurationVar(&s.linkTTL, "link-ttl", 24*time.Hour, "how long a patient or guest link works (10m to 7 days)")
	fs.IntVar(&s.guestDenialLimit, "guest-denial-limit", 3, "denials or removals of a device's guests after which a link refuses that device (1 to 20)")
	fs.DurationVar(&s.resumeGrace, "resume-grace", time.Minute, "how long a participant whose connection dropped keeps their place (10s to 10m)")
	fs.BoolVar(&s.relayOnly, "relay-only", false, "route every consult's media through the TURN relay, hiding participants' addresses from each other")
	fs.Var(&s.stunURLs, "stun-url", "STUN server `URL` given to browsers, such as stun:turn.example-hospital.org:3478; repeatable")
	fs.Var(&s.turnURLs, "turn-url", "TURN server `URL` given to browsers with per-participant credentials, such as turn:turn.example-hospital.org:3478?transport=udp or turns:turn.example-hospital.org:443?transport=tcp; repeatable")
	fs.StringVar(&s.turnSecret, "turn-secret", "", "shared secret of the TURN relay's REST credentials (turnd -auth-secret, coturn static-auth-secret); prefer SIGNAL_TURN_SECRET")
	fs.DurationVar(&s.turnTTL, "turn-credential-ttl", 12*time.Hour, "lifetime of the TURN credentials given at admission (10m to 48h)")
	fs.Var(&s.relayListen, "relay-listen", "UDP and TCP `address` of a TURN relay embedded in this process, for small sites and development; browsers are pointed at it unless -turn-url is set; repeat (or separate with commas) for several, the first IPv4 one being the address IPv4 relay sockets bind to (default off; dev: "+devRelay+")")
	fs.StringVar(&s.relayPublicIP, "relay-public-ip", "", "IPv4 `address` of the embedded relay told to browsers behind 1:1 NAT, in its relayed addresses and in the stun: and turn: URLs of the listeners on -relay-listen's IPv4 address, which the relay still binds to (turnd -public-ip)")
	fs.StringVar(&s.relayIP6, "relay-ip6", "", "local IPv6 `address` the embedded relay's sockets of IPv6 allocations bind to (RFC 6156); empty: IPv4 relaying only (turnd -relay-ip6)")
	fs.StringVar(&s.relayPublicIP6, "relay-public-ip6", "", "IPv6 relayed `address` told to browsers when it differs from -relay-ip6 (turnd -public-ip6)")
	fs.Int64Var(&s.relayMaxBPS, "relay-max-bps", 0, "the embedded relay's bandwidth cap per allocation and direction in bits per second (0: none; turnd -max-bps)")
	fs.Int64Var(&s.relayMaxTotalBPS, "relay-max-total-bps", 0, "the embedded relay's bandwidth cap of all allocations together, per direction, in bits per second (0: none; turnd -max-total-bps)")
	fs.Var(&s.relayTLSListen, "relay-tls-listen", "TURN over TLS `address` of the embedded relay, with the site's certificate (default off; dev: "+devRelayTLS+")")
	fs.BoolVar(&s.relayOnHTTPS, "relay-on-https-port", false, "also serve the embedded relay's TURN over TLS on the HTTPS -listen address and port, told apart after the TLS handshake, for patients whose networks allow only TCP 443; browsers get turns: with -public-url's host and port (instead of -relay-tls-listen)")
	fs.BoolVar(&s.sfuEmbedded, "sfu-embedded", false, "run a media node (SFU) inside this process for consults of three or more, for small sites and development (default off; dev: on)")
	fs.IntVar(&s.sfuMinParticipants, "sfu-min-participants", 3, "admitted members that move a consult from peer to peer onto the media node (2 to 50)")
	fs.IntVar(&s.largeMessageMiB, "large-message-mib", signaling.DefaultLargeMessageBudget>>20, "MiB that signaling messages over 64 KiB (the offers and answers of large consults on the media node) may hold at once across every tab of this process while they are read and handled, 433 KiB each; one that finds no room within 2s is refused with busy (1 to 4096)")
	fs.DurationVar(&s.sfuReturnAfter, "sfu-return-after", 10*time.Second, "how long a consult on the media node must have fewer than -sfu-min-participants members before it moves back to peer to peer, with media encrypted end to end again (0 keeps it on the node; at most 1h)")
	fs.IntVar(&s.sfuMaxParticipants, "sfu-max-participants", 200, "participants the embedded media node takes before it refuses more")
	fs.Var(&s.sfuUDPListen, "sfu-udp-listen", "UDP `address` browsers send media to on the embedded media node, one port for all (default off: a port per participant)")
	fs.BoolVar(&s.sfuOwnTransport, "sfu-own-transport", false, "run the embedded media node's sessions on its own transport (ICE-lite, DTLS and SRTP on the -sfu-udp-listen port) instead of pion's peer connections: far fewer goroutines and less CPU per participant; needs -sfu-udp-listen")
	fs.Var(&s.sfuTCPListen, "sfu-tcp-listen", "passive ICE-TCP `address` of the embedded media node, for browsers whose networks block UDP (default off)")
	fs.Var(&s.sfuPublicIPs, "sfu-public-ip", "`address` browsers reach the embedded media node at behind 1:1 NAT; repeatable")
	fs.Var(&s.sfuNodes, "sfu-node", "link `URL` of a media node (sfu -link-listen), such as wss://sfu-1.example.internal:7443/; repeatable: each consult goes to the least-loaded node with room")
	fs.StringVar(&s.sfuLinkCert, "sfu-link-cert", "", "PEM client certificate `file` signal presents to media nodes (signed by their -link-client-ca); re-read when renewed")
	fs.StringVar(&s.sfuLinkKey, "sfu-link-key", "", "PEM private key `file` of -sfu-link-cert")
	fs.StringVar(&s.sfuLinkCA, "sfu-link-ca", "", "PEM `file` of the CA that signs the media nodes' link certificates")

	fs.Var(&s.objectStore, "object-store", "where shared documents are kept, encrypted: filesystem (under -object-dir) or azure (Azure Blob Storage, see -azure-*)")
	fs.StringVar(&s.objectDir, "object-dir", "", "`directory` of the filesystem object store (default <data-dir>/objects)")
	fs.StringVar(&s.azureContainer, "azure-container", "openconsult", "Azure Blob `container` of -object-store azure (created if missing and the credential may)")
	fs.StringVar(&s.azureConnectionString, "azure-connection-string", "", "Azure Storage connection string (prefer SIGNAL_AZURE_CONNECTION_STRING); alternative to -azure-account-url")
	fs.StringVar(&s.azureAccountURL, "azure-account-url", "", "blob endpoint `URL` of the storage account, such as https://hospitalconsults.blob.core.windows.net; with -azure-account-key, -azure-sas, or neither for the managed identity (azidentity default credential)")
	fs.StringVar(&s.azureAccountKey, "azure-account-key", "", "storage account key (prefer SIGNAL_AZURE_ACCOUNT_KEY)")
	fs.StringVar(&s.azureSAS, "azure-sas", "", "SAS token of the container, with read, write, create, delete and list permissions (prefer SIGNAL_AZURE_SAS)")
	fs.IntVar(&s.documentMaxFiles, "document-max-files", 50, "documents that may be shared in one consult (1 to 10000)")
	fs.IntVar(&s.documentMaxMiB, "document-max-mib", 200, "total MiB of the documents shared in one consult (10 to 102400)")
	fs.IntVar(&s.documentUploadsPerMin, "document-uploads-per-minute", 10, "documents one member may share per minute, in a burst of as many (1 to 600)")
	fs.DurationVar(&s.documentRetention, "document-retention", 0, "how long shared documents are kept before they are deleted, such as 2160h; 0 keeps them forever, and consults under legal hold keep theirs (0 or at least 1h)")
	fs.DurationVar(&s.recordingRetention, "recording-retention", 0, "how long consult recordings are kept before they are deleted, such as 2160h; 0 keeps them forever, and consults under legal hold keep theirs (0 or at least 1h)")
	fs.Var(&s.recordingViewers, "recording-viewer", "account `role` (admin or clinician) that may watch and download every consult's recordings, besides the consult's own clinician; repeatable; none by default")
	return s
}

// load reads the settings and checks how they fit together.
func (s *settings) load(args []string, getenv func(string) string) error {
	s.getenv = getenv
	if err := s.set.Load(args, getenv); err != nil {
		return err
	}
	if s.dev {
		for _, d := range []struct {
			name  string
			addr  *config.Addr
			value string
		}{
			{"listen", &s.listen, devListen},
			{"http-listen", &s.httpListen, devHTTPListen},
			{"admin-listen", &s.adminListen, devAdminListen},
			{"relay-tls-listen", &s.relayTLSListen, devRelayTLS},
		} {
			if d.name == "relay-tls-listen" && s.relayOnHTTPS {
				continue // the HTTPS port carries TURN over TLS
			}
			if !s.set.IsSet(d.name) {
				d.addr.Value = d.value
			}
		}
		if !s.set.IsSet("relay-listen") {
			s.relayListen.Values = []string{devRelay}
		}
		if !s.set.IsSet("sfu-embedded") && len(s.sfuNodes.Values) == 0 {
			s.sfuEmbedded = true
		}
	}
	if s.database == "" {
		s.database = "sqlite:" + filepath.Join(s.dataDir, "signal.db")
	}
	if s.outboxDir == "" {
		s.outboxDir = filepath.Join(s.dataDir, "outbox")
	}
	if s.objectDir == "" {
		s.objectDir = filepath.Join(s.dataDir, "objects")
	}
	if s.auditKeyFile == "" {
		s.auditKeyFile = filepath.Join(s.dataDir, "audit-signing.key")
	}
	if s.auditCheckpointDir == "" {
		s.auditCheckpointDir = filepath.Join(s.dataDir, "audit-checkpoints")
	}
	return s.validate()
}

func (s *settings) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) { errs = append(errs, s.set.Invalid(name, format, args...)) }
	if s.listen.Value == "" {
		bad("listen", "the HTTPS listener cannot be off")
	}
	if s.dataDir == "" {
		bad("data-dir", "must name a directory")
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		bad("tls-key", "-tls-cert and -tls-key go together")
	}
	if s.tlsCert != "" && len(s.acmeDomains.Values) > 0 {
		bad("acme-domain", "choose either -tls-cert/-tls-key or -acme-domain, not both")
	}
	if !s.dev && !s.tool && s.tlsCert == "" && len(s.acmeDomains.Values) == 0 {
		bad("tls-cert", "production needs a certificate: -tls-cert/-tls-key, or -acme-domain; use -dev for a local self-signed one")
	}
	if !s.dev && !s.tool && len(s.acmeDomains.Values) == 0 && s.publicURL.Value == nil {
		bad("public-url", "required outside -dev (unless -acme-domain names the host)")
	}
	if err := s.validatePasskeys(); err != nil {
		errs = append(errs, err)
	}
	if s.hstsMaxAge < 0 {
		bad("hsts-max-age", "must not be negative")
	}
	if s.institutionLogo != "" {
		logo, err := site.LoadLogo(s.institutionLogo)
		if err != nil {
			bad("institution-logo", "%v", err)
		}
		s.logo = logo
	}
	if _, err := redislimit.Options(s.redis, ""); s.redis != "" && err != nil {
		bad("redis", "%v", err)
	}
	if s.setupLinkTTL < time.Minute || s.setupLinkTTL > 24*time.Hour {
		bad("setup-link-ttl", "%s is outside 1m to 24h", s.setupLinkTTL)
	}
	if s.shutdownTimeout <= 0 || s.shutdownTimeout > 10*time.Minute {
		bad("shutdown-timeout", "%s is outside (0, 10m]", s.shutdownTimeout)
	}
	within := func(name string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			bad(name, "%s is outside %s to %s", v, lo, hi)
		}
	}
	within("lockout-duration", s.lockoutDuration, time.Minute, 24*time.Hour)
	within("session-idle-timeout", s.sessionIdle, time.Minute, 12*time.Hour)
	within("session-max-age", s.sessionMaxAge, time.Hour, 7*24*time.Hour)
	within("audit-checkpoint-interval", s.auditCheckpointEach, time.Minute, 24*time.Hour)
	if s.auditSyslog != "" {
		if _, err := audit.SyslogSender(s.auditSyslog); err != nil {
			bad("audit-syslog", "%v", err)
		}
	}
	if s.auditWitness != "" {
		if err := checkWitnessURL(s.auditWitness); err != nil {
			bad("audit-witness-url", "%v", err)
		}
	}
	within("link-ttl", s.linkTTL, 10*time.Minute, 7*24*time.Hour)
	within("resume-grace", s.resumeGrace, 10*time.Second, 10*time.Minute)
	within("turn-credential-ttl", s.turnTTL, 10*time.Minute, 48*time.Hour)
	if len(s.turnURLs.Values) > 0 && s.turnSecret == "" {
		bad("turn-secret", "required with -turn-url")
	}
	for _, u := range append(append([]string{}, s.stunURLs.Values...), s.turnURLs.Values...) {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			bad("turn-url", "%q must start with stun:, turn: or turns:", u)
		}
	}
	errs = append(errs, s.validateRelayURLs()...)
	errs = append(errs, s.validateProxyProtocol()...)
	errs = append(errs, s.validateRelay()...)
	if s.sfuMinParticipants < 2 || s.sfuMinParticipants > 50 {
		bad("sfu-min-participants", "%d is outside 2 to 50", s.sfuMinParticipants)
	}
	if s.largeMessageMiB < 1 || s.largeMessageMiB > 4096 {
		bad("large-message-mib", "%d is outside 1 to 4096", s.largeMessageMiB)
	}
	if s.sfuReturnAfter < 0 || s.sfuReturnAfter > time.Hour {
		bad("sfu-return-after", "%s is outside 0 to 1h", s.sfuReturnAfter)
	}
	if s.sfuMaxParticipants < 1 {
		bad("sfu-max-participants", "must be at least 1")
	}
	if s.sfuOwnTransport && s.sfuUDPListen.Value == "" {
		bad("sfu-own-transport", "the node's own transport runs on one shared UDP port: give -sfu-udp-listen")
	}
	for _, ip := range s.sfuPublicIPs.Values {
		if _, err := netip.ParseAddr(ip); err != nil {
			bad("sfu-public-ip", "%q is not an IP address", ip)
		}
	}
	if len(s.sfuNodes.Values) > 0 {
		if s.sfuEmbedded {
			bad("sfu-embedded", "choose either the embedded media node or -sfu-node, not both")
		}
		if s.sfuLinkCert == "" || s.sfuLinkKey == "" || s.sfuLinkCA == "" {
			bad("sfu-link-cert", "-sfu-node needs -sfu-link-cert, -sfu-link-key and -sfu-link-ca: media nodes accept only authenticated signal servers")
		}
		for _, u := range s.sfuNodes.Values {
			if !strings.HasPrefix(u, "wss://") {
				bad("sfu-node", "%q must be a wss:// URL", u)
			}
		}
	}
	if s.objectStore.Value == "azure" {
		if s.azureConnectionString == "" && s.azureAccountURL == "" {
			bad("azure-account-url", "-object-store azure needs -azure-account-url (with a key, a SAS or the managed identity) or -azure-connection-string")
		}
		if s.azureConnectionString != "" && (s.azureAccountURL != "" || s.azureAccountKey != "" || s.azureSAS != "") {
			bad("azure-connection-string", "choose either -azure-connection-string or -azure-account-url with its credential, not both")
		}
		if s.azureAccountKey != "" && s.azureSAS != "" {
			bad("azure-sas", "choose either -azure-account-key or -azure-sas, not both")
		}
		if s.azureAccountURL != "" && !strings.HasPrefix(s.azureAccountURL, "https://") && !s.dev {
			bad("azure-account-url", "%q must be an https:// URL", s.azureAccountURL)
		}
	}
	if s.documentMaxFiles < 1 || s.documentMaxFiles > 10000 {
		bad("document-max-files", "%d is outside 1 to 10000", s.documentMaxFiles)
	}
	if s.documentMaxMiB < 10 || s.documentMaxMiB > 102400 {
		bad("document-max-mib", "%d is outside 10 to 102400", s.documentMaxMiB)
	}
	if s.documentUploadsPerMin < 1 || s.documentUploadsPerMin > 600 {
		bad("document-uploads-per-minute", "%d is outside 1 to 600", s.documentUploadsPerMin)
	}
	if s.documentRetention != 0 && s.documentRetention < time.Hour {
		bad("document-retention", "%s is neither 0 (keep forever) nor at least 1h", s.documentRetention)
	}
	if s.recordingRetention != 0 && s.recordingRetention < time.Hour {
		bad("recording-retention", "%s is neither 0 (keep forever) nor at least 1h", s.recordingRetention)
	}
	for _, role := range s.recordingViewers.Values {
		if !slices.Contains(auth.Roles, role) {
			bad("recording-viewer", "%q is not a role (%s)", role, strings.Join(auth.Roles, ", "))
		}
	}
	if s.keyFile != "" && s.keyPassphrase == "" && s.keyPassphraseFile == "" {
		bad("key-passphrase", "-key-file needs its passphrase: SIGNAL_KEY_PASSPHRASE or -key-passphrase-file")
	}
	if s.passwordMinLength < 8 || s.passwordMinLength > 64 {
		bad("password-min-length", "%d is outside 8 to 64", s.passwordMinLength)
	}
	if s.passwordMaxRepeat < 0 || s.passwordMaxRepeat > 10 {
		bad("password-max-repeat", "%d is outside 0 to 10", s.passwordMaxRepeat)
	}
	if s.passwordMaxAge != 0 && s.passwordMaxAge < 24*time.Hour {
		bad("password-max-age", "%s is under 24h (0 turns expiry off)", s.passwordMaxAge)
	}
	if s.hashConcurrency < 0 || s.hashConcurrency > 256 {
		bad("password-hash-concurrency", "%d is outside 0 to 256", s.hashConcurrency)
	}
	within("password-hash-wait", s.hashWait, 0, 30*time.Second)
	if _, err := s.proxyPrefixes(); err != nil {
		bad("trusted-proxy", "%v", err)
	}
	if s.guestDenialLimit < 1 || s.guestDenialLimit > 20 {
		bad("guest-denial-limit", "%d is outside 1 to 20", s.guestDenialLimit)
	}
	if s.lockoutAttempts < 3 || s.lockoutAttempts > 20 {
		bad("lockout-attempts", "%d is outside 3 to 20", s.lockoutAttempts)
	}
	if s.smtpAddr != "" && s.smtpFrom == "" {
		bad("smtp-from", "required with -smtp-addr")
	}
	if s.masterKey != "" && s.keyFile != "" {
		bad("key-file", "choose either -master-key or -key-file, not both")
	}
	if s.previous.masterKey != "" && s.previous.keyFile != "" {
		bad("previous-key-file", "choose either -previous-master-key or -previous-key-file, not both")
	}
	if s.previous.keyFile != "" && s.previous.passphrase == "" && s.previous.passphraseFile == "" {
		bad("previous-key-passphrase", "-previous-key-file needs its passphrase: SIGNAL_PREVIOUS_KEY_PASSPHRASE or -previous-key-passphrase-file")
	}
	if !s.dev && !s.tool && s.masterKey == "" && s.keyFile == "" {
		bad("key-file", "production needs a master key: -key-file (created with: signal keys init) or SIGNAL_MASTER_KEY; -dev keeps one under -data-dir")
	}
	return errors.Join(errs...)
}

// proxyPrefixes parses -trusted-proxy: CIDRs, or single addresses.
func (s *settings) proxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range s.trustedProxies.Values {
		if a, err := netip.ParseAddr(v); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", v)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// clientAddressHeader is the header named by -client-address-header.
func (s *settings) clientAddressHeader() string {
	if s.clientHeader.Value == "forwarded" {
		return site.HeaderForwarded
	}
	return site.HeaderXForwardedFor
}
