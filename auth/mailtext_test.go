package auth

import (
	"context"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// outboxMessage reads the one message in the outbox, its subject decoded.
func (f *fixture) outboxMessage(t *testing.T) (subject, body string) {
	t.Helper()
	entries, err := os.ReadDir(f.outbox)
	if err != nil || len(entries) != 1 {
		t.Fatalf("outbox holds %d messages: %v", len(entries), err)
	}
	path := filepath.Join(f.outbox, entries[0].Name())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	head, body, _ := strings.Cut(string(b), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(line, "Subject: "); ok {
			subject, err = new(mime.WordDecoder).DecodeHeader(v)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return subject, strings.ReplaceAll(body, "\r\n", "\n")
}

// TestMailIsWrittenInTheRequesterLanguage: the reset message is in the
// language of the page that asked for it, the activation message in the
// administrator's, and an unknown language gives English.
func TestMailIsWrittenInTheRequesterLanguage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the first passphrase")
	os.RemoveAll(f.outbox)
	tests := []struct {
		lang, subject, body string
	}{
		{"fr", "Réinitialisez votre mot de passe", "dans les 30 minutes"},
		{"es", "Restablezca su contraseña", "en un plazo de 30 minutos"},
		{"en", "Reset your", "within 30 minutes"},
		{"tlh", "Reset your", "within 30 minutes"},
	}
	for _, tc := range tests {
		c := testClient
		c.Lang = tc.lang
		if err := f.svc.RequestReset(ctx, "dr.who", c); err != nil {
			t.Fatal(err)
		}
		subject, body := f.outboxMessage(t)
		if !strings.HasPrefix(subject, tc.subject) || !strings.Contains(body, tc.body) || !strings.Contains(body, "dr.who") || !strings.Contains(body, "/reset/") {
			t.Errorf("%s: subject %q\n%s", tc.lang, subject, body)
		}
	}

	c := testClient
	c.Lang = "es"
	if _, err := f.svc.CreateUser(ctx, f.admin, "dra.garcia", "clinician", "dra.garcia@example.org", c); err != nil {
		t.Fatal(err)
	}
	subject, body := f.outboxMessage(t)
	if !strings.HasPrefix(subject, "Active su cuenta") || !strings.Contains(body, "nombre de usuario dra.garcia") || !strings.Contains(body, "/activate/") {
		t.Errorf("activation in Spanish: subject %q\n%s", subject, body)
	}
}
