// Package site owns the HTTPS web site of the signal server: its routes, the
// security headers and cross-origin protection every response gets, page
// rendering, and the plain-HTTP listener that only redirects to HTTPS.
package site

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/web"
	"github.com/openconsult/openconsult/web/i18n"
)

// SetupFlow is what the first-administrator pages need from auth.
type SetupFlow interface {
	Usable(ctx context.Context, token string) (bool, error)
	Complete(ctx context.Context, token, username, password string) (store.User, error)
}

// Options are the site's dependencies.
type Options struct {
	Log       *slog.Logger
	Health    *obs.Health
	Metrics   *obs.HTTPMetrics
	Setup     SetupFlow
	Accounts  Accounts
	Consults  Consults
	Audit     AuditLog
	Documents Documents
	Rooms     Rooms
	Lobbies   Lobbies // waiting counts for the clinicians' alerts
	DocAudit  DocumentRecorder
	Signaling Signaling
	Upgrader  *websocket.Upgrader
	RelayOnly bool // every consult hides participants' addresses behind the relay
	// ICE returns STUN and TURN servers with credentials for subject.
	ICE        func(subject string, ttl time.Duration) []signaling.ICEServer
	Now        func() time.Time
	PasswordLo int // password length bounds shown in forms
	PasswordHi int
	HSTSMaxAge time.Duration
	// Resets takes reset requests; the page answers before any work.
	Resets ResetRequests
	// Passkeys registers and checks WebAuthn credentials; nil turns the
	// passkey pages off.
	Passkeys Passkeys
	// TrustedProxies may name the client in ClientHeader
	// (HeaderXForwardedFor or HeaderForwarded); other peers cannot.
	TrustedProxies []netip.Prefix
	ClientHeader   string
	// SSO runs single sign-on with the institution's identity providers;
	// nil when none is configured. SSOAccounts opens its sessions.
	SSO         SSOFlows
	SSOAccounts SSOAccounts
	// Limiter keeps the per-address rate limits where several servers
	// share them (Redis); nil keeps them in this server's memory.
	Limiter Limiter

	// LegalHolds sets consults' legal hold; nil turns the route off.
	LegalHolds LegalHolds

	// Catalog holds the pages' languages; nil takes the catalogs shipped
	// with the platform (web/i18n).
	Catalog *i18n.Catalog

	// Recordings plays and downloads consult recordings (audited through
	// DocAudit); nil turns the routes off. RecordingRoles are the account
	// roles that may watch any consult's recordings besides its clinician.
	Recordings     Recordings
	RecordingRoles []string

	// Hosts names a consult's clinician to its patients; nil shows no name.
	Hosts HostNames

	// Institution names the site's owner on every page; an empty name
	// shows the platform's.
	Institution Institution
}

// Site is the HTTPS site.
type Site struct {
	opt     Options
	catalog *i18n.Catalog
	pages   map[string]langPages // by language tag
	static  fs.FS
	limits  localLimits // by purpose; the fallback of opt.Limiter
	// limiterWarn spaces the warnings while opt.Limiter fails.
	limiterWarn *rate.Limiter
	// sharedDownUntil (Unix nanoseconds) skips opt.Limiter after it failed.
	sharedDownUntil atomic.Int64
	// views are the recording views audited lately.
	views viewLog
}

// New parses the templates and returns the site.
func New(opt Options) (*Site, error) {
	catalog := opt.Catalog
	if catalog == nil {
		var err error
		if catalog, err = i18n.Embedded(); err != nil {
			return nil, fmt.Errorf("message catalogs: %w", err)
		}
	}
	pages, err := buildPages(catalog)
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	if opt.ClientHeader == "" {
		opt.ClientHeader = HeaderXForwardedFor
	}
	return &Site{opt: opt, catalog: catalog, pages: pages, static: web.Static(), limits: newLimits(),
		limiterWarn: rate.NewLimiter(rate.Every(time.Minute), 1)}, nil
}

// Handler returns the site with its middleware: security headers on every
// response, request metrics by route, and refusal of cross-origin
// state-changing requests (CSRF) before any handler runs.
func (s *Site) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /healthz", s.opt.Health.Live)
	mux.HandleFunc("GET /readyz", s.opt.Health.Ready)
	mux.HandleFunc("POST /language", s.chooseLanguage(mux))
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(s.static)))
	mux.HandleFunc("GET /favicon.ico", s.favicon)
	mux.HandleFunc("GET "+logoPath, s.logo)
	mux.HandleFunc("GET /setup/{token}", s.setupForm)
	mux.HandleFunc("POST /setup/{token}", s.setupSubmit)

	mux.HandleFunc("GET /signin", s.signinForm)
	mux.HandleFunc("POST /signin", s.signinSubmit)
	mux.HandleFunc("GET /signin/sso/{provider}", s.ssoBegin)
	mux.HandleFunc("GET /signin/sso/{provider}/callback", s.ssoCallback)
	mux.HandleFunc("GET /signin/sso/{provider}/metadata", s.samlMetadata)
	mux.HandleFunc(samlACSRoute, s.samlACS)
	mux.HandleFunc("GET /signin/code", s.requireStage(s.codeForm, auth.StageSecondFactor))
	mux.HandleFunc("POST /signin/code", s.requireStage(s.codeSubmit, auth.StageSecondFactor))
	mux.HandleFunc("POST /signout", s.signout)
	mux.HandleFunc("POST /signout/everywhere", s.requireStage(s.signoutEverywhere, auth.StageFull))
	mux.HandleFunc("GET /home", s.requireStage(s.home, auth.StageFull))
	mux.HandleFunc("GET /account", s.requireStage(s.account, auth.StageFull))
	mux.HandleFunc("POST /account/profile", s.requireStage(s.profileSubmit, auth.StageFull))
	mux.HandleFunc("GET /account/totp", s.requireStage(s.enrollForm, auth.StageEnroll, auth.StageFull))
	mux.HandleFunc("POST /account/totp", s.requireStage(s.enrollSubmit, auth.StageEnroll, auth.StageFull))
	mux.HandleFunc("GET /account/password", s.requireStage(s.passwordForm, auth.StageChange, auth.StageFull))
	mux.HandleFunc("POST /account/password", s.requireStage(s.passwordSubmit, auth.StageChange, auth.StageFull))
	mux.HandleFunc("GET /reset", s.resetRequestForm)
	mux.HandleFunc("POST /reset", s.resetRequestSubmit)
	mux.HandleFunc("GET /reset/{token}", s.linkForm(auth.PurposeReset))
	mux.HandleFunc("POST /reset/{token}", s.linkSubmit(auth.PurposeReset))
	mux.HandleFunc("GET /activate/{token}", s.linkForm(auth.PurposeActivate))
	mux.HandleFunc("POST /activate/{token}", s.linkSubmit(auth.PurposeActivate))
	mux.HandleFunc("GET /admin/users", s.requireAdmin(s.usersList))
	mux.HandleFunc("POST /admin/users", s.requireAdmin(s.userCreate))
	mux.HandleFunc("POST /admin/users/{id}/{action}", s.requireAdmin(s.userAction))
	mux.HandleFunc("POST /admin/users/{id}/display-name", s.requireAdmin(s.userDisplayName))
	s.passkeyRoutes(mux)
	mux.HandleFunc("GET /admin/audit", s.requireAdmin(s.auditList))
	mux.HandleFunc("POST /admin/audit/export", s.requireAdmin(s.auditExport))
	if s.opt.LegalHolds != nil {
		mux.HandleFunc("POST /admin/legal-hold", s.requireAdmin(s.legalHold))
	}

	mux.HandleFunc("GET /consults", s.clinician(s.dashboard))
	mux.HandleFunc("POST /consults", s.clinician(s.consultCreate))
	mux.HandleFunc("GET /consults/{id}", s.clinician(s.consultCall))
	mux.HandleFunc("GET /consults/{id}/record", s.clinician(s.consultRecord))
	mux.HandleFunc("POST /consults/{id}/links", s.clinician(s.consultAddLink))
	mux.HandleFunc("POST /consults/{id}/links/{link}/revoke", s.clinician(s.consultRevokeLink))
	mux.HandleFunc("POST /consults/{id}/end", s.clinician(s.consultEnd))
	mux.HandleFunc("GET /api/waiting", s.clinician(s.waitingStream))
	mux.HandleFunc("GET /j/{token}", s.joinPage)
	mux.HandleFunc("POST /j/{token}", s.joinSubmit)
	mux.HandleFunc("GET /j/{token}/connectivity", s.connectivity)
	mux.HandleFunc("GET /call", s.guestCall)
	mux.HandleFunc("GET /ws/consults/{id}", s.websocket)
	mux.HandleFunc("POST /consults/{id}/files", s.shareDocument)
	mux.HandleFunc("GET /consults/{id}/files/{doc}", s.downloadDocument)
	if s.opt.Recordings != nil {
		mux.HandleFunc("GET /consults/{id}/recordings", s.requireStage(s.recordingsList, auth.StageFull))
		mux.HandleFunc("GET /consults/{id}/recordings/{rec}/files/{file}", s.requireStage(s.recordingFile, auth.StageFull))
		mux.HandleFunc("POST /consults/{id}/recordings/{rec}/delete", s.requireAdmin(s.recordingDelete))
	}
	mux.HandleFunc("/", s.notFound)

	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(s.crossOrigin))
	// The one state-changing route another site posts to by design; see
	// samlACS for what protects it instead.
	csrf.AddInsecureBypassPattern(samlACSRoute)
	clients := proxies{trusted: s.opt.TrustedProxies, header: s.opt.ClientHeader}
	// Outside the metrics, which read the route the mux sets on its request.
	return securityHeaders(s.opt.HSTSMaxAge, clients.withClient(s.opt.Metrics.Wrap(csrf.Handler(mux))))
}

// securityHeaders sets what every HTTPS response carries. The content policy
// allows no inline script or style and no framing; the referrer policy keeps
// link tokens in URLs from leaking to other sites.
func securityHeaders(hsts time.Duration, next http.Handler) http.Handler {
	hstsValue := fmt.Sprintf("max-age=%d; includeSubDomains", int64(hsts.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if hsts > 0 {
			h.Set("Strict-Transport-Security", hstsValue)
		}
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "+
			"img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "+
			"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self), geolocation=()")
		next.ServeHTTP(w, r)
	})
}

// staticHandler serves the files of the tree; a directory is not found
// rather than listed.
func staticHandler(files fs.FS) http.Handler {
	fileServer := http.FileServerFS(filesOnly{files})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		fileServer.ServeHTTP(w, r)
	})
}

// filesOnly opens the files of an FS and reports its directories as not
// existing, so that a file server never lists one.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if info.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return file, nil
}

// favicon answers browsers that ask for /favicon.ico without reading the
// page's icon link: the same SVG icon.
func (s *Site) favicon(w http.ResponseWriter, r *http.Request) {
	icon, err := fs.ReadFile(s.static, "favicon.svg")
	if err != nil {
		s.notFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(icon)
}

func (s *Site) index(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "index", nil)
}

func (s *Site) notFound(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusNotFound, "error", errorPage{"err.notfound.title", "err.notfound.text"})
}

func (s *Site) crossOrigin(w http.ResponseWriter, r *http.Request) {
	s.opt.Log.Info("cross-origin request refused", "method", r.Method)
	s.render(w, r, http.StatusForbidden, "error", errorPage{"err.crossorigin.title", "err.crossorigin.text"})
}

// errorPage names the catalog keys of an error page's title and message.
type errorPage struct{ Title, Message string }

// render executes a page in the request's language into a buffer first, so
// a template error becomes a clean 500 rather than half a page.
func (s *Site) render(w http.ResponseWriter, r *http.Request, code int, page string, data any) {
	l := s.lang(r)
	lp := s.pages[l.Tag]
	ld := layoutData{Page: data, Lang: l, Langs: s.catalog.Langs(), Here: chooserBack(r), Script: lp.script,
		Nav: staffNav(r, page), Institution: s.opt.Institution.Name, Logo: len(s.opt.Institution.Logo.Data) > 0}
	var buf bytes.Buffer
	if err := lp.pages[page].ExecuteTemplate(&buf, "layout", ld); err != nil {
		s.opt.Log.Error("render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", l.Tag)
	w.Header().Add("Vary", "Accept-Language, Cookie")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// RedirectHandler answers every plain-HTTP request with a permanent redirect
// to the same path on the public HTTPS address. It never redirects to the
// Host the client sent, which would make it an open redirect.
func RedirectHandler(public *url.URL) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := *public
		target.Path, target.RawPath, target.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, target.String(), http.StatusMovedPermanently)
	})
}
