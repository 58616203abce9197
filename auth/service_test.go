package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/mailer"
	"github.com/openconsult/openconsult/store"
)

// events keeps what the service recorded, in order.
type events struct {
	mu   sync.Mutex
	list []Event
}

func (e *events) Record(_ context.Context, ev Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
	return nil
}

func (e *events) types() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.list {
		out = append(out, ev.Type+map[bool]string{true: "+", false: "-"}[ev.Success])
	}
	return out
}

type fixture struct {
	svc    *Service
	db     *store.DB
	clock  *time.Time
	audit  *events
	outbox string
	admin  Identity
	token  string // admin's session token
	secret string // admin's TOTP secret
	live   *liveConns
}

var testClient = Client{IP: "192.0.2.10", UserAgent: "test"}

// sealer is the real keyring over the test's database.
func sealer(t *testing.T, db *store.DB) *keyring.Keyring {
	t.Helper()
	m, err := keyring.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.Open(context.Background(), db, m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	f := &fixture{db: db, clock: &now, audit: &events{}, outbox: filepath.Join(dir, "outbox"), live: &liveConns{}}
	clock := func() time.Time { return *f.clock }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.svc, err = NewService(Deps{
		Store: db, Sealer: sealer(t, db), Audit: f.audit, Log: log, Live: f.live,
		Mail:      &mailer.Outbox{Dir: f.outbox, From: "noreply@example.org", Log: log, Now: clock},
		PublicURL: &url.URL{Scheme: "https", Host: "consult.example.org"}, Issuer: "OpenConsult Test",
		Hash: testHash, Policy: DefaultPolicy, Now: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	setup := &Setup{Store: db, TTL: time.Hour, Hash: testHash, Policy: DefaultPasswordPolicy, Now: clock}
	tok, _, _, err := setup.IssueIfNeeded(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Complete(ctx, tok, "root.admin", "admin passphrase 1"); err != nil {
		t.Fatal(err)
	}
	f.admin, f.token, f.secret = f.signInFully(t, "root.admin", "admin passphrase 1")
	return f
}

func (f *fixture) advance(d time.Duration) { *f.clock = f.clock.Add(d) }

// code computes the TOTP code an authenticator app would show now.
func (f *fixture) code(t *testing.T, secret string) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, *f.clock, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) session(t *testing.T, token string) Identity {
	t.Helper()
	id, err := f.svc.Session(context.Background(), token)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	return id
}

// signInFully signs in, enrolls TOTP when asked, and returns the identity.
func (f *fixture) signInFully(t *testing.T, username, password string) (Identity, string, string) {
	t.Helper()
	ctx := context.Background()
	token, stage, err := f.svc.SignIn(ctx, username, password, testClient)
	if err != nil {
		t.Fatalf("SignIn(%s): %v", username, err)
	}
	if stage != StageEnroll {
		t.Fatalf("first sign-in stage = %s, want enroll", stage)
	}
	id := f.session(t, token)
	en, err := f.svc.BeginEnrollment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	id = f.session(t, token)
	codes, token, stage, err := f.svc.ConfirmEnrollment(ctx, id, f.code(t, en.Secret), testClient)
	if err != nil {
		t.Fatalf("ConfirmEnrollment: %v", err)
	}
	if len(codes) != 10 || stage != StageFull {
		t.Fatalf("enrollment gave %d codes, stage %s", len(codes), stage)
	}
	return f.session(t, token), token, en.Secret
}

// createUser makes an account through the admin path and activates it with
// the mailed link, as its owner would.
func (f *fixture) createUser(t *testing.T, username, password string) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.svc.CreateUser(ctx, f.admin, username, "clinician", username+"@example.org", testClient); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	link := f.lastLink(t, "/activate/")
	if err := f.svc.SetPasswordWithLink(ctx, link, PurposeActivate, password, testClient); err != nil {
		t.Fatalf("activate: %v", err)
	}
}

// lastLink finds the link with prefix in the outbox and empties the outbox,
// as the recipient's mail client would take the message away.
func (f *fixture) lastLink(t *testing.T, prefix string) string {
	t.Helper()
	entries, err := os.ReadDir(f.outbox)
	if err != nil || len(entries) == 0 {
		t.Fatalf("outbox empty: %v", err)
	}
	var found string
	for _, e := range entries {
		path := filepath.Join(f.outbox, e.Name())
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		if m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `([A-Za-z0-9_-]+)`).FindStringSubmatch(string(body)); m != nil {
			found = m[1]
		}
	}
	if found == "" {
		t.Fatalf("no %s link in the outbox", prefix)
	}
	return found
}

func TestRFC6238TestVectors(t *testing.T) {
	// RFC 6238 Appendix B, SHA-1 rows: the ASCII secret "12345678901234567890".
	secret := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	opts := totp.ValidateOpts{Period: 30, Digits: otp.DigitsEight, Algorithm: otp.AlgorithmSHA1}
	tests := []struct {
		unix int64
		code string
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	}
	for _, tt := range tests {
		step, ok := matchTOTP(secret, tt.code, time.Unix(tt.unix, 0), opts)
		if !ok || step != tt.unix/30 {
			t.Errorf("T=%d code %s: step %d ok %v", tt.unix, tt.code, step, ok)
		}
		if _, ok := matchTOTP(secret, tt.code, time.Unix(tt.unix+120, 0), opts); ok {
			t.Errorf("T=%d code accepted two minutes later", tt.unix)
		}
	}
}

func TestLockoutAfterFiveFailuresAndReleaseAfterWindow(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct{ name, username string }{{"existing user", "dr.who"}, {"unknown user", "nobody.here"}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createUser(t, "dr.who", "the right passphrase")
			for i := 1; i <= 4; i++ {
				if _, _, err := f.svc.SignIn(ctx, tt.username, "wrong passphrase!", testClient); !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("failure %d: %v", i, err)
				}
			}
			if _, _, err := f.svc.SignIn(ctx, tt.username, "wrong passphrase!", testClient); !errors.Is(err, ErrLocked) {
				t.Fatalf("fifth failure: %v, want ErrLocked", err)
			}
			// Locked: even the right password is refused, for 15 minutes.
			f.advance(14 * time.Minute)
			if _, _, err := f.svc.SignIn(ctx, tt.username, "the right passphrase", testClient); !errors.Is(err, ErrLocked) {
				t.Fatalf("during lockout: %v, want ErrLocked", err)
			}
			f.advance(2 * time.Minute)
			_, _, err := f.svc.SignIn(ctx, tt.username, "the right passphrase", testClient)
			if tt.username == "dr.who" && err != nil {
				t.Fatalf("after lockout: %v", err)
			}
			if tt.username != "dr.who" && !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("unknown user after lockout: %v", err)
			}
			if got := strings.Join(f.audit.types(), " "); !strings.Contains(got, "lockout+") {
				t.Fatalf("no lockout audited: %s", got)
			}
		})
	}
}

func TestReplayedTOTPCodeRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the right passphrase")
	token, _, _ := f.svc.SignIn(ctx, "dr.who", "the right passphrase", testClient)
	id := f.session(t, token)
	en, _ := f.svc.BeginEnrollment(ctx, id)
	id = f.session(t, token)
	code := f.code(t, en.Secret)
	if _, _, _, err := f.svc.ConfirmEnrollment(ctx, id, code, testClient); err != nil {
		t.Fatal(err)
	}
	// Sign in again within the same 30 s step: the enrolment code is spent.
	token, stage, err := f.svc.SignIn(ctx, "dr.who", "the right passphrase", testClient)
	if err != nil || stage != StageSecondFactor {
		t.Fatalf("SignIn = %s, %v", stage, err)
	}
	id = f.session(t, token)
	if _, _, err := f.svc.VerifySecondFactor(ctx, id, code, testClient); !errors.Is(err, ErrBadCode) {
		t.Fatalf("replayed code: %v, want ErrBadCode", err)
	}
	f.advance(30 * time.Second)
	next := f.code(t, en.Secret)
	token2, stage, err := f.svc.VerifySecondFactor(ctx, id, next, testClient)
	if err != nil || stage != StageFull {
		t.Fatalf("fresh code: %s, %v", stage, err)
	}
	if _, err := f.svc.Session(ctx, token); !errors.Is(err, ErrNoSession) {
		t.Fatal("the pre-second-factor session token still works")
	}
	f.session(t, token2)
}

func TestRecoveryCodeWorksOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the right passphrase")
	token, _, _ := f.svc.SignIn(ctx, "dr.who", "the right passphrase", testClient)
	id := f.session(t, token)
	en, _ := f.svc.BeginEnrollment(ctx, id)
	codes, _, _, err := f.svc.ConfirmEnrollment(ctx, f.session(t, token), f.code(t, en.Secret), testClient)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, ErrBadCode} {
		token, _, _ := f.svc.SignIn(ctx, "dr.who", "the right passphrase", testClient)
		_, _, err := f.svc.VerifySecondFactor(ctx, f.session(t, token), strings.ToUpper(codes[3]), testClient)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("use %d of a recovery code: %v, want %v", i+1, err, want)
		}
	}
}

func TestSessionIdleAndAbsoluteExpiry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.advance(29 * time.Minute)
	f.session(t, f.token) // activity resets the idle clock
	f.advance(29 * time.Minute)
	f.session(t, f.token)
	f.advance(31 * time.Minute)
	if _, err := f.svc.Session(ctx, f.token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("idle session: %v", err)
	}

	_, token := f.signInAgain(t)
	for range 24 { // active every 25 minutes for 10 hours
		f.advance(25 * time.Minute)
		f.session(t, token)
	}
	f.advance(2*time.Hour + time.Minute)
	if _, err := f.svc.Session(ctx, token); err == nil {
		t.Fatal("session outlived the absolute timeout")
	}
}

// signInAgain signs the enrolled admin in with password and code.
func (f *fixture) signInAgain(t *testing.T) (Identity, string) {
	t.Helper()
	ctx := context.Background()
	token, stage, err := f.svc.SignIn(ctx, "root.admin", "admin passphrase 1", testClient)
	if err != nil || stage != StageSecondFactor {
		t.Fatalf("SignIn = %s, %v", stage, err)
	}
	f.advance(30 * time.Second) // a fresh code: the previous step is spent
	token, stage, err = f.svc.VerifySecondFactor(ctx, f.session(t, token), f.code(t, f.secret), testClient)
	if err != nil || stage != StageFull {
		t.Fatalf("VerifySecondFactor = %s, %v", stage, err)
	}
	return f.session(t, token), token
}
