package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
)

func TestMintCredentialIsCoturnsRESTFormat(t *testing.T) {
	now := time.Unix(1700000000, 0)
	tests := []struct {
		id, wantUser, wantPass string
	}{
		// Reference: printf '1700003600:g_1' | openssl dgst -sha1 -hmac secret -binary | base64
		{"g_1", "1700003600:g_1", "ihwc9gSCxNnEz+Asj51MJmW5u+Q="},
		{"", "1700003600", RESTPassword([]byte("secret"), "1700003600")},
		{"a:b", "1700003600:a:b", RESTPassword([]byte("secret"), "1700003600:a:b")},
	}
	for _, tt := range tests {
		user, pass := MintCredential([]byte("secret"), tt.id, time.Hour, now)
		if user != tt.wantUser || pass != tt.wantPass {
			t.Errorf("MintCredential(%q) = %q, %q; want %q, %q", tt.id, user, pass, tt.wantUser, tt.wantPass)
		}
		exp, id, err := ParseRESTUsername(user)
		if err != nil || !exp.Equal(now.Add(time.Hour)) || id != tt.id {
			t.Errorf("ParseRESTUsername(%q) = %v, %q, %v", user, exp, id, err)
		}
	}
}

func TestParseRESTUsernameRefusesMalformed(t *testing.T) {
	for _, bad := range []string{"", "alice", ":id", "-5:x", "+5:x", "0:x", "1e9:x", " 1700000000", "1700000000 :x",
		"9999999999999:x", "1700000000" + strings.Repeat("x", 600)} {
		if _, _, err := ParseRESTUsername(bad); !errors.Is(err, ErrMalformedUsername) {
			t.Errorf("ParseRESTUsername(%q) = %v, want ErrMalformedUsername", bad, err)
		}
	}
}

func FuzzParseRESTUsername(f *testing.F) {
	for _, s := range []string{"1700000000:g_1", "1700000000", "1:a:b", ":", "abc:def", "000000000001:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, id, err := ParseRESTUsername(s)
		if err != nil {
			return
		}
		ts, _, hasID := strings.Cut(s, ":")
		if exp.Unix() <= 0 || len(s) > maxUsernameLen || strings.Trim(ts, "0123456789") != "" {
			t.Fatalf("ParseRESTUsername(%q) accepted expiry %v", s, exp)
		}
		if hasID && ts+":"+id != s || !hasID && id != "" {
			t.Fatalf("ParseRESTUsername(%q) returned id %q", s, id)
		}
	})
}

// signed builds a request carrying MESSAGE-INTEGRITY under user's password.
func signed(t testing.TB, method stun.Method, user, realm, pass string, attrs ...stun.Setter) *stun.Message {
	t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
	setters = append(setters, stun.NewUsername(user), stun.NewRealm(realm), stun.NewNonce("nonce"),
		stun.NewLongTermIntegrity(user, realm, pass), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCredentialsAcceptEverySecret(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, b := []byte("secret-number-one"), []byte("secret-number-two")
	c, err := newCredentials(testRealm, [][]byte{a, b}, map[string]string{"kiosk": "a-long-kiosk-password"})
	if err != nil {
		t.Fatal(err)
	}
	for i, secret := range [][]byte{a, b} {
		user, pass := MintCredential(secret, "g_1", time.Hour, now)
		key, ok := c.verify(signed(t, stun.MethodAllocate, user, testRealm, pass), now)
		if !ok {
			t.Fatalf("a credential of secret %d did not verify", i)
		}
		// What pion's AuthHandler gets afterwards is the same key.
		if got := c.key(user, testRealm); string(got) != string(key) || string(key) != string(turn.GenerateAuthKey(user, testRealm, pass)) {
			t.Fatalf("secret %d: the AuthHandler key differs from the verified one", i)
		}
	}
	if _, ok := c.verify(signed(t, stun.MethodAllocate, "kiosk", testRealm, "a-long-kiosk-password"), now); !ok {
		t.Fatal("the static user did not verify")
	}
	user, _ := MintCredential(a, "g_1", time.Hour, now)
	if _, ok := c.verify(signed(t, stun.MethodAllocate, user, testRealm, "wrong"), now); ok {
		t.Fatal("a wrong password verified")
	}

	checks := []struct {
		name, user, realm string
		at                time.Time
		reason            string
	}{
		{"valid", user, testRealm, now, ""},
		{"at expiry", user, testRealm, now.Add(time.Hour), reasonExpired},
		{"after expiry", user, testRealm, now.Add(2 * time.Hour), reasonExpired},
		{"malformed", "alice", testRealm, now, reasonMalformed},
		{"other realm", user, "elsewhere", now, reasonRealm},
		{"static", "kiosk", testRealm, now, ""},
	}
	for _, tt := range checks {
		if got := c.check(tt.user, tt.realm, tt.at); got != tt.reason {
			t.Errorf("%s: check = %q, want %q", tt.name, got, tt.reason)
		}
	}
	staticOnly, _ := newCredentials(testRealm, nil, map[string]string{"kiosk": "a-long-kiosk-password"})
	if got := staticOnly.check(user, testRealm, now); got != reasonUnknownUser {
		t.Errorf("REST username without secrets: %q, want %q", got, reasonUnknownUser)
	}
}

func TestMatchedSecretsStayBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c, _ := newCredentials(testRealm, [][]byte{[]byte("one"), []byte("two")}, nil)
	for i := range maxMatched + 10 {
		exp := now.Add(time.Hour)
		if i%2 == 0 {
			exp = now.Add(-time.Hour) // expired ones go first
		}
		c.remember(fmt.Sprintf("%d:g_%d", exp.Unix(), i), 1, now)
	}
	if n := len(c.matched); n > maxMatched {
		t.Fatalf("%d remembered usernames, bound %d", n, maxMatched)
	}
}
