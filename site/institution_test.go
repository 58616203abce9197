package site

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/obs"
)

func TestParseLogoAcceptsRasterPicturesOnly(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	cases := []struct {
		name string
		data []byte
		want string // content type, "" for refused
	}{
		{"png", png, "image/png"},
		{"jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), "image/jpeg"},
		{"gif", []byte("GIF89a\x01\x00"), "image/gif"},
		{"webp", []byte("RIFF\x10\x00\x00\x00WEBPVP8 "), "image/webp"},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), ""},
		{"svg with xml prolog", []byte(`<?xml version="1.0"?><svg/>`), ""},
		{"html", []byte(`<!doctype html><script>alert(1)</script>`), ""},
		{"webp marker without riff", []byte("XXXX\x10\x00\x00\x00WEBP"), ""},
		{"empty", nil, ""},
		{"too large png", append(append([]byte{}, png...), make([]byte, MaxLogoBytes)...), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := ParseLogo(c.data)
			if c.want == "" {
				if err == nil {
					t.Fatalf("accepted as %s", l.ContentType)
				}
				return
			}
			if err != nil || l.ContentType != c.want {
				t.Fatalf("ParseLogo = %q, %v; want %s", l.ContentType, err, c.want)
			}
		})
	}
	if _, err := ParseLogo([]byte("<svg/>")); !errors.Is(err, ErrLogoFormat) {
		t.Fatalf("svg: %v", err)
	}
}

func FuzzParseLogo(f *testing.F) {
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBP"))
	f.Add([]byte("<svg/>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLogo(data)
		if err != nil {
			return
		}
		if !strings.HasPrefix(l.ContentType, "image/") || l.ContentType == "image/svg+xml" || !bytes.Equal(l.Data, data) {
			t.Fatalf("accepted %q as %q", data, l.ContentType)
		}
	})
}

// TestInstitutionHeadsThePatientPages: the name and the logo show on the
// join page; the logo is served with its own type, and none is served
// when none is configured.
func TestInstitutionHeadsThePatientPages(t *testing.T) {
	logo, err := ParseLogo([]byte("\x89PNG\r\n\x1a\nrest"))
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range []Institution{{Name: "Clinique <du> Lac", Logo: logo}, {}} {
		w := newWorld(t, sitePublic)
		log := slog.New(slog.DiscardHandler)
		opt := w.site.opt
		opt.Institution = inst
		opt.Metrics = obs.NewHTTPMetrics(obs.NewRegistry(), "site")
		opt.Health = obs.NewHealth(log, time.Second)
		s, err := New(opt)
		if err != nil {
			t.Fatal(err)
		}
		h := s.Handler()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/j/"+linkLive, nil))
		body := rec.Body.String()
		wantName := "Clinique &lt;du&gt; Lac"
		if inst.Name == "" {
			wantName = "OpenConsult"
		}
		if rec.Code != http.StatusOK || !strings.Contains(body, `<span id="institution">`+wantName+`</span>`) {
			t.Fatalf("join page %d lacks the institution %q:\n%s", rec.Code, wantName, body)
		}
		if hasLogo := strings.Contains(body, `src="/institution-logo"`); hasLogo != (len(inst.Logo.Data) > 0) {
			t.Fatalf("logo shown: %v", hasLogo)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/institution-logo", nil))
		if len(inst.Logo.Data) == 0 {
			if rec.Code != http.StatusNotFound {
				t.Fatalf("no logo configured: %d", rec.Code)
			}
			continue
		}
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/png" || rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Body.String() != string(logo.Data) {
			t.Fatalf("logo: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}
