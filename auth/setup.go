package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/store"
)

// SetupStore is what the setup flow needs from persistence.
type SetupStore interface {
	CountUsers(ctx context.Context) (int, error)
	ReplaceSetupToken(ctx context.Context, hash []byte, created, expires time.Time) error
	SetupTokenUsable(ctx context.Context, hash []byte, now time.Time) (bool, error)
	CompleteSetup(ctx context.Context, hash []byte, now time.Time, u store.User) error
}

// ErrSetupClosed means the link is unknown, used, expired, or an account
// already exists.
var ErrSetupClosed = store.ErrSetupClosed

// Setup issues and redeems the one-time link that creates the first
// administrator.
type Setup struct {
	Store  SetupStore
	TTL    time.Duration
	Hash   HashParams
	Policy PasswordPolicy
	Now    func() time.Time
	// Gate bounds the hash with the account service's; nil bounds nothing.
	Gate *HashGate
}

// IssueIfNeeded returns a new setup token when the database has no account,
// invalidating any earlier unused one; issued is false when accounts exist.
func (s *Setup) IssueIfNeeded(ctx context.Context) (token string, expires time.Time, issued bool, err error) {
	n, err := s.Store.CountUsers(ctx)
	if err != nil {
		return "", time.Time{}, false, err
	}
	if n > 0 {
		return "", time.Time{}, false, nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, false, fmt.Errorf("setup token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	now := s.Now()
	expires = now.Add(s.TTL)
	if err := s.Store.ReplaceSetupToken(ctx, tokenHash(token), now, expires); err != nil {
		return "", time.Time{}, false, err
	}
	return token, expires, true, nil
}

// Usable reports whether token can still create the first administrator.
func (s *Setup) Usable(ctx context.Context, token string) (bool, error) {
	if !plausibleToken(token) {
		return false, nil
	}
	return s.Store.SetupTokenUsable(ctx, tokenHash(token), s.Now())
}

// Complete creates the first administrator with the token. A *PolicyError
// describes a username or password to correct (the token stays usable);
// ErrSetupClosed means the link is spent.
func (s *Setup) Complete(ctx context.Context, token, username, password string) (store.User, error) {
	if !plausibleToken(token) {
		return store.User{}, ErrSetupClosed
	}
	name, err := NormalizeUsername(username)
	if err != nil {
		return store.User{}, err
	}
	password = NormalizePassword(password)
	if err := s.Policy.Check(password, name); err != nil {
		return store.User{}, err
	}
	// A hash costs 64 MiB: spend it only for a link that can still work.
	if ok, err := s.Store.SetupTokenUsable(ctx, tokenHash(token), s.Now()); err != nil {
		return store.User{}, err
	} else if !ok {
		return store.User{}, ErrSetupClosed
	}
	hash, err := s.Gate.Hash(ctx, password, s.Hash)
	if err != nil {
		return store.User{}, err
	}
	id, err := ids.New("u")
	if err != nil {
		return store.User{}, err
	}
	now := s.Now()
	u := store.User{ID: id, Username: name, Role: "admin", PasswordHash: hash, CreatedAt: now, ActivatedAt: now, PasswordChangedAt: now}
	if err := s.Store.CompleteSetup(ctx, tokenHash(token), now, u); err != nil {
		if errors.Is(err, store.ErrSetupClosed) {
			return store.User{}, ErrSetupClosed
		}
		return store.User{}, fmt.Errorf("complete setup: %w", err)
	}
	return u, nil
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// plausibleToken spares the database lookups for strings that cannot be a
// token.
func plausibleToken(t string) bool {
	b, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil && len(b) == 32
}
