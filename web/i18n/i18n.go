// Package i18n holds the platform's message catalogs, one JSON file per
// language (en.json, fr.json, es.json, …), and picks the language of a
// request. Adding a language is adding one file: its name is the language's
// BCP 47 tag, its keys are those of en.json.
//
// A message is a string with named placeholders ("Hello {name}") or, where
// the wording depends on a number, an object of CLDR plural forms chosen by
// the "count" argument: {"one": "{count} person", "other": "{count} people"}.
// The keys "meta.name" (the language's own name) and "meta.dir" ("ltr" or
// "rtl") describe the language itself.
package i18n

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
)

//go:embed *.json
var files embed.FS

// Fallback is the language of the catalog every other is checked against,
// and the one used when nothing else matches.
const Fallback = "en"

// Message is one catalog entry: Text, or plural Forms by CLDR category
// ("zero", "one", "two", "few", "many", "other").
type Message struct {
	Text  string
	Forms map[string]string
}

// UnmarshalJSON reads a string or an object of plural forms.
func (m *Message) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &m.Text)
	}
	if err := json.Unmarshal(b, &m.Forms); err != nil {
		return errors.New("a message is a string or an object of plural forms")
	}
	for form := range m.Forms {
		if !slices.Contains(pluralForms, form) {
			return fmt.Errorf("unknown plural form %q", form)
		}
	}
	if _, ok := m.Forms["other"]; !ok {
		return errors.New(`plural forms need "other"`)
	}
	return nil
}

// MarshalJSON writes the message as it was read, for the browser's copy.
func (m Message) MarshalJSON() ([]byte, error) {
	if m.Forms != nil {
		return json.Marshal(m.Forms)
	}
	return json.Marshal(m.Text)
}

var pluralForms = []string{"zero", "one", "two", "few", "many", "other"}

// Variants are the texts of a message: its one text or each plural form.
func (m Message) Variants() []string {
	if m.Forms == nil {
		return []string{m.Text}
	}
	var out []string
	for _, f := range pluralForms {
		if v, ok := m.Forms[f]; ok {
			out = append(out, v)
		}
	}
	return out
}

// Lang is one language's catalog.
type Lang struct {
	Tag  string // BCP 47, as the file is named: "fr", "pt-BR"
	Name string // the language's own name, shown in the chooser
	Dir  string // "ltr" or "rtl"
	tag  language.Tag
	msgs map[string]Message
	base *Lang // the fallback catalog for a key this one lacks; nil for it
}

// Messages returns the entries whose key starts with prefix, those this
// catalog lacks taken from the fallback.
func (l *Lang) Messages(prefix string) map[string]Message {
	out := map[string]Message{}
	if l.base != nil {
		maps.Copy(out, l.base.Messages(prefix))
	}
	for k, m := range l.msgs {
		if strings.HasPrefix(k, prefix) {
			out[k] = m
		}
	}
	return out
}

// Keys lists the catalog's keys, sorted.
func (l *Lang) Keys() []string {
	keys := make([]string, 0, len(l.msgs))
	for k := range l.msgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Message returns the entry of key in this catalog only.
func (l *Lang) Message(key string) (Message, bool) {
	m, ok := l.msgs[key]
	return m, ok
}

// T returns the message of key with its placeholders filled from args,
// given as name, value pairs: T("chat.unread", "count", 3). A plural
// message picks its form by the "count" argument. A key this catalog lacks
// comes from the fallback catalog; a key no catalog has comes back as is,
// which a test catches.
func (l *Lang) T(key string, args ...any) string {
	return fill(l.text(key, args), args, nil)
}

// Raw is an argument that HTML inserts as it is: markup already escaped.
type Raw string

// HTML is T for an HTML page: the message's text and its arguments are
// escaped, except arguments of type Raw.
func (l *Lang) HTML(key string, args ...any) string {
	return fill(l.text(key, args), args, html.EscapeString)
}

// text is the message of key in the form args call for.
func (l *Lang) text(key string, args []any) string {
	m, ok := l.msgs[key]
	if !ok {
		if l.base != nil {
			return l.base.text(key, args)
		}
		return key
	}
	if m.Forms == nil {
		return m.Text
	}
	if text := m.Forms[l.pluralForm(args)]; text != "" {
		return text
	}
	return m.Forms["other"]
}

// pluralForm is the CLDR category of the "count" argument in this language.
func (l *Lang) pluralForm(args []any) string {
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] != "count" {
			continue
		}
		n, ok := asInt(args[i+1])
		if !ok {
			return "other"
		}
		if n < 0 {
			n = -n
		}
		switch plural.Cardinal.MatchPlural(l.tag, n, 0, 0, 0, 0) {
		case plural.Zero:
			return "zero"
		case plural.One:
			return "one"
		case plural.Two:
			return "two"
		case plural.Few:
			return "few"
		case plural.Many:
			return "many"
		}
	}
	return "other"
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case int32:
		return int(n), true
	case uint:
		return int(n), true
	case uint64:
		return int(n), true
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

var placeholder = regexp.MustCompile(`\{([a-z][a-z0-9_]*)\}`)

// fill replaces the placeholders of text by their arguments; escape, when
// not nil, applies to the text around them and to every argument but a Raw.
func fill(text string, args []any, escape func(string) string) string {
	if escape == nil {
		escape = func(s string) string { return s }
	}
	var b strings.Builder
	last := 0
	for _, loc := range placeholder.FindAllStringSubmatchIndex(text, -1) {
		b.WriteString(escape(text[last:loc[0]]))
		last = loc[1]
		name, found := text[loc[2]:loc[3]], false
		for i := 0; i+1 < len(args); i += 2 {
			if args[i] != name {
				continue
			}
			found = true
			if raw, ok := args[i+1].(Raw); ok {
				b.WriteString(string(raw))
			} else {
				b.WriteString(escape(fmt.Sprint(args[i+1])))
			}
			break
		}
		if !found {
			b.WriteString(escape(text[loc[0]:loc[1]]))
		}
	}
	b.WriteString(escape(text[last:]))
	return b.String()
}

// Placeholders lists the names of the placeholders in text, sorted, each once.
func Placeholders(text string) []string {
	var out []string
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// Catalog is every language the platform speaks.
type Catalog struct {
	langs   []*Lang // the fallback first, then by tag
	byTag   map[string]*Lang
	matcher language.Matcher
}

// Embedded returns the catalogs shipped with the platform.
func Embedded() (*Catalog, error) { return Load(files) }

// Load reads every *.json of fsys as one language's catalog.
func Load(fsys fs.FS) (*Catalog, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	c := &Catalog{byTag: map[string]*Lang{}}
	for _, name := range names {
		l, err := loadLang(fsys, name)
		if err != nil {
			return nil, err
		}
		c.byTag[l.Tag] = l
		c.langs = append(c.langs, l)
	}
	base := c.byTag[Fallback]
	if base == nil {
		return nil, fmt.Errorf("catalog: no %s.json", Fallback)
	}
	slices.SortFunc(c.langs, func(a, b *Lang) int {
		switch {
		case a == base:
			return -1
		case b == base:
			return 1
		}
		return strings.Compare(a.Tag, b.Tag)
	})
	tags := make([]language.Tag, len(c.langs))
	for i, l := range c.langs {
		tags[i] = l.tag
		if l != base {
			l.base = base
		}
	}
	c.matcher = language.NewMatcher(tags)
	return c, nil
}

func loadLang(fsys fs.FS, name string) (*Lang, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	code := strings.TrimSuffix(path.Base(name), ".json")
	tag, err := language.Parse(code)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: the file name is not a language tag: %w", name, err)
	}
	l := &Lang{Tag: tag.String(), tag: tag}
	if err := json.Unmarshal(b, &l.msgs); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	l.Name, l.Dir = l.msgs["meta.name"].Text, l.msgs["meta.dir"].Text
	if l.Name == "" {
		return nil, fmt.Errorf("catalog %s: meta.name is missing", name)
	}
	if l.Dir != "ltr" && l.Dir != "rtl" {
		return nil, fmt.Errorf("catalog %s: meta.dir is %q, want ltr or rtl", name, l.Dir)
	}
	return l, nil
}

// Langs lists the languages, the fallback first.
func (c *Catalog) Langs() []*Lang { return c.langs }

// Lang returns the catalog of tag, or nil.
func (c *Catalog) Lang(tag string) *Lang { return c.byTag[tag] }

// Pick chooses a request's language: the one chosen before (chosen, from
// the cookie) when the catalog has it, else the best match for the
// browser's Accept-Language header, else the fallback.
func (c *Catalog) Pick(chosen, acceptLanguage string) *Lang {
	if l := c.byTag[chosen]; l != nil {
		return l
	}
	wanted := acceptedTags(acceptLanguage)
	if len(wanted) == 0 {
		return c.langs[0]
	}
	_, i, conf := c.matcher.Match(wanted...)
	if conf == language.No {
		return c.langs[0]
	}
	return c.langs[i]
}

// acceptedTags reads an Accept-Language header, best first. An entry that
// does not parse is skipped rather than costing the reader the others.
func acceptedTags(header string) []language.Tag {
	if tags, _, err := language.ParseAcceptLanguage(header); err == nil {
		return tags
	}
	type weighted struct {
		tag language.Tag
		q   float32
	}
	var all []weighted
	for entry := range strings.SplitSeq(header, ",") {
		tags, qs, err := language.ParseAcceptLanguage(entry)
		if err != nil {
			continue
		}
		for i, tag := range tags {
			all = append(all, weighted{tag, qs[i]})
		}
	}
	slices.SortStableFunc(all, func(a, b weighted) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	out := make([]language.Tag, len(all))
	for i, w := range all {
		out[i] = w.tag
	}
	return out
}

// Text is key in the language tagged lang (the fallback for an unknown tag),
// for code that keeps a language by its tag, such as an e-mail's composer.
func (c *Catalog) Text(lang, key string, args ...any) string {
	l := c.byTag[lang]
	if l == nil {
		l = c.langs[0]
	}
	return l.T(key, args...)
}
