package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/web/i18n"
)

// AccountStore is what the account service needs from persistence.
type AccountStore interface {
	UserByID(ctx context.Context, id string) (store.User, error)
	UserByUsername(ctx context.Context, username string) (store.User, error)
	Users(ctx context.Context) ([]store.User, error)
	CreateUser(ctx context.Context, u store.User, tokenHash []byte, expires time.Time) error
	CreateUserToken(ctx context.Context, hash []byte, userID, purpose string, now, expires time.Time) error
	UserTokenOwner(ctx context.Context, hash []byte, purpose string, now time.Time) (string, error)
	SetPasswordWithToken(ctx context.Context, hash []byte, purpose, userID, passwordHash string, now time.Time) error
	SetPassword(ctx context.Context, userID, passwordHash string, now time.Time) error
	PasswordHistory(ctx context.Context, userID string) ([]string, error)
	SetUserFlags(ctx context.Context, userID string, disable, forcePasswordChange bool, now time.Time) error
	SetTOTPPending(ctx context.Context, userID string, secretEnc []byte) error
	EnableTOTP(ctx context.Context, userID string, step int64, codeHashes [][]byte, now time.Time) error
	AcceptTOTPStep(ctx context.Context, userID string, step int64) error
	UseRecoveryCode(ctx context.Context, userID string, codeHash []byte, now time.Time) error
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
	ResetTOTP(ctx context.Context, userID string) error
	SetDisplayName(ctx context.Context, userID, name string) error
	SessionStore
	SigninLockedUntil(ctx context.Context, username string) (time.Time, error)
	RecordSigninFailure(ctx context.Context, username string, now time.Time, max int, lockFor time.Duration) (bool, error)
	ClearSigninFailures(ctx context.Context, username string) error
}

// SessionStore is the session half of AccountStore.
type SessionStore interface {
	CreateSession(ctx context.Context, s store.Session) error
	SessionByHash(ctx context.Context, hash []byte) (store.Session, error)
	TouchSession(ctx context.Context, hash []byte, now time.Time) error
	ReplaceSession(ctx context.Context, oldHash []byte, s store.Session) error
	DeleteSession(ctx context.Context, hash []byte) error
	DeleteUserSessions(ctx context.Context, userID string) (int, error)
}

// Sealer encrypts sensitive fields at rest; aad binds a value to its row and
// column.
type Sealer interface {
	SealString(plain string, aad []byte) ([]byte, error)
	UnsealString(sealed []byte, aad []byte) (string, error)
}

// LiveConnections closes the open connections (call pages) of an account
// whose sessions ended; the signaling hub implements it.
type LiveConnections interface {
	CloseAccount(userID string) int
}

// Mailer delivers a message to one address.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Recorder writes the audit trail. Actions are acknowledged only after their
// record is written, so a failing Recorder fails the action.
type Recorder interface {
	Record(ctx context.Context, ev Event) error
}

// Event is one security-relevant fact for the audit log.
type Event struct {
	Type      string
	Success   bool
	Requester string // user id, or "" when unknown
	Message   string
	Client    Client
	Fields    map[string]string
}

// Client is where a request came from, for the audit log only.
type Client struct {
	IP        string
	UserAgent string
	Lang      string // the language of the requester's pages, for the e-mail it causes
}

// Audit event types written by this package.
const (
	EventSignIn          = "signin"
	EventLockout         = "lockout"
	EventTOTPEnrolled    = "totp.enrolled"
	EventTOTPReset       = "totp.reset"
	EventPasswordChanged = "password.changed"
	EventPasswordReset   = "password.reset"
	EventUserCreated     = "user.created"
	EventUserActivated   = "user.activated"
	EventUserDisabled    = "user.disabled"
	EventSessionsRevoked = "sessions.revoked"
)

// Policy holds the institution's security choices.
type Policy struct {
	Password        PasswordPolicy
	RequireTOTP     bool
	MaxFailures     int
	LockoutFor      time.Duration
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	ResetTTL        time.Duration
	ActivationTTL   time.Duration
	// PasswordSignInOff leaves single sign-on as the only way in, except
	// for the BreakGlass usernames.
	PasswordSignInOff bool
	BreakGlass        []string
}

// DefaultPolicy is the safe default every setting starts from.
var DefaultPolicy = Policy{
	Password:        DefaultPasswordPolicy,
	RequireTOTP:     true,
	MaxFailures:     5,
	LockoutFor:      15 * time.Minute,
	IdleTimeout:     30 * time.Minute,
	AbsoluteTimeout: 12 * time.Hour,
	ResetTTL:        30 * time.Minute,
	ActivationTTL:   72 * time.Hour,
}

// Errors a page can show; none reveals whether a username exists.
var (
	ErrBadCredentials = errors.New("the username or password is wrong")
	ErrLocked         = errors.New("too many failed attempts; try again later")
	ErrBadCode        = errors.New("the code is wrong or was already used")
	ErrNoSession      = errors.New("not signed in")
	ErrForbidden      = errors.New("not allowed")
	ErrLinkInvalid    = errors.New("the link is no longer valid")
)

// Service runs accounts, sign-in and sessions.
type Service struct {
	store  AccountStore
	sealer Sealer
	audit  Recorder
	mail   Mailer
	live   LiveConnections
	sso    SSOStore
	log    *slog.Logger
	public *url.URL
	issuer string
	hash   HashParams
	gate   *HashGate
	policy Policy
	now    func() time.Time
	texts  MailTexts
	// dummyHash is verified against when the username is unknown, so an
	// unknown user costs the same time as a wrong password.
	dummyHash string
}

// Deps are the Service's collaborators.
type Deps struct {
	Store     AccountStore
	Sealer    Sealer
	Audit     Recorder
	Mail      Mailer
	Log       *slog.Logger
	PublicURL *url.URL
	Issuer    string // shown in authenticator apps
	Hash      HashParams
	// Hashing bounds concurrent password hashes, shared with Setup; nil
	// gives a gate of one slot per CPU.
	Hashing *HashGate
	Policy  Policy
	Now     func() time.Time

	// Live is told of every change that ends an account's sessions, after
	// it is stored, to close the account's open connections; nil when
	// nothing holds connections.
	Live LiveConnections

	// SSO links accounts to identity providers; nil without single sign-on.
	SSO SSOStore

	// Texts writes the e-mail messages in the requester's language; nil
	// takes the catalogs shipped with the platform.
	Texts MailTexts
}

// MailTexts gives the message of key in the language tagged lang (the
// default language for an unknown tag), placeholders filled from args given
// as name, value pairs. *i18n.Catalog is one.
type MailTexts interface {
	Text(lang, key string, args ...any) string
}

// NewService returns the account service.
func NewService(d Deps) (*Service, error) {
	dummy, err := HashPassword("timing equaliser for unknown users", d.Hash)
	if err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Texts == nil {
		catalog, err := i18n.Embedded()
		if err != nil {
			return nil, fmt.Errorf("message catalogs: %w", err)
		}
		d.Texts = catalog
	}
	if d.Hashing == nil {
		d.Hashing = NewHashGate(0, DefaultHashWait)
	}
	return &Service{store: d.Store, sealer: d.Sealer, audit: d.Audit, mail: d.Mail, live: d.Live, sso: d.SSO, log: d.Log, public: d.PublicURL,
		issuer: d.Issuer, hash: d.Hash, gate: d.Hashing, policy: d.Policy, now: d.Now, texts: d.Texts, dummyHash: dummy}, nil
}

// Policy returns the policy in force (pages show the password rules).
func (s *Service) Policy() Policy { return s.policy }

func (s *Service) record(ctx context.Context, ev Event) error {
	if err := s.audit.Record(ctx, ev); err != nil {
		return fmt.Errorf("audit %s: %w", ev.Type, err)
	}
	return nil
}

// closeLive closes the open connections of an account whose sessions just
// ended.
func (s *Service) closeLive(userID string) {
	if s.live == nil {
		return
	}
	if n := s.live.CloseAccount(userID); n > 0 {
		s.log.Info("live connections closed", "user", userID, "members", n)
	}
}

func (s *Service) link(path string) string {
	u := *s.public
	u.Path = path
	return u.String()
}

func totpAAD(userID string) []byte  { return []byte("users.totp_secret:" + userID) }
func emailAAD(userID string) []byte { return []byte("users.email:" + userID) }

// humanDuration writes a link lifetime the way a person would, in lang.
func (s *Service) humanDuration(lang string, d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return s.texts.Text(lang, "mail.hours", "count", int(d.Hours()))
	default:
		return s.texts.Text(lang, "mail.minutes", "count", int(d.Minutes()))
	}
}
