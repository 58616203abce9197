package auth

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

var testHash = HashParams{MemoryKiB: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordHashRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse battery staple", testHash)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q does not record its parameters", h)
	}
	tests := []struct {
		name       string
		password   string
		want       HashParams
		ok, rehash bool
	}{
		{"right password", "correct horse battery staple", testHash, true, false},
		{"wrong password", "correct horse battery stapler", testHash, false, false},
		{"stronger policy asks for rehash", "correct horse battery staple", DefaultHashParams, true, true},
	}
	for _, tt := range tests {
		ok, rehash, err := VerifyPassword(tt.password, h, tt.want)
		if err != nil || ok != tt.ok || rehash != tt.rehash {
			t.Errorf("%s: VerifyPassword = %v, %v, %v; want %v, %v", tt.name, ok, rehash, err, tt.ok, tt.rehash)
		}
	}
}

func TestMalformedHashesAreErrors(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=1024,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
	} {
		if ok, _, err := VerifyPassword("x", h, testHash); err == nil || ok {
			t.Errorf("VerifyPassword(%q) = %v, %v; want an error", h, ok, err)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		password, username string
		ok                 bool
	}{
		{"short", "", false},
		{"elevenchars", "", false},
		{"twelve chars", "", true},
		{"ünïcödé pässwörd", "", true},
		{"🔒🔑🔒🔑🔒🔑🔒🔑🔒🔑🔒🔑", "", true},
		{"🔒🔒🔒🔒🔒🔒🔒🔒🔒🔒🔒🔒", "", false},
		{"aaaaaaaaaaaaaaaa", "", false},
		{strings.Repeat(" ", 16), "", false},
		{" \t \u3000 \t  \u00a0     ", "", false},
		{"bbbb tea for two", "", true},
		{strings.Repeat("a", 257), "", false},
		{"my name is dr.house!!", "dr.house", false},
		{"qwerty123456", "", false},
		{"1Qaz2Wsx3Edc", "", false},
	}
	for _, tt := range tests {
		err := DefaultPasswordPolicy.Check(NormalizePassword(tt.password), tt.username)
		var pe *PolicyError
		if tt.ok != (err == nil) || (err != nil && !errors.As(err, &pe)) {
			t.Errorf("Check(%q) = %v, want ok=%v", tt.password, err, tt.ok)
		}
	}
}

func TestContextWordsAreRefused(t *testing.T) {
	p := DefaultPasswordPolicy
	p.ContextWords = ContextWords("St Example Hospital")
	tests := []struct {
		password, username string
		ok                 bool
	}{
		{"my stexamplehospital pass", "", false},
		{"EXAMPLE of a good one", "", false},
		{"hospital staff 2026!", "", false},
		{"dr.house was here!!", "dr.house", false},
		{"a quite unrelated passphrase", "dr.house", true},
		{"st helens volcano trip", "", true}, // words under four letters stay allowed
	}
	for _, tt := range tests {
		if err := p.Check(NormalizePassword(tt.password), tt.username); (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tt.password, err, tt.ok)
		}
	}
}

func TestRepeatRuleIsAnOption(t *testing.T) {
	const pw = "passsword longer one"
	if err := DefaultPasswordPolicy.Check(pw, ""); err != nil {
		t.Fatalf("default policy refused three in a row: %v", err)
	}
	p := DefaultPasswordPolicy
	p.MaxRepeat = 2
	for pw, ok := range map[string]bool{pw: false, "password longer one": true, "aab bcc dde eff": true} {
		if err := p.Check(pw, ""); (err == nil) != ok {
			t.Errorf("Check(%q) with at most 2 in a row = %v, want ok=%v", pw, err, ok)
		}
	}
}

func TestCompositionRulesAreAnOption(t *testing.T) {
	p := PasswordPolicy{MinLength: 10, MaxLength: 64, RequireMixed: true}
	for pw, ok := range map[string]bool{"all lower case words": false, "Mixed Case Words": false, "Mixed Case W0rds": true, "SHORT1a": false} {
		if err := p.Check(pw, ""); (err == nil) != ok {
			t.Errorf("Check(%q) = %v, want ok=%v", pw, err, ok)
		}
	}
}

func TestNormalizeUsername(t *testing.T) {
	tests := []struct{ in, want string }{
		{" Dr.House ", "dr.house"},
		{"a.b@hospital.org", "a.b@hospital.org"},
		{"ab", ""},
		{"-admin", ""},
		{"admin user", ""},
		{"<script>", ""},
	}
	for _, tt := range tests {
		got, err := NormalizeUsername(tt.in)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func newSetup(t *testing.T) (*Setup, *time.Time) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)
	return &Setup{Store: db, TTL: time.Hour, Hash: testHash, Policy: DefaultPasswordPolicy, Now: func() time.Time { return now }}, &now
}

func TestSetupLinkWorksOnceAndNeverAgain(t *testing.T) {
	ctx := context.Background()
	s, now := newSetup(t)
	token, expires, issued, err := s.IssueIfNeeded(ctx)
	if err != nil || !issued || !expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("IssueIfNeeded = %v, %v, %v", expires, issued, err)
	}
	if ok, _ := s.Usable(ctx, token); !ok {
		t.Fatal("fresh token not usable")
	}
	// A policy failure leaves the link usable so the administrator can retry.
	var pe *PolicyError
	if _, err := s.Complete(ctx, token, "admin", "short"); !errors.As(err, &pe) {
		t.Fatalf("weak password: %v", err)
	}
	u, err := s.Complete(ctx, token, "Admin", "a long enough passphrase")
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if u.Role != "admin" || u.Username != "admin" || !strings.HasPrefix(u.ID, "u_") {
		t.Fatalf("created %+v", u)
	}
	if _, err := s.Complete(ctx, token, "second", "a long enough passphrase"); !errors.Is(err, ErrSetupClosed) {
		t.Fatalf("reuse: %v, want ErrSetupClosed", err)
	}
	if ok, _ := s.Usable(ctx, token); ok {
		t.Fatal("spent token usable")
	}
	if _, _, issued, err := s.IssueIfNeeded(ctx); issued || err != nil {
		t.Fatalf("IssueIfNeeded with an account = %v, %v; want no link", issued, err)
	}
}

func TestSetupLinkExpires(t *testing.T) {
	ctx := context.Background()
	s, now := newSetup(t)
	token, _, _, err := s.IssueIfNeeded(ctx)
	if err != nil {
		t.Fatal(err)
	}
	*now = now.Add(61 * time.Minute)
	if ok, _ := s.Usable(ctx, token); ok {
		t.Fatal("expired token usable")
	}
	if _, err := s.Complete(ctx, token, "admin", "a long enough passphrase"); !errors.Is(err, ErrSetupClosed) {
		t.Fatalf("expired: %v", err)
	}
}

func TestSetupRejectsImplausibleTokens(t *testing.T) {
	ctx := context.Background()
	s, _ := newSetup(t)
	for _, tok := range []string{"", "x", strings.Repeat("A", 43), "../../etc/passwd"} {
		if ok, err := s.Usable(ctx, tok); ok || err != nil {
			t.Errorf("Usable(%q) = %v, %v", tok, ok, err)
		}
	}
}
