package i18n

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func embedded(t *testing.T) *Catalog {
	t.Helper()
	c, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// placeholdersOf is the set of placeholders of every variant of a message.
func placeholdersOf(m Message) []string {
	var out []string
	for _, v := range m.Variants() {
		for _, p := range Placeholders(v) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestCatalogsAreComplete checks every shipped language against English:
// the same keys both ways, the same placeholders, plural forms where
// English has them, and a text for every key.
func TestCatalogsAreComplete(t *testing.T) {
	c := embedded(t)
	en := c.Lang(Fallback)
	for _, want := range []string{"en", "fr", "es"} {
		if c.Lang(want) == nil {
			t.Errorf("language %s is not shipped", want)
		}
	}
	for _, l := range c.Langs() {
		if l == en {
			continue
		}
		for _, key := range en.Keys() {
			m, ok := l.Message(key)
			if !ok {
				t.Errorf("%s: missing key %q", l.Tag, key)
				continue
			}
			base, _ := en.Message(key)
			if (base.Forms == nil) != (m.Forms == nil) {
				t.Errorf("%s: %q is plural in one catalog and not in the other", l.Tag, key)
			}
			// A form without {count} (English "A patient is waiting") is
			// fine, but no placeholder may appear that English lacks, and
			// every English one must appear in some form.
			if got, want := placeholdersOf(m), placeholdersOf(base); !slices.Equal(got, want) {
				t.Errorf("%s: %q has placeholders %v, English has %v", l.Tag, key, got, want)
			}
			for _, v := range m.Variants() {
				if strings.TrimSpace(v) == "" {
					t.Errorf("%s: %q is empty", l.Tag, key)
				}
			}
			// A single word may be the same ("Consultation", "Type");
			// a sentence the same as English was not translated.
			if slices.Equal(m.Variants(), base.Variants()) && len(strings.Fields(placeholder.ReplaceAllString(base.Variants()[0], ""))) > 1 {
				t.Errorf("%s: %q is the English text %q", l.Tag, key, base.Variants()[0])
			}
		}
		for _, key := range l.Keys() {
			if _, ok := en.Message(key); !ok {
				t.Errorf("%s: key %q is not in English", l.Tag, key)
			}
		}
	}
}

func TestPickFollowsTheChoiceThenTheBrowser(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		name, cookie, accept, want string
	}{
		{"nothing", "", "", "en"},
		{"French browser", "", "fr-FR,fr;q=0.9,en;q=0.8", "fr"},
		{"Mexican Spanish", "", "es-MX", "es"},
		{"Canadian French", "", "fr-CA, en;q=0.5", "fr"},
		{"preference order", "", "de-DE, es;q=0.7, fr;q=0.6", "es"},
		{"q values win over order", "", "fr;q=0.2, es;q=0.9", "es"},
		{"unknown language", "", "de-DE, ja", "en"},
		{"garbage header", "", ";;;q=x,,", "en"},
		{"a broken entry is skipped, not the header", "", "fr-FR;q=0.9;q=0.9, es;q=0.5", "es"},
		{"broken entry then a good one", "", "x-;;, es-MX", "es"},
		{"order of the good entries by weight", "", "zz-@@, fr;q=0.3, es;q=0.8", "es"},
		{"choice beats the browser", "es", "fr-FR", "es"},
		{"unknown choice ignored", "xx", "fr", "fr"},
		{"choice is exact", "FR", "", "en"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.Pick(tc.cookie, tc.accept).Tag; got != tc.want {
				t.Errorf("Pick(%q, %q) = %s, want %s", tc.cookie, tc.accept, got, tc.want)
			}
		})
	}
}

func testCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load(fstest.MapFS{
		"en.json": {Data: []byte(`{"meta.name": "English", "meta.dir": "ltr", "hi": "Hello {name} & co",
			"n": {"one": "{count} file", "other": "{count} files"}, "only.en": "Only in English"}`)},
		"fr.json": {Data: []byte(`{"meta.name": "Français", "meta.dir": "ltr", "hi": "Bonjour {name}",
			"n": {"one": "{count} fichier", "other": "{count} fichiers"}}`)},
		"ar.json": {Data: []byte(`{"meta.name": "العربية", "meta.dir": "rtl", "hi": "مرحبا {name}",
			"n": {"zero": "لا ملفات", "one": "ملف واحد", "two": "ملفان", "few": "{count} ملفات", "many": "{count} ملفًا", "other": "{count} ملف"}}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMessages(t *testing.T) {
	c := testCatalog(t)
	en, fr, ar := c.Lang("en"), c.Lang("fr"), c.Lang("ar")
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"placeholder", fr.T("hi", "name", "Ana"), "Bonjour Ana"},
		{"missing argument stays visible", fr.T("hi"), "Bonjour {name}"},
		{"English one", en.T("n", "count", 1), "1 file"},
		{"English zero is plural", en.T("n", "count", 0), "0 files"},
		{"French zero is singular", fr.T("n", "count", 0), "0 fichier"},
		{"French two", fr.T("n", "count", 2), "2 fichiers"},
		{"Arabic two", ar.T("n", "count", 2), "ملفان"},
		{"Arabic few", ar.T("n", "count", 3), "3 ملفات"},
		{"Arabic many", ar.T("n", "count", 11), "11 ملفًا"},
		{"int64 count", en.T("n", "count", int64(1)), "1 file"},
		{"no count", en.T("n"), "{count} files"},
		{"missing key falls back to English", fr.T("only.en"), "Only in English"},
		{"unknown key comes back", fr.T("no.such.key"), "no.such.key"},
		{"HTML escapes text and arguments", en.HTML("hi", "name", "<b>"), "Hello &lt;b&gt; &amp; co"},
		{"HTML keeps Raw", en.HTML("hi", "name", Raw("<b>x</b>")), "Hello <b>x</b> &amp; co"},
		{"Text by tag", c.Text("fr", "hi", "name", "Léa"), "Bonjour Léa"},
		{"Text of unknown tag is English", c.Text("zz", "hi", "name", "Lea"), "Hello Lea & co"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if ar.Dir != "rtl" || fr.Dir != "ltr" {
		t.Errorf("dir: ar %q, fr %q", ar.Dir, fr.Dir)
	}
	if got := c.Langs()[0].Tag; got != "en" {
		t.Errorf("first language %s, want the fallback", got)
	}
	if got := fr.Messages("only."); got["only.en"].Text != "Only in English" {
		t.Errorf("Messages falls back to English: %v", got)
	}
}

func TestLoadRefusesBrokenCatalogs(t *testing.T) {
	en := `{"meta.name": "English", "meta.dir": "ltr"}`
	tests := map[string]fstest.MapFS{
		"no English":           {"fr.json": {Data: []byte(`{"meta.name": "Français", "meta.dir": "ltr"}`)}},
		"not JSON":             {"en.json": {Data: []byte(en)}, "fr.json": {Data: []byte(`{`)}},
		"bad direction":        {"en.json": {Data: []byte(`{"meta.name": "English", "meta.dir": "up"}`)}},
		"no name":              {"en.json": {Data: []byte(`{"meta.dir": "ltr"}`)}},
		"unknown plural form":  {"en.json": {Data: []byte(`{"meta.name": "E", "meta.dir": "ltr", "x": {"one": "a", "lots": "b", "other": "c"}}`)}},
		"plural without other": {"en.json": {Data: []byte(`{"meta.name": "E", "meta.dir": "ltr", "x": {"one": "a"}}`)}},
		"file name not a tag":  {"en.json": {Data: []byte(en)}, "not a tag!.json": {Data: []byte(en)}},
		"number as message":    {"en.json": {Data: []byte(`{"meta.name": "E", "meta.dir": "ltr", "x": 3}`)}},
	}
	for name, fsys := range tests {
		if _, err := Load(fsys); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

// FuzzPick feeds the header and cookie a browser controls: any input picks
// a shipped language.
func FuzzPick(f *testing.F) {
	c, err := Embedded()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("", "fr-FR,fr;q=0.9")
	f.Add("es", "*")
	f.Add("\x00", "en-US;q=0.5, zh-Hant-TW;q=1.0, i-klingon")
	f.Fuzz(func(t *testing.T, cookie, accept string) {
		l := c.Pick(cookie, accept)
		if l == nil || c.Lang(l.Tag) != l {
			t.Fatalf("Pick(%q, %q) = %v", cookie, accept, l)
		}
	})
}

// BenchmarkPick is the cost every page pays to choose its language from a
// typical browser header.
func BenchmarkPick(b *testing.B) {
	c, err := Embedded()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if c.Pick("", "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5").Tag != "fr" {
			b.Fatal("not French")
		}
	}
}

// BenchmarkT is one message with a placeholder and a plural.
func BenchmarkT(b *testing.B) {
	c, err := Embedded()
	if err != nil {
		b.Fatal(err)
	}
	fr := c.Lang("fr")
	for b.Loop() {
		_ = fr.T("audit.caption", "count", 3, "limit", 200)
	}
}
