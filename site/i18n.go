package site

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/web"
	"github.com/openconsult/openconsult/web/i18n"
)

// langCookie remembers the language chosen with the chooser, for a year.
const (
	langCookie    = "__Host-oc_lang"
	langCookieAge = 365 * 24 * time.Hour
)

// langPages are the page templates of one language, with the language's
// catalog bound to their functions, and its scripts' messages as JSON.
type langPages struct {
	pages  map[string]*template.Template
	script template.JS
}

// layoutData is what the layout renders around a page's own data.
type layoutData struct {
	Page   any
	Lang   *i18n.Lang
	Langs  []*i18n.Lang
	Here   string      // the request's path and query, where the chooser comes back
	Script template.JS // the messages of the page's scripts (keys js.*)
	Nav    []navLink   // the staff header's links; none outside a session
	// Institution and Logo head the page: the institution's name ("" for
	// the platform's) and whether it has a logo.
	Institution string
	Logo        bool
}

// buildPages parses the templates once per language of the catalog.
func buildPages(catalog *i18n.Catalog) (map[string]langPages, error) {
	out := map[string]langPages{}
	for _, l := range catalog.Langs() {
		pages, err := web.Templates(pageFuncs(l))
		if err != nil {
			return nil, err
		}
		js, err := json.Marshal(l.Messages("js."))
		if err != nil {
			return nil, err
		}
		// json.Marshal escapes <, > and &, so the JSON cannot end its script element.
		out[l.Tag] = langPages{pages: pages, script: template.JS(js)}
	}
	return out, nil
}

// pageFuncs are the template functions of a page in language l:
//
//	t key [name value]…        the message, escaped by the template
//	th key [name value]…       the message as HTML; template.HTML arguments stay markup
//	timeEl time format         a <time> the browser shows in the reader's locale and zone
//	sizeEl bytes text          a <data> the browser shows as kB or MB in the page's language
//	link href text, strong text, code text, fileLink consult file name: markup for th
func pageFuncs(l *i18n.Lang) template.FuncMap {
	return template.FuncMap{
		"t": l.T,
		"th": func(key string, args ...any) template.HTML {
			for i, a := range args {
				if h, ok := a.(template.HTML); ok {
					args[i] = i18n.Raw(h)
				}
			}
			return template.HTML(l.HTML(key, args...))
		},
		"timeEl": timeElement,
		"sizeEl": func(n int64, text string) template.HTML {
			return template.HTML(fmt.Sprintf(`<data value="%d" data-format="size">%s</data>`, n, html.EscapeString(text)))
		},
		"link": func(href, text string) template.HTML {
			return template.HTML(`<a href="` + html.EscapeString(href) + `">` + html.EscapeString(text) + `</a>`)
		},
		"strong": func(text string) template.HTML {
			return template.HTML("<strong>" + html.EscapeString(text) + "</strong>")
		},
		"code": func(text string) template.HTML {
			return template.HTML("<code>" + html.EscapeString(text) + "</code>")
		},
		"fileLink": func(consultID, fileID, name string) template.HTML {
			href := "/consults/" + url.PathEscape(consultID) + "/files/" + url.PathEscape(fileID)
			return template.HTML(`<a href="` + html.EscapeString(href) + `">` + html.EscapeString(name) + `</a>`)
		},
	}
}

// timeFormats are the ways a page shows a time; the browser formats each
// in the page's language and the reader's time zone (web/static/i18n.js).
// The text inside is UTC, for a browser without scripts.
var timeFormats = map[string]string{
	"time":     "15:04 UTC",
	"date":     "2006-01-02",
	"datetime": "2006-01-02 15:04 UTC",
	"seconds":  "2006-01-02 15:04:05 UTC",
}

func timeElement(t time.Time, format string) (template.HTML, error) {
	layout, ok := timeFormats[format]
	if !ok {
		return "", fmt.Errorf("unknown time format %q", format)
	}
	u := t.UTC()
	return template.HTML(`<time datetime="` + u.Format(time.RFC3339) + `" data-format="` + format + `">` +
		u.Format(layout) + `</time>`), nil
}

// lang is the language of a request: the one chosen with the chooser, else
// the browser's preference, else the default.
func (s *Site) lang(r *http.Request) *i18n.Lang {
	chosen := ""
	if c, err := r.Cookie(langCookie); err == nil {
		chosen = c.Value
	}
	return s.catalog.Pick(chosen, r.Header.Get("Accept-Language"))
}

// text is the message of key in the request's language.
func (s *Site) text(r *http.Request, key string, args ...any) string {
	return s.lang(r).T(key, args...)
}

// policyText says why a form was refused, in the request's language.
func (s *Site) policyText(r *http.Request, e *auth.PolicyError) string {
	if e.Key == "" {
		return e.Reason
	}
	return s.text(r, e.Key, e.Args...)
}

// chooseLanguage remembers the language picked in the chooser and goes
// back to the page it was picked on. It works without scripts. A page that
// answered a form (POST /admin/users/…/disable) has no address to go back
// to; routes tells, and the chooser goes to the home page instead.
func (s *Site) chooseLanguage(routes *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.readForm(w, r) {
			return
		}
		if l := s.catalog.Lang(r.PostForm.Get("lang")); l != nil {
			http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l.Tag, Path: "/", MaxAge: int(langCookieAge.Seconds()),
				Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		back := localPath(r.PostForm.Get("back"))
		if u, err := url.Parse(back); err != nil || !isPage(routes, r, u) {
			back = "/"
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

// isPage reports whether GET u reaches a route of its own (not the
// catch-all "not found", not "method not allowed").
func isPage(routes *http.ServeMux, r *http.Request, u *url.URL) bool {
	probe := (&http.Request{Method: http.MethodGet, URL: u, Host: r.Host, Header: http.Header{}}).WithContext(r.Context())
	_, pattern := routes.Handler(probe)
	return pattern != "" && pattern != "/"
}

// chooserBack is where the language chooser of r's page comes back to: the
// page itself, except after single sign-on, whose callback address carries
// a spent authorization code; that goes back to the sign-in page.
func chooserBack(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/signin/sso/") {
		return "/signin"
	}
	return r.URL.RequestURI()
}

// localPath returns back when it is a path of this site, else "/": the
// chooser must not become an open redirect.
func localPath(back string) string {
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.ContainsAny(back, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(back)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return u.RequestURI()
}

// mailClient is client(r) with the request's language, for an action that
// sends e-mail: the message is written in the language of the page.
func (s *Site) mailClient(r *http.Request) auth.Client {
	c := client(r)
	c.Lang = s.lang(r).Tag
	return c
}

// noticeText is the message of key, or nothing without a key.
func (s *Site) noticeText(r *http.Request, key string) string {
	if key == "" {
		return ""
	}
	return s.text(r, key)
}
