package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/store"
)

// PasskeyStore is what passkeys need from persistence.
type PasskeyStore interface {
	AddPasskey(ctx context.Context, p store.Passkey) error
	Passkeys(ctx context.Context, userID string) ([]store.Passkey, error)
	RenamePasskey(ctx context.Context, userID, id, name string) error
	DeletePasskey(ctx context.Context, userID, id string) error
	DeleteUserPasskeys(ctx context.Context, userID string) (int, error)
	UsePasskey(ctx context.Context, id string, count uint32, credential []byte, now time.Time) error
	SaveCeremony(ctx context.Context, ownerHash []byte, purpose string, data []byte, now, expires time.Time) error
	TakeCeremony(ctx context.Context, ownerHash []byte, purpose string, now time.Time) ([]byte, error)
	PasskeyByCredentialID(ctx context.Context, credentialID []byte) (store.Passkey, error)
}

// PasskeyOptions are the institution's choices about passkeys.
type PasskeyOptions struct {
	// RequireAttestation refuses authenticators that do not prove their
	// make and model with an attestation statement.
	RequireAttestation bool
	// Passwordless lets a discoverable passkey with user verification sign
	// a user in without the password.
	Passwordless bool
	// RequireForAdmins makes administrators sign in with a passkey: once
	// they have one, codes are refused, and until they have one, only
	// their account pages are open to them.
	RequireForAdmins bool
}

// Audit event types of passkeys.
const (
	EventPasskeyRegistered = "auth.passkey.registered"
	EventPasskeyRemoved    = "auth.passkey.removed"
	EventPasskeyRenamed    = "auth.passkey.renamed"
	EventPasskeySignIn     = "auth.passkey.signin"
)

// Ceremony purposes, so that an answer to one ceremony cannot finish another.
const (
	ceremonyRegister = "register"
	ceremonySignIn   = "signin"
)

// ceremonyTTL bounds how long a begun ceremony can be finished.
const ceremonyTTL = 5 * time.Minute

// maxPasskeyName bounds the name a user gives a passkey.
const maxPasskeyName = 64

// Errors of passkey ceremonies a page can show.
var (
	ErrPasskeyRefused = errors.New("the passkey was not accepted")
	ErrPasskeyName    = errors.New("name the passkey with 1 to 64 characters")
)

// PasskeyInfo is what a page shows of a passkey.
type PasskeyInfo struct {
	ID         string
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// Passkeys runs WebAuthn registration and sign-in for staff accounts.
type Passkeys struct {
	svc          *Service
	store        PasskeyStore
	rp           *webauthn.WebAuthn
	attest       bool
	passwordless bool
	// adminsNeedPasskey: see PasskeyOptions.RequireForAdmins.
	adminsNeedPasskey bool
}

// NewPasskeys returns the passkey service of s. The relying-party ID is the
// host of the public URL and the only accepted origin is the public URL's.
func (s *Service) NewPasskeys(st PasskeyStore, opt PasskeyOptions) (*Passkeys, error) {
	origin := s.public.Scheme + "://" + s.public.Host
	rp, err := webauthn.New(&webauthn.Config{
		RPID:          s.public.Hostname(),
		RPDisplayName: displayName(s.issuer),
		RPOrigins:     []string{origin},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn relying party: %w", err)
	}
	return &Passkeys{svc: s, store: st, rp: rp, attest: opt.RequireAttestation, passwordless: opt.Passwordless,
		adminsNeedPasskey: opt.RequireForAdmins}, nil
}

func displayName(issuer string) string {
	if issuer == "" {
		return "OpenConsult"
	}
	return issuer
}

// passkeyUser adapts an account to the relying-party library. The user
// handle is the account id: random, and no personal data.
type passkeyUser struct {
	u     store.User
	keys  []store.Passkey
	creds []webauthn.Credential
}

func (p *passkeyUser) WebAuthnID() []byte                         { return []byte(p.u.ID) }
func (p *passkeyUser) WebAuthnName() string                       { return p.u.Username }
func (p *passkeyUser) WebAuthnDisplayName() string                { return p.u.Username }
func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

func (k *Passkeys) user(ctx context.Context, u store.User) (*passkeyUser, error) {
	keys, err := k.store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	pu := &passkeyUser{u: u, keys: keys}
	for _, key := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(key.Credential, &c); err != nil {
			return nil, fmt.Errorf("decode passkey %s: %w", key.ID, err)
		}
		c.Authenticator.SignCount = key.SignCount
		pu.creds = append(pu.creds, c)
	}
	return pu, nil
}

// List returns the passkeys of the identity's account.
func (k *Passkeys) List(ctx context.Context, id Identity) ([]PasskeyInfo, error) {
	keys, err := k.store.Passkeys(ctx, id.User.ID)
	if err != nil {
		return nil, err
	}
	out := make([]PasskeyInfo, 0, len(keys))
	for _, key := range keys {
		out = append(out, PasskeyInfo{ID: key.ID, Name: key.Name, CreatedAt: key.CreatedAt, LastUsedAt: key.LastUsedAt})
	}
	return out, nil
}

// Has reports whether the account has a passkey.
func (k *Passkeys) Has(ctx context.Context, userID string) (bool, error) {
	keys, err := k.store.Passkeys(ctx, userID)
	return len(keys) > 0, err
}

// saveCeremony keeps the library's session data server-side, tied to its
// owner: the hash of the session that asked, or of a pre-sign-in cookie.
func (k *Passkeys) saveCeremony(ctx context.Context, owner []byte, purpose string, sd *webauthn.SessionData) error {
	data, err := json.Marshal(sd)
	if err != nil {
		return fmt.Errorf("encode ceremony: %w", err)
	}
	now := k.svc.now()
	return k.store.SaveCeremony(ctx, owner, purpose, data, now, now.Add(ceremonyTTL))
}

// takeCeremony returns the owner's ceremony of purpose, once.
func (k *Passkeys) takeCeremony(ctx context.Context, owner []byte, purpose string) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	data, err := k.store.TakeCeremony(ctx, owner, purpose, k.svc.now())
	if errors.Is(err, store.ErrNotFound) {
		return sd, fmt.Errorf("no %s ceremony pending: %w", purpose, ErrPasskeyRefused)
	}
	if err != nil {
		return sd, err
	}
	if err := json.Unmarshal(data, &sd); err != nil {
		return sd, fmt.Errorf("decode ceremony: %w", err)
	}
	return sd, nil
}

// BeginRegistration returns the creation options (JSON, for
// navigator.credentials.create) for a new passkey of a fully signed-in user.
// User verification is required; existing passkeys are excluded.
func (k *Passkeys) BeginRegistration(ctx context.Context, id Identity) ([]byte, error) {
	if !id.Full() {
		return nil, ErrForbidden
	}
	pu, err := k.user(ctx, id.User)
	if err != nil {
		return nil, err
	}
	var exclude []protocol.CredentialDescriptor
	for i := range pu.creds {
		exclude = append(exclude, pu.creds[i].Descriptor())
	}
	conveyance := protocol.PreferNoAttestation
	if k.attest {
		conveyance = protocol.PreferDirectAttestation
	}
	creation, sd, err := k.rp.BeginRegistration(pu,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithExclusions(exclude),
		webauthn.WithConveyancePreference(conveyance))
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	if err := k.saveCeremony(ctx, id.session.IDHash, ceremonyRegister, sd); err != nil {
		return nil, err
	}
	return json.Marshal(creation)
}

// CheckPasskeyName normalises a passkey's name.
func CheckPasskeyName(name string) (string, error) {
	name = strings.Join(strings.Fields(name), " ")
	if name == "" || utf8.RuneCountInString(name) > maxPasskeyName || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", ErrPasskeyName
	}
	return name, nil
}

// FinishRegistration verifies the browser's answer to the pending
// registration ceremony and stores the passkey under name.
func (k *Passkeys) FinishRegistration(ctx context.Context, id Identity, name string, response []byte, c Client) (PasskeyInfo, error) {
	if !id.Full() {
		return PasskeyInfo{}, ErrForbidden
	}
	name, err := CheckPasskeyName(name)
	if err != nil {
		return PasskeyInfo{}, err
	}
	sd, err := k.takeCeremony(ctx, id.session.IDHash, ceremonyRegister)
	if err != nil {
		return PasskeyInfo{}, k.refuseRegistration(ctx, id, c, "no ceremony", err)
	}
	pu, err := k.user(ctx, id.User)
	if err != nil {
		return PasskeyInfo{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return PasskeyInfo{}, k.refuseRegistration(ctx, id, c, "malformed response", err)
	}
	cred, err := k.rp.CreateCredential(pu, sd, parsed)
	if err != nil {
		return PasskeyInfo{}, k.refuseRegistration(ctx, id, c, "verification failed", err)
	}
	if k.attest && (cred.AttestationType == "" || cred.AttestationType == "none" || cred.AttestationType == "self") {
		return PasskeyInfo{}, k.refuseRegistration(ctx, id, c, "attestation required", errors.New("no attestation"))
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return PasskeyInfo{}, fmt.Errorf("encode passkey: %w", err)
	}
	pid, err := ids.New("pk_")
	if err != nil {
		return PasskeyInfo{}, err
	}
	now := k.svc.now()
	key := store.Passkey{ID: pid, UserID: id.User.ID, CredentialID: cred.ID, Name: name, Credential: data, SignCount: cred.Authenticator.SignCount, CreatedAt: now}
	if err := k.store.AddPasskey(ctx, key); err != nil {
		return PasskeyInfo{}, err
	}
	if err := k.svc.record(ctx, Event{Type: EventPasskeyRegistered, Success: true, Requester: id.User.ID, Message: "passkey registered", Client: c,
		Fields: map[string]string{"passkey": pid, "attestation": cred.AttestationType}}); err != nil {
		return PasskeyInfo{}, err
	}
	return PasskeyInfo{ID: pid, Name: name, CreatedAt: now}, nil
}

func (k *Passkeys) refuseRegistration(ctx context.Context, id Identity, c Client, reason string, cause error) error {
	k.svc.log.Info("passkey registration refused", "user", id.User.ID, "reason", reason, "err", cause)
	if err := k.svc.record(ctx, Event{Type: EventPasskeyRegistered, Success: false, Requester: id.User.ID, Message: "passkey refused", Client: c,
		Fields: map[string]string{"reason": reason}}); err != nil {
		return err
	}
	return ErrPasskeyRefused
}

// Rename names one of the identity's passkeys.
func (k *Passkeys) Rename(ctx context.Context, id Identity, passkeyID, name string, c Client) error {
	if !id.Full() {
		return ErrForbidden
	}
	name, err := CheckPasskeyName(name)
	if err != nil {
		return err
	}
	if err := k.store.RenamePasskey(ctx, id.User.ID, passkeyID, name); err != nil {
		return err
	}
	return k.svc.record(ctx, Event{Type: EventPasskeyRenamed, Success: true, Requester: id.User.ID, Message: "passkey renamed", Client: c,
		Fields: map[string]string{"passkey": passkeyID}})
}

// Remove deletes one of the identity's passkeys.
func (k *Passkeys) Remove(ctx context.Context, id Identity, passkeyID string, c Client) error {
	if !id.Full() {
		return ErrForbidden
	}
	if err := k.store.DeletePasskey(ctx, id.User.ID, passkeyID); err != nil {
		return err
	}
	return k.svc.record(ctx, Event{Type: EventPasskeyRemoved, Success: true, Requester: id.User.ID, Message: "passkey removed", Client: c,
		Fields: map[string]string{"passkey": passkeyID, "user": id.User.ID}})
}

// BeginSignIn returns the request options (JSON, for
// navigator.credentials.get) that let a session waiting for its second
// factor use one of the account's passkeys instead of a code.
func (k *Passkeys) BeginSignIn(ctx context.Context, id Identity) ([]byte, error) {
	if id.Stage != StageSecondFactor {
		return nil, ErrForbidden
	}
	pu, err := k.user(ctx, id.User)
	if err != nil {
		return nil, err
	}
	if len(pu.creds) == 0 {
		return nil, ErrPasskeyRefused
	}
	assertion, sd, err := k.rp.BeginLogin(pu, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin passkey sign-in: %w", err)
	}
	if err := k.saveCeremony(ctx, id.session.IDHash, ceremonySignIn, sd); err != nil {
		return nil, err
	}
	return json.Marshal(assertion)
}

// FinishSignIn verifies the browser's assertion for the pending sign-in
// ceremony. It takes the place of VerifySecondFactor: on success the session
// moves on with a fresh token; a refusal counts toward the lockout like a
// wrong code.
func (k *Passkeys) FinishSignIn(ctx context.Context, id Identity, response []byte, c Client) (token, stage string, err error) {
	if id.Stage != StageSecondFactor {
		return "", "", ErrForbidden
	}
	s := k.svc
	if until, err := s.store.SigninLockedUntil(ctx, id.User.Username); err != nil {
		return "", "", err
	} else if until.After(s.now()) {
		return "", "", ErrLocked
	}
	pid, reason, err := k.verifyAssertion(ctx, id, response)
	if reason != "" {
		k.svc.log.Info("passkey sign-in refused", "user", id.User.ID, "reason", reason, "err", err)
		if err := s.record(ctx, Event{Type: EventPasskeySignIn, Success: false, Requester: id.User.ID, Message: "passkey refused", Client: c,
			Fields: map[string]string{"reason": reason}}); err != nil {
			return "", "", err
		}
		return "", "", s.failSignIn(ctx, id.User.Username, id.User.ID, c, "bad passkey", ErrPasskeyRefused)
	}
	if err != nil {
		return "", "", err
	}
	if err := s.store.ClearSigninFailures(ctx, id.User.Username); err != nil {
		return "", "", err
	}
	stage = s.stageAfterSecondFactor(id.User)
	if err := s.record(ctx, Event{Type: EventPasskeySignIn, Success: true, Requester: id.User.ID, Message: "second factor accepted", Client: c,
		Fields: map[string]string{"method": "passkey", "passkey": pid}}); err != nil {
		return "", "", err
	}
	token, err = s.advance(ctx, id, stage)
	return token, stage, err
}

// verifyAssertion checks an assertion against the pending ceremony and the
// account's passkeys and stores the new counter. A non-empty reason means
// the assertion was refused; err alone is a failure of the server.
func (k *Passkeys) verifyAssertion(ctx context.Context, id Identity, response []byte) (passkeyID, reason string, err error) {
	sd, err := k.takeCeremony(ctx, id.session.IDHash, ceremonySignIn)
	if errors.Is(err, ErrPasskeyRefused) {
		return "", "no ceremony", err
	}
	if err != nil {
		return "", "", err
	}
	pu, err := k.user(ctx, id.User)
	if err != nil {
		return "", "", err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return "", "malformed response", err
	}
	cred, err := k.rp.ValidateLogin(pu, sd, parsed)
	if err != nil {
		return "", "verification failed", err
	}
	return k.recordUse(ctx, pu, cred)
}

// recordUse refuses a signature counter that did not increase and stores
// the new one.
func (k *Passkeys) recordUse(ctx context.Context, pu *passkeyUser, cred *webauthn.Credential) (passkeyID, reason string, err error) {
	if cred.Authenticator.CloneWarning {
		return "", "counter regressed", store.ErrCounterRegressed
	}
	var key store.Passkey
	for _, p := range pu.keys {
		if bytes.Equal(p.CredentialID, cred.ID) {
			key = p
		}
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return "", "", fmt.Errorf("encode passkey: %w", err)
	}
	err = k.store.UsePasskey(ctx, key.ID, cred.Authenticator.SignCount, data, k.svc.now())
	if errors.Is(err, store.ErrCounterRegressed) {
		return "", "counter regressed", err
	}
	return key.ID, "", err
}
