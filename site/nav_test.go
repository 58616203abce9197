package site

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestStaffHeaderShowsOnlyTheRolesPages: every fully signed-in page has the
// header navigation with the pages the role may open, the current one
// marked, and sign-out; pages outside a session have none.
func TestStaffHeaderShowsOnlyTheRolesPages(t *testing.T) {
	w := newWorld(t, sitePublic)
	cases := []struct {
		name, session, path string
		links               []string // hrefs in the header, in order
		current             string
	}{
		{"clinician dashboard", sessAlice, "/consults", []string{"/consults", "/account"}, "/consults"},
		{"clinician account", sessAlice, "/account", []string{"/consults", "/account"}, "/account"},
		{"clinician record", sessAlice, "/consults/" + consultLive + "/record", []string{"/consults", "/account"}, "/consults"},
		{"admin users", sessAdmin, "/admin/users", []string{"/admin/users", "/admin/audit", "/account"}, "/admin/users"},
		{"admin audit", sessAdmin, "/admin/audit", []string{"/admin/users", "/admin/audit", "/account"}, "/admin/audit"},
		{"second factor stage", sessAliceCode, "/signin/code", nil, ""},
		{"visitor", "", "/signin", nil, ""},
		{"patient join page", "", "/j/" + linkLive, nil, ""},
	}
	link := regexp.MustCompile(`<li><a href="([^"]+)"( aria-current="page")?>`)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", c.path, nil)
			if c.session != "" {
				r.AddCookie(&http.Cookie{Name: sessionCookie, Value: c.session})
			}
			rec := httptest.NewRecorder()
			w.handler.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d", c.path, rec.Code)
			}
			body := rec.Body.String()
			header, _, _ := strings.Cut(body, "</header>")
			var got []string
			current := ""
			for _, m := range link.FindAllStringSubmatch(header, -1) {
				got = append(got, m[1])
				if m[2] != "" {
					current = m[1]
				}
			}
			if strings.Join(got, " ") != strings.Join(c.links, " ") || current != c.current {
				t.Fatalf("header links %v current %q, want %v current %q\n%s", got, current, c.links, c.current, header)
			}
			if hasSignout := strings.Contains(header, `action="/signout"`); hasSignout != (c.links != nil) {
				t.Fatalf("sign-out in the header: %v\n%s", hasSignout, header)
			}
		})
	}
}

func TestFaviconIsServed(t *testing.T) {
	w := newWorld(t, sitePublic)
	for _, path := range []string{"/favicon.ico", "/static/favicon.svg"} {
		rec := httptest.NewRecorder()
		w.handler.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/svg+xml" || !strings.Contains(rec.Body.String(), "<svg") {
			t.Fatalf("GET %s = %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}
