package site

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/store"
)

// sessionCookie carries the session id. The __Host- prefix makes browsers
// refuse it unless it is Secure, host-only and for path /.
const sessionCookie = "__Host-oc_session"

func setSession(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func sessionToken(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// client is the request's origin for the rate limits and the audit log:
// the address withClient resolved, or the peer's.
func client(r *http.Request) auth.Client {
	host, ok := r.Context().Value(clientKey{}).(string)
	if !ok {
		host = proxies{}.clientIP(r)
	}
	return auth.Client{IP: host, UserAgent: truncate(r.UserAgent(), 256)}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// identity returns the session's identity, or ok=false when there is none.
func (s *Site) identity(r *http.Request) (auth.Identity, bool, error) {
	id, err := s.opt.Accounts.Session(r.Context(), sessionToken(r))
	if errors.Is(err, auth.ErrNoSession) {
		return auth.Identity{}, false, nil
	}
	return id, err == nil, err
}

// identityKey holds the Identity requireStage found, for the page header.
type identityKey struct{}

// stagePath is where a session at each stage belongs.
var stagePath = map[string]string{
	auth.StageSecondFactor: "/signin/code",
	auth.StageEnroll:       "/account/totp",
	auth.StageChange:       "/account/password",
	auth.StageFull:         "/home",
}

// requireStage wraps a handler that needs a session at one of stages; other
// sessions are sent where they belong, visitors to the sign-in page.
func (s *Site) requireStage(h func(http.ResponseWriter, *http.Request, auth.Identity), stages ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		id, ok, err := s.identity(r)
		if err != nil {
			s.internalError(w, r, "read session", err)
			return
		}
		if !ok {
			clearSession(w)
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		for _, st := range stages {
			if id.Stage == st {
				h(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)), id)
				return
			}
		}
		http.Redirect(w, r, stagePath[id.Stage], http.StatusSeeOther)
	}
}

// requireAdmin wraps a handler for fully signed-in administrators.
func (s *Site) requireAdmin(h func(http.ResponseWriter, *http.Request, auth.Identity)) http.HandlerFunc {
	return s.requireStage(func(w http.ResponseWriter, r *http.Request, id auth.Identity) {
		if !id.IsAdmin() {
			s.render(w, r, http.StatusForbidden, "error", errorPage{"err.notallowed.title", "err.admins.text"})
			return
		}
		if s.adminNeedsPasskey(w, r, id) {
			return
		}
		h(w, r, id)
	}, auth.StageFull)
}

// ipLimiter rate-limits requests per client address. Idle entries are
// dropped as the map grows, so memory stays bounded without a goroutine.
type ipLimiter struct {
	every time.Duration
	burst int
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*ipEntry
}

type ipEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

const ipLimiterMaxEntries = 10000

func newIPLimiter(every time.Duration, burst int) *ipLimiter {
	return &ipLimiter{every: every, burst: burst, now: time.Now, clients: map[string]*ipEntry{}}
}

func (l *ipLimiter) allow(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.clients) >= ipLimiterMaxEntries {
		for k, e := range l.clients {
			if now.Sub(e.seen) > time.Duration(l.burst)*l.every {
				delete(l.clients, k)
			}
		}
	}
	e, ok := l.clients[ip]
	if !ok {
		if len(l.clients) >= ipLimiterMaxEntries {
			return false // a flood of addresses: refuse until entries age out
		}
		e = &ipEntry{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.clients[ip] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}

// Purposes of the per-address rate limits. Each has its own bucket, so one
// kind of traffic cannot spend another's: patients joining from a clinic's
// shared address (NAT) leave its staff's sign-in attempts untouched.
const (
	limitSignIn   = "signin"   // staff sign-in form
	limitCode     = "code"     // TOTP and recovery codes
	limitReset    = "reset"    // reset requests and mailed password links
	limitPassword = "password" // change of password by a signed-in user
	limitJoin     = "join"     // patients and guests redeeming a link
)

// rateLimits are the budgets per address and purpose: ten a minute on the
// staff forms (ample for people, useless for guessing), and for joins a
// waiting room's worth at once, refilled every two seconds.
var rateLimits = map[string]struct {
	every time.Duration
	burst int
}{
	limitSignIn:   {6 * time.Second, 10},
	limitCode:     {6 * time.Second, 10},
	limitReset:    {6 * time.Second, 10},
	limitPassword: {6 * time.Second, 10},
	limitJoin:     {2 * time.Second, 30},
}

// Rates are the budgets per purpose, for a Limiter kept elsewhere.
func Rates() map[string]Rate {
	m := make(map[string]Rate, len(rateLimits))
	for purpose, l := range rateLimits {
		m[purpose] = Rate{Every: l.every, Burst: l.burst}
	}
	return m
}

// Rate is a token bucket: Burst requests at once, one more every Every.
type Rate struct {
	Every time.Duration
	Burst int
}

// Limiter spends one request of addr's budget for purpose. An error means it
// could not decide; the site then decides with its own in-memory bucket.
type Limiter interface {
	Allow(ctx context.Context, purpose, addr string) (bool, error)
}

// localLimits are the in-memory buckets, one limiter per purpose.
type localLimits map[string]*ipLimiter

func newLimits() localLimits {
	m := make(localLimits, len(rateLimits))
	for purpose, l := range rateLimits {
		m[purpose] = newIPLimiter(l.every, l.burst)
	}
	return m
}

// Allow implements Limiter; it never fails.
func (m localLimits) Allow(_ context.Context, purpose, addr string) (bool, error) {
	return m[purpose].allow(addr), nil
}

// sharedRetry is how long the site decides alone after the shared Limiter
// failed, so an unreachable store slows at most one request in this time.
const sharedRetry = 5 * time.Second

// allow decides for the request: with the shared Limiter when there is one,
// else, or when it failed within sharedRetry, with this server's own buckets.
// Falling back keeps sign-in neither open to guessing nor down while the
// shared store is away; the budget is then per server rather than shared.
func (s *Site) allow(r *http.Request, purpose string) bool {
	addr := client(r).IP
	if s.opt.Limiter != nil && time.Now().UnixNano() >= s.sharedDownUntil.Load() {
		// Not cancelled with the request: a client hanging up must not
		// count as the store failing. The Limiter bounds its own wait.
		ok, err := s.opt.Limiter.Allow(context.WithoutCancel(r.Context()), purpose, addr)
		if err == nil {
			return ok
		}
		s.sharedDownUntil.Store(time.Now().Add(sharedRetry).UnixNano())
		if s.limiterWarn.Allow() {
			s.opt.Log.Warn("shared rate limiter unavailable; using this server's buckets", "purpose", purpose, "err", err)
		}
	}
	ok, _ := s.limits.Allow(r.Context(), purpose, addr)
	return ok
}

// limited answers 429 when the client exceeded its rate for purpose.
func (s *Site) limited(w http.ResponseWriter, r *http.Request, purpose string) bool {
	if s.allow(r, purpose) {
		return false
	}
	w.Header().Set("Retry-After", "60")
	s.render(w, r, http.StatusTooManyRequests, "error", errorPage{"err.toomany.title", "err.toomany.text"})
	return true
}

// busy answers 503 when every password-hashing slot stayed taken: nothing
// was checked, so the attempt counts for nothing and can simply be repeated.
func (s *Site) busy(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	s.render(w, r, http.StatusServiceUnavailable, "error", errorPage{"err.busy.title", "err.busy.text"})
}

// Accounts is what the site needs from the account service.
type Accounts interface {
	Session(ctx context.Context, token string) (auth.Identity, error)
	SignIn(ctx context.Context, username, password string, c auth.Client) (token, stage string, err error)
	VerifySecondFactor(ctx context.Context, id auth.Identity, code string, c auth.Client) (token, stage string, err error)
	BeginEnrollment(ctx context.Context, id auth.Identity) (auth.Enrollment, error)
	ConfirmEnrollment(ctx context.Context, id auth.Identity, code string, c auth.Client) (codes []string, token, stage string, err error)
	ChangePassword(ctx context.Context, id auth.Identity, current, next string, c auth.Client) (string, error)
	RecoveryCodesLeft(ctx context.Context, id auth.Identity) (int, error)
	SignOut(ctx context.Context, token string) error
	SignOutEverywhere(ctx context.Context, id auth.Identity, c auth.Client) error
	LinkUsable(ctx context.Context, token, purpose string) (bool, error)
	SetPasswordWithLink(ctx context.Context, token, purpose, password string, c auth.Client) error
	Users(ctx context.Context, admin auth.Identity) ([]auth.UserSummary, error)
	SetDisplayName(ctx context.Context, actor auth.Identity, userID, name string, c auth.Client) error
	CreateUser(ctx context.Context, admin auth.Identity, username, role, email string, c auth.Client) (store.User, error)
	Apply(ctx context.Context, admin auth.Identity, userID string, action auth.AdminAction, c auth.Client) error
	Policy() auth.Policy
}
