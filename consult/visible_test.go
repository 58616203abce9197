package consult

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestInvisibleFormattingCharactersAreRefused(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	v, err := s.Create(ctx, "u_doc", "", false)
	if err != nil {
		t.Fatal(err)
	}
	pdf := []byte("%PDF-1.7\n" + strings.Repeat("x", 100))
	fields := []struct {
		field string
		check func(string) error
	}{
		{"name", func(text string) error { _, err := CleanName(text); return err }},
		{"title", func(text string) error { _, err := s.Create(ctx, "u_doc", text, false); return err }},
		{"file name", func(text string) error {
			_, err := s.ShareDocument(ctx, v.ID, "g_pat", "Pat", text+".pdf", bytes.NewReader(pdf))
			return err
		}},
	}
	texts := []struct {
		name, text string
		ok         bool
	}{
		{"right-to-left override", "Pat\u202Efdp.exe", false},
		{"left-to-right embedding", "\u202APat", false},
		{"pop directional formatting", "Pat\u202C", false},
		{"right-to-left isolate", "Pat \u2067x\u2069", false},
		{"first strong isolate", "\u2068Pat", false},
		{"left-to-right mark", "Pat\u200E", false},
		{"right-to-left mark", "Pat\u200F", false},
		{"zero-width space", "Pa\u200Bt", false},
		{"byte order mark", "\uFEFFPat", false},
		{"Hebrew", "שרה כהן", true},
		{"Arabic", "فاطمة", true},
		{"Persian with zero-width non-joiner", "می\u200Cخواهم", true},
		{"emoji sequence with zero-width joiner", "Pat 👩\u200D⚕️", true},
	}
	for _, f := range fields {
		for _, tt := range texts {
			t.Run(f.field+"/"+tt.name, func(t *testing.T) {
				err := f.check(tt.text)
				if tt.ok {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				var inv *InvisibleError
				if !errors.As(err, &inv) || !errors.Is(err, ErrBadInput) {
					t.Fatalf("error = %v, want an InvisibleError that is ErrBadInput", err)
				}
				if !strings.Contains(err.Error(), "the "+f.field+" contains invisible formatting characters") {
					t.Fatalf("message %q does not say what is wrong with the %s", err, f.field)
				}
			})
		}
	}
}
