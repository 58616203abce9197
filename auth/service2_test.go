package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPasswordResetLinkWorksOnceAndEndsSessions(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the first passphrase")
	token, _, err := f.svc.SignIn(ctx, "dr.who", "the first passphrase", testClient)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RequestReset(ctx, "dr.who", testClient); err != nil {
		t.Fatal(err)
	}
	link := f.lastLink(t, "/reset/")
	tests := []struct {
		name     string
		password string
		advance  time.Duration
		want     string
	}{
		{"history refuses the current password", "the first passphrase", 0, "not used"},
		{"policy refuses a short one", "short", 0, "at least 12"},
		{"a new password works", "the second passphrase", 0, ""},
		{"the link is spent", "the third passphrase", 0, ErrLinkInvalid.Error()},
	}
	for _, tt := range tests {
		f.advance(tt.advance)
		err := f.svc.SetPasswordWithLink(ctx, link, PurposeReset, tt.password, testClient)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Fatalf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := f.svc.Session(ctx, token); !errors.Is(err, ErrNoSession) {
		t.Fatal("a session survived the password reset")
	}
	if _, _, err := f.svc.SignIn(ctx, "dr.who", "the second passphrase", testClient); err != nil {
		t.Fatalf("sign in with the new password: %v", err)
	}
}

func TestPasswordResetLinkExpiresAfter30Minutes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the first passphrase")
	if err := f.svc.RequestReset(ctx, "dr.who", testClient); err != nil {
		t.Fatal(err)
	}
	link := f.lastLink(t, "/reset/")
	f.advance(31 * time.Minute)
	if err := f.svc.SetPasswordWithLink(ctx, link, PurposeReset, "the second passphrase", testClient); !errors.Is(err, ErrLinkInvalid) {
		t.Fatalf("expired link: %v", err)
	}
}

func TestResetRequestSaysNothingAboutUnknownUsers(t *testing.T) {
	f := newFixture(t)
	before := len(f.audit.types())
	for _, name := range []string{"nobody.here", "!!bad name!!", ""} {
		if err := f.svc.RequestReset(context.Background(), name, testClient); err != nil {
			t.Errorf("RequestReset(%q) = %v", name, err)
		}
	}
	if len(f.audit.types()) != before {
		t.Fatal("a reset for an unknown user was recorded as sent")
	}
}

func TestAdminActions(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the first passphrase")
	users, err := f.svc.Users(ctx, f.admin)
	if err != nil || len(users) != 2 {
		t.Fatalf("Users = %v, %v", users, err)
	}
	var who UserSummary
	for _, u := range users {
		if u.Username == "dr.who" {
			who = u
		}
	}
	session := func() string {
		tok, _, err := f.svc.SignIn(ctx, "dr.who", "the first passphrase", testClient)
		if err != nil {
			t.Fatalf("SignIn: %v", err)
		}
		return tok
	}

	tok := session()
	if err := f.svc.Apply(ctx, f.admin, who.ID, ActionRevokeSessions, testClient); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Session(ctx, tok); !errors.Is(err, ErrNoSession) {
		t.Fatal("session survived revocation")
	}

	if err := f.svc.Apply(ctx, f.admin, who.ID, ActionForcePassword, testClient); err != nil {
		t.Fatal(err)
	}
	u, _ := f.db.UserByID(ctx, who.ID)
	if !u.MustChangePassword {
		t.Fatal("force password change not recorded")
	}

	// A clinician is not an administrator.
	clin := f.session(t, session())
	if err := f.svc.Apply(ctx, clin, f.admin.User.ID, ActionDisable, testClient); !errors.Is(err, ErrForbidden) {
		t.Fatalf("clinician action: %v", err)
	}
	if err := f.svc.Apply(ctx, f.admin, f.admin.User.ID, ActionDisable, testClient); err == nil {
		t.Fatal("an admin disabled their own account")
	}

	tok = session()
	if err := f.svc.Apply(ctx, f.admin, who.ID, ActionDisable, testClient); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Session(ctx, tok); !errors.Is(err, ErrNoSession) {
		t.Fatal("session of a disabled account works")
	}
	if _, _, err := f.svc.SignIn(ctx, "dr.who", "the first passphrase", testClient); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("disabled account signs in: %v", err)
	}
	got := strings.Join(f.audit.types(), " ")
	for _, want := range []string{"user.created+", "sessions.revoked+", "user.disabled+", "totp.enrolled+", "signin-"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit lacks %s: %s", want, got)
		}
	}
}

func TestResetTOTPMakesTheUserEnrollAgain(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the first passphrase")
	id, _, _ := f.signInFully(t, "dr.who", "the first passphrase")
	if err := f.svc.Apply(ctx, f.admin, id.User.ID, ActionResetTOTP, testClient); err != nil {
		t.Fatal(err)
	}
	_, stage, err := f.svc.SignIn(ctx, "dr.who", "the first passphrase", testClient)
	if err != nil || stage != StageEnroll {
		t.Fatalf("after reset: stage %s, %v; want enroll", stage, err)
	}
}

func TestStagesGateWhatASessionMayDo(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the first passphrase")
	tok, stage, _ := f.svc.SignIn(ctx, "dr.who", "the first passphrase", testClient)
	id := f.session(t, tok)
	if stage != StageEnroll || id.Full() {
		t.Fatalf("stage %s full=%v", stage, id.Full())
	}
	if _, err := f.svc.ChangePassword(ctx, id, "the first passphrase", "another passphrase", testClient); !errors.Is(err, ErrForbidden) {
		t.Fatalf("password change before enrollment: %v", err)
	}
	if _, _, err := f.svc.VerifySecondFactor(ctx, id, "123456", testClient); !errors.Is(err, ErrForbidden) {
		t.Fatalf("code at enroll stage: %v", err)
	}
	if _, err := f.svc.Users(ctx, id); !errors.Is(err, ErrForbidden) {
		t.Fatalf("users list: %v", err)
	}
}

// TestActivationIsAuditedAsSuch: the first password set through an
// activation link is an activation in the log, a later reset a reset.
func TestActivationIsAuditedAsSuch(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.new", "the first passphrase")
	if err := f.svc.RequestReset(ctx, "dr.new", testClient); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetPasswordWithLink(ctx, f.lastLink(t, "/reset/"), PurposeReset, "the second passphrase", testClient); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range f.audit.list {
		if ev.Type == EventUserActivated || ev.Type == EventPasswordReset {
			got = append(got, ev.Type+": "+ev.Message)
		}
	}
	want := "user.activated: account activated|password.reset: reset link sent|password.reset: password reset with a mailed link"
	if strings.Join(got, "|") != want {
		t.Fatalf("audit %q, want %q", strings.Join(got, "|"), want)
	}
}

// TestDisplayNameByOwnerOrAdmin: the owner and an administrator may set an
// account's display name, another clinician may not; each change is
// audited, and a name with invisible characters is refused.
func TestDisplayNameByOwnerOrAdmin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.one", "the first passphrase")
	f.createUser(t, "dr.two", "the other passphrase")
	one, err := f.db.UserByUsername(ctx, "dr.one")
	if err != nil {
		t.Fatal(err)
	}
	two, err := f.db.UserByUsername(ctx, "dr.two")
	if err != nil {
		t.Fatal(err)
	}
	asOne, asTwo := Identity{User: one, Stage: StageFull}, Identity{User: two, Stage: StageFull}
	cases := []struct {
		name   string
		actor  Identity
		value  string
		want   error // nil, ErrForbidden, or any policy error (errPolicy)
		stored string
	}{
		{"owner", asOne, "  Dr. Ana Ruiz ", nil, "Dr. Ana Ruiz"},
		{"another clinician", asTwo, "Mallory", ErrForbidden, "Dr. Ana Ruiz"},
		{"owner mid sign-in", Identity{User: one, Stage: StageSecondFactor}, "X", ErrForbidden, "Dr. Ana Ruiz"},
		{"invisible characters", asOne, "Dr.\u202eAna", errPolicy, "Dr. Ana Ruiz"},
		{"too long", asOne, strings.Repeat("a", MaxDisplayName+1), errPolicy, "Dr. Ana Ruiz"},
		{"administrator", f.admin, "Dr. A. Ruiz", nil, "Dr. A. Ruiz"},
		{"owner clears it", asOne, "", nil, ""},
	}
	for _, c := range cases {
		err := f.svc.SetDisplayName(ctx, c.actor, one.ID, c.value, testClient)
		var pe *PolicyError
		switch {
		case c.want == errPolicy && !errors.As(err, &pe),
			c.want != errPolicy && !errors.Is(err, c.want):
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		u, _ := f.db.UserByID(ctx, one.ID)
		if u.DisplayName != c.stored {
			t.Fatalf("%s: stored %q, want %q", c.name, u.DisplayName, c.stored)
		}
	}
	var changes []string
	for _, ev := range f.audit.list {
		if ev.Type == EventProfileChanged {
			changes = append(changes, ev.Requester+">"+ev.Fields["user"])
		}
	}
	want := one.ID + ">" + one.ID + " " + f.admin.User.ID + ">" + one.ID + " " + one.ID + ">" + one.ID
	if strings.Join(changes, " ") != want {
		t.Fatalf("audited %v, want %s", changes, want)
	}
}

var errPolicy = errors.New("a policy error")
