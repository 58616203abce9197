package sso

import (
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// fileProvider is one [[provider]] of a providers file; the secret comes
// from a file or an environment variable, never from the file itself.
type fileProvider struct {
	Provider
	ClientSecretFile string `toml:"client_secret_file"`
	ClientSecretEnv  string `toml:"client_secret_env"`
}

// LoadFile reads the providers file at path (TOML, one [[provider]] table
// each) and checks every provider.
func LoadFile(path string, getenv func(string) string) ([]Provider, error) {
	var doc struct {
		Provider []fileProvider `toml:"provider"`
	}
	md, err := toml.DecodeFile(path, &doc)
	if err != nil {
		return nil, fmt.Errorf("oidc providers file: %w", err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return nil, fmt.Errorf("oidc providers file: unknown setting %s", un[0])
	}
	out := make([]Provider, 0, len(doc.Provider))
	for _, fp := range doc.Provider {
		p := fp.Provider
		switch {
		case fp.ClientSecretFile != "":
			b, err := os.ReadFile(fp.ClientSecretFile)
			if err != nil {
				return nil, fmt.Errorf("provider %s: client secret file: %w", p.Name, err)
			}
			p.ClientSecret = strings.TrimSpace(string(b))
		case fp.ClientSecretEnv != "":
			p.ClientSecret = getenv(fp.ClientSecretEnv)
		}
		if err := p.Check(); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
