package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// ssoService is a second service over the fixture's database, with single
// sign-on and policy.
func ssoService(t *testing.T, f *fixture, policy Policy) *Service {
	t.Helper()
	svc, err := NewService(Deps{
		Store: f.db, SSO: f.db, Sealer: f.svc.sealer, Audit: f.audit, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Live: f.live,
		PublicURL: &url.URL{Scheme: "https", Host: "consult.example.org"}, Hash: testHash, Policy: policy, Now: func() time.Time { return *f.clock },
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func (e *events) since(n int) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list[n:])
}

func (e *events) len() int { e.mu.Lock(); defer e.mu.Unlock(); return len(e.list) }

func jane(role string) External {
	return External{Provider: "entra", Subject: "00000000-aaaa-4bbb-cccc-000000000001", Username: "Jane.Doe@example-hospital.org", Role: role}
}

// want checks the audit events since mark, type+/- and the reason of refusals.
func wantEvents(t *testing.T, got []Event, want ...string) {
	t.Helper()
	var names []string
	for _, ev := range got {
		n := ev.Type + map[bool]string{true: "+", false: "-"}[ev.Success]
		if r := ev.Fields["reason"]; r != "" {
			n += " " + r
		}
		names = append(names, n)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("audit events %q, want %q", names, want)
	}
}

func TestSSOFirstSignInCreatesAccountAtFullStage(t *testing.T) {
	f := newFixture(t)
	svc := ssoService(t, f, DefaultPolicy)
	mark := f.audit.len()
	token, stage, err := svc.SignInExternal(context.Background(), jane("clinician"), testClient)
	if err != nil || stage != StageFull {
		t.Fatalf("SignInExternal = %q, %v", stage, err)
	}
	id := f.session(t, token)
	if id.User.Username != "jane.doe@example-hospital.org" || id.User.Role != "clinician" || !id.Full() {
		t.Fatalf("identity %+v", id.User)
	}
	wantEvents(t, f.audit.since(mark), "user.created+", "auth.sso.signin+")
	if ev := f.audit.since(mark)[1]; ev.Fields["provider"] != "entra" || ev.Requester != id.User.ID {
		t.Fatalf("sign-in event %+v", ev)
	}
	// The second sign-in finds the same account.
	token2, _, err := svc.SignInExternal(context.Background(), jane("clinician"), testClient)
	if err != nil || f.session(t, token2).User.ID != id.User.ID {
		t.Fatalf("second sign-in: %v", err)
	}
}

func TestSSOAccountHasNoLocalPassword(t *testing.T) {
	f := newFixture(t)
	svc := ssoService(t, f, DefaultPolicy)
	ctx := context.Background()
	token, _, err := svc.SignInExternal(ctx, jane("clinician"), testClient)
	if err != nil {
		t.Fatal(err)
	}
	u := f.session(t, token).User
	// Not even the password the unknown-user timing hash is made of.
	for _, pw := range []string{"", "!", "timing equaliser for unknown users"} {
		if _, _, err := svc.SignIn(ctx, u.Username, pw, testClient); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("password sign-in with %q: %v", pw, err)
		}
	}
	hash, err := HashPassword("a password set by mistake", testHash)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.SetPassword(ctx, u.ID, hash, *f.clock); err == nil {
		t.Fatal("the database gave an SSO account a password")
	}
	if err := f.db.CreateUserToken(ctx, []byte("reset-token-hash"), u.ID, PurposeReset, *f.clock, f.clock.Add(time.Hour)); err == nil {
		t.Fatal("the database issued a password link for an SSO account")
	}
	var pe *PolicyError
	if _, err := svc.ChangePassword(ctx, f.session(t, token), "", "a password set by mistake", testClient); !errors.As(err, &pe) {
		t.Fatalf("ChangePassword of an SSO account: %v", err)
	}
	if err := svc.RequestReset(ctx, u.Username, testClient); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.db.UserByID(ctx, u.ID); got.PasswordHash != store.NoPassword {
		t.Fatalf("password hash %q", got.PasswordHash)
	}
}

func TestSSORoleFollowsTheProvidersGroups(t *testing.T) {
	f := newFixture(t)
	svc := ssoService(t, f, DefaultPolicy)
	ctx := context.Background()
	first, _, err := svc.SignInExternal(ctx, jane("clinician"), testClient)
	if err != nil {
		t.Fatal(err)
	}
	mark := f.audit.len()
	if _, _, err := svc.SignInExternal(ctx, jane("admin"), testClient); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, f.audit.since(mark), "user.role.changed+", "auth.sso.signin+")
	if id := f.session(t, first); !id.IsAdmin() {
		t.Fatalf("earlier session's role %s, want admin", id.User.Role)
	}
}

func TestSSOUserOutOfMappedGroupsIsDisabled(t *testing.T) {
	f := newFixture(t)
	svc := ssoService(t, f, DefaultPolicy)
	ctx := context.Background()
	first, _, err := svc.SignInExternal(ctx, jane("clinician"), testClient)
	if err != nil {
		t.Fatal(err)
	}
	userID := f.session(t, first).User.ID
	f.live.take()
	mark := f.audit.len()
	if _, _, err := svc.SignInExternal(ctx, jane(""), testClient); !errors.Is(err, ErrSSORefused) {
		t.Fatalf("unmapped sign-in: %v", err)
	}
	wantEvents(t, f.audit.since(mark), "user.disabled+", "auth.sso.signin- no mapped group")
	if _, err := svc.Session(ctx, first); !errors.Is(err, ErrNoSession) {
		t.Fatalf("earlier session still open: %v", err)
	}
	if got := f.live.take(); !slices.Equal(got, []string{userID}) {
		t.Fatalf("live connections closed for %v", got)
	}
	mark = f.audit.len()
	if _, _, err := svc.SignInExternal(ctx, jane("clinician"), testClient); !errors.Is(err, ErrSSORefused) {
		t.Fatalf("disabled account signed in again: %v", err)
	}
	wantEvents(t, f.audit.since(mark), "auth.sso.signin- account disabled")
}

func TestSSORefusals(t *testing.T) {
	cases := []struct {
		name   string
		ext    External
		reason string
	}{
		{"no mapped group at first sign-in", jane(""), "no mapped group"},
		{"a local account is never taken over", External{Provider: "entra", Subject: "s-2", Username: "root.admin", Role: "admin"}, "username taken"},
		{"unusable username", External{Provider: "entra", Subject: "s-3", Username: "x", Role: "clinician"}, "username unusable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			svc := ssoService(t, f, DefaultPolicy)
			mark := f.audit.len()
			if _, _, err := svc.SignInExternal(context.Background(), tc.ext, testClient); !errors.Is(err, ErrSSORefused) {
				t.Fatalf("SignInExternal: %v", err)
			}
			wantEvents(t, f.audit.since(mark), "auth.sso.signin- "+tc.reason)
		})
	}
}

func TestSSOSessionsKeepTheIdleTimeout(t *testing.T) {
	f := newFixture(t)
	svc := ssoService(t, f, DefaultPolicy)
	token, _, err := svc.SignInExternal(context.Background(), jane("clinician"), testClient)
	if err != nil {
		t.Fatal(err)
	}
	f.advance(DefaultPolicy.IdleTimeout)
	if _, err := svc.Session(context.Background(), token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("idle SSO session: %v", err)
	}
}

func TestPasswordSignInOffExceptBreakGlass(t *testing.T) {
	f := newFixture(t)
	f.createUser(t, "local.clinician", "clinician passphrase 1")
	policy := DefaultPolicy
	policy.PasswordSignInOff, policy.BreakGlass = true, []string{"root.admin"}
	svc := ssoService(t, f, policy)
	ctx := context.Background()
	mark := f.audit.len()
	if _, _, err := svc.SignIn(ctx, "local.clinician", "clinician passphrase 1", testClient); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("password sign-in while off: %v", err)
	}
	wantEvents(t, f.audit.since(mark), "signin- password sign-in off")
	if _, stage, err := svc.SignIn(ctx, "root.admin", "admin passphrase 1", testClient); err != nil || stage != StageSecondFactor {
		t.Fatalf("break-glass sign-in = %s, %v", stage, err)
	}
}

func TestAdministratorEnablesAnSSOAccountDisabledByGroupLoss(t *testing.T) {
	f := newFixture(t)
	svc := ssoService(t, f, DefaultPolicy)
	ctx := context.Background()
	first, _, err := svc.SignInExternal(ctx, jane("clinician"), testClient)
	if err != nil {
		t.Fatal(err)
	}
	userID := f.session(t, first).User.ID
	if _, _, err := svc.SignInExternal(ctx, jane(""), testClient); !errors.Is(err, ErrSSORefused) {
		t.Fatalf("unmapped sign-in: %v", err)
	}
	users, err := svc.Users(ctx, f.admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.SSO != (u.ID == userID) || (u.ID == userID && !u.Disabled) {
			t.Fatalf("user list %+v", u)
		}
	}
	var pe *PolicyError
	clinician := Identity{User: store.User{ID: userID, Role: "clinician"}}
	if err := svc.Apply(ctx, clinician, userID, ActionEnable, testClient); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a clinician enabled an account: %v", err)
	}
	mark := f.audit.len()
	if err := svc.Apply(ctx, f.admin, userID, ActionEnable, testClient); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, f.audit.since(mark), "user.enabled+")
	if ev := f.audit.since(mark)[0]; ev.Requester != f.admin.User.ID || ev.Fields["user"] != userID || ev.Fields["action"] != "enable" {
		t.Fatalf("event %+v", ev)
	}
	if err := svc.Apply(ctx, f.admin, userID, ActionEnable, testClient); !errors.As(err, &pe) {
		t.Fatalf("enabling an enabled account: %v", err)
	}
	// Back in a mapped group, the next sign-in opens a session; the earlier
	// session stays closed.
	if _, _, err := svc.SignInExternal(ctx, jane("clinician"), testClient); err != nil {
		t.Fatalf("sign-in after enabling: %v", err)
	}
	if _, err := svc.Session(ctx, first); !errors.Is(err, ErrNoSession) {
		t.Fatalf("the session of before the disabling came back: %v", err)
	}
	// Still out of the groups at the next sign-in: disabled again.
	if _, _, err := svc.SignInExternal(ctx, jane(""), testClient); !errors.Is(err, ErrSSORefused) {
		t.Fatalf("unmapped sign-in: %v", err)
	}
}

func TestEnableIsOnlyForSSOAccounts(t *testing.T) {
	f := newFixture(t)
	svc := ssoService(t, f, DefaultPolicy)
	ctx := context.Background()
	f.createUser(t, "local.clinician", "clinician passphrase 1")
	local, err := f.db.UserByUsername(ctx, "local.clinician")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Apply(ctx, f.admin, local.ID, ActionDisable, testClient); err != nil {
		t.Fatal(err)
	}
	mark := f.audit.len()
	var pe *PolicyError
	if err := svc.Apply(ctx, f.admin, local.ID, ActionEnable, testClient); !errors.As(err, &pe) {
		t.Fatalf("a local account was enabled: %v", err)
	}
	if got, _ := f.db.UserByID(ctx, local.ID); got.DisabledAt.IsZero() {
		t.Fatal("the local account is enabled")
	}
	wantEvents(t, f.audit.since(mark))
}

func TestExternalProviderNamesTheSessionsProvider(t *testing.T) {
	f := newFixture(t)
	svc := ssoService(t, f, DefaultPolicy)
	ctx := context.Background()
	token, _, err := svc.SignInExternal(ctx, jane("clinician"), testClient)
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{token: "entra", f.token: "", "no-such-session": "", "": ""} {
		if got, err := svc.ExternalProvider(ctx, tok); got != want || err != nil {
			t.Fatalf("ExternalProvider = %q, %v; want %q", got, err, want)
		}
	}
}
