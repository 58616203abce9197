package sso

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is what a providers file configures.
type Config struct {
	OIDC []Provider
	SAML []SAMLProvider
}

// fileProvider is one OpenID Connect [[provider]] of a providers file; the
// secret comes from a file or an environment variable, never from the
// file itself.
type fileProvider struct {
	Provider
	ClientSecretFile string `toml:"client_secret_file"`
	ClientSecretEnv  string `toml:"client_secret_env"`
}

// Provider kinds in a providers file.
const (
	KindOIDC = "oidc" // the default
	KindSAML = "saml"
)

// LoadFile reads the providers file at path (TOML, one [[provider]] table
// each, of kind "oidc", the default, or "saml") and checks every provider.
// A setting the provider's kind does not know is an error.
func LoadFile(path string, getenv func(string) string) (Config, error) {
	var doc struct {
		Provider []toml.Primitive `toml:"provider"`
	}
	md, err := toml.DecodeFile(path, &doc)
	if err != nil {
		return Config{}, fmt.Errorf("providers file: %w", err)
	}
	var c Config
	for i, prim := range doc.Provider {
		var keys map[string]any
		if err := md.PrimitiveDecode(prim, &keys); err != nil {
			return Config{}, fmt.Errorf("providers file: provider %d: %w", i+1, err)
		}
		kind, _ := keys["kind"].(string)
		if err := knownKeys(i+1, kind, keys); err != nil {
			return Config{}, err
		}
		switch kind {
		case "", KindOIDC:
			p, err := loadOIDC(md, prim, getenv)
			if err != nil {
				return Config{}, err
			}
			c.OIDC = append(c.OIDC, p)
		case KindSAML:
			var p SAMLProvider
			if err := md.PrimitiveDecode(prim, &p); err != nil {
				return Config{}, fmt.Errorf("providers file: provider %d: %w", i+1, err)
			}
			if err := p.Check(); err != nil {
				return Config{}, err
			}
			c.SAML = append(c.SAML, p)
		default:
			return Config{}, fmt.Errorf("providers file: provider %d: kind %q; use oidc or saml", i+1, kind)
		}
	}
	if un := md.Undecoded(); len(un) > 0 {
		return Config{}, fmt.Errorf("providers file: unknown setting %s", un[0])
	}
	return c, nil
}

// knownKeys refuses a setting that the provider's kind does not know,
// which would otherwise be ignored silently.
func knownKeys(n int, kind string, keys map[string]any) error {
	var known map[string]bool
	switch kind {
	case "", KindOIDC:
		known = tomlKeys(reflect.TypeFor[fileProvider]())
	case KindSAML:
		known = tomlKeys(reflect.TypeFor[SAMLProvider]())
	default:
		return nil // LoadFile names the kind
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if k != "kind" && !known[k] {
			return fmt.Errorf("providers file: provider %d: unknown setting %q for kind %s", n, k, cmp.Or(kind, KindOIDC))
		}
	}
	return nil
}

// tomlKeys lists the keys a struct decodes, embedded structs included.
func tomlKeys(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range t.Fields() {
		tag := f.Tag.Get("toml")
		switch {
		case f.Anonymous && tag == "":
			maps.Copy(out, tomlKeys(f.Type))
		case tag != "" && tag != "-":
			out[tag] = true
		}
	}
	return out
}

func loadOIDC(md toml.MetaData, prim toml.Primitive, getenv func(string) string) (Provider, error) {
	var fp fileProvider
	if err := md.PrimitiveDecode(prim, &fp); err != nil {
		return Provider{}, fmt.Errorf("providers file: %w", err)
	}
	p := fp.Provider
	switch {
	case fp.ClientSecretFile != "":
		b, err := os.ReadFile(fp.ClientSecretFile)
		if err != nil {
			return Provider{}, fmt.Errorf("provider %s: client secret file: %w", p.Name, err)
		}
		p.ClientSecret = strings.TrimSpace(string(b))
	case fp.ClientSecretEnv != "":
		p.ClientSecret = getenv(fp.ClientSecretEnv)
	}
	return p, p.Check()
}
