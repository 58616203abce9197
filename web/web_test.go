package web

import (
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/web/i18n"
)

// keyUses finds catalog keys named as string literals: t "key" and th "key"
// in templates, t("key") and tNodes("key") in scripts, and "key" literals
// of the catalog's shape in Go code.
var keyUses = map[string]*regexp.Regexp{
	"template": regexp.MustCompile(`\b(?:t|th) "([a-z][a-z0-9.]*)"`),
	"script":   regexp.MustCompile(`\b(?:t|tNodes)\(\s*"([a-z][a-z0-9.]*)"`),
	"go":       regexp.MustCompile(`"((?:err|doc|record|policy|mail|users|passkeys|password|signin|code|link|join|reset|enroll|audit|account)\.[a-z0-9.]+)"`),
}

// notKeys are Go literals of a key's shape that name audit event types.
var notKeys = []string{"password.changed", "password.reset"}

// dynamicPrefixes are keys built at run time: by a template
// ({{t (print "label." .Label)}}) or a script (`js.call.quality.${level}`).
var dynamicPrefixes = []string{"meta.", "label.", "role.", "audit.outcome.", "js.call.quality.", "js.passkeys."}

// sources returns the text of the templates and scripts, and of the Go code
// of the packages that name keys (site, auth).
func sources(t *testing.T) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{"template": {}, "script": {}, "go": {}}
	read := func(kind string, fsys fs.FS, pattern string) {
		names, err := fs.Glob(fsys, pattern)
		if err != nil || len(names) == 0 {
			t.Fatalf("no %s files (%s): %v", kind, pattern, err)
		}
		for _, n := range names {
			b, err := fs.ReadFile(fsys, n)
			if err != nil {
				t.Fatal(err)
			}
			out[kind][n] = string(b)
		}
	}
	read("template", templateFiles, "templates/*.html")
	read("script", staticFiles, "static/*.js")
	for _, dir := range []string{"../site", "../auth"} {
		fsys := os.DirFS(dir)
		names, _ := fs.Glob(fsys, "*.go")
		for _, n := range names {
			if strings.HasSuffix(n, "_test.go") {
				continue
			}
			b, err := fs.ReadFile(fsys, n)
			if err != nil {
				t.Fatal(err)
			}
			out["go"][filepath.Join(dir, n)] = string(b)
		}
	}
	return out
}

// TestEveryKeyUsedExistsAndEveryKeyIsUsed ties the catalog to the code: a
// key the code names is in English (so a typo cannot show a raw key), and
// a key of the catalog is named somewhere (so translators do no dead work).
func TestEveryKeyUsedExistsAndEveryKeyIsUsed(t *testing.T) {
	c, err := i18n.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	en := c.Lang(i18n.Fallback)
	used := map[string]bool{}
	for kind, files := range sources(t) {
		for name, text := range files {
			for _, m := range keyUses[kind].FindAllStringSubmatch(text, -1) {
				key := m[1]
				if kind == "go" && slices.Contains(notKeys, key) {
					continue
				}
				used[key] = true
				if _, ok := en.Message(key); !ok {
					t.Errorf("%s names %q, which the catalog lacks", name, key)
				}
			}
		}
	}
	for _, key := range en.Keys() {
		dynamic := slices.ContainsFunc(dynamicPrefixes, func(p string) bool { return strings.HasPrefix(key, p) })
		if !used[key] && !dynamic {
			t.Errorf("catalog key %q is used nowhere", key)
		}
	}
	for _, label := range []string{"patient", "interpreter", "family", "clinician", "guest"} {
		if _, ok := en.Message("label." + label); !ok {
			t.Errorf("no message for the link label %q", label)
		}
	}
}

var (
	actions   = regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	scripts   = regexp.MustCompile(`(?s)<script[^>]*>.*?</script>|<svg.*?</svg>|<code[^>]*>.*?</code>`)
	tags      = regexp.MustCompile(`(?s)<[^>]*>`)
	words     = regexp.MustCompile(`\p{L}{2,}`)
	textAttrs = regexp.MustCompile(`\b(?:aria-label|placeholder|alt|title)="([^"]*)"`)
)

// allowedWords may stand outside the catalog: the product's name.
var allowedWords = []string{"OpenConsult"}

// TestTemplatesHaveNoUntranslatedText fails on a word written into a
// template's text or into a text attribute instead of coming from the
// catalog.
func TestTemplatesHaveNoUntranslatedText(t *testing.T) {
	for name, text := range sources(t)["template"] {
		for _, m := range textAttrs.FindAllStringSubmatch(text, -1) {
			if w := words.FindString(actions.ReplaceAllString(m[1], "")); w != "" && !slices.Contains(allowedWords, w) {
				t.Errorf("%s: attribute %q has the untranslated word %q", name, m[0], w)
			}
		}
		body := tags.ReplaceAllString(scripts.ReplaceAllString(actions.ReplaceAllString(text, ""), ""), " ")
		for _, w := range words.FindAllString(body, -1) {
			if !slices.Contains(allowedWords, w) {
				t.Errorf("%s: untranslated text %q", name, w)
			}
		}
	}
}

// TestTemplatesParseInEveryLanguage parses the pages with each language's
// functions, as the site does.
func TestTemplatesParseInEveryLanguage(t *testing.T) {
	c, err := i18n.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range c.Langs() {
		pages, err := Templates(template.FuncMap{"t": l.T, "th": l.T, "timeEl": l.T, "sizeEl": l.T, "link": l.T, "strong": l.T, "code": l.T, "fileLink": l.T})
		if err != nil {
			t.Fatalf("%s: %v", l.Tag, err)
		}
		if len(pages) < 20 {
			t.Errorf("%s: %d pages", l.Tag, len(pages))
		}
	}
}
