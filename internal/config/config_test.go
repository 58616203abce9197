package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testSettings struct {
	set     *Set
	listen  Addr
	level   Enum
	timeout time.Duration
	peers   PrefixList
	secrets StringList
	dev     bool
}

func newTestSettings() *testSettings {
	t := &testSettings{
		listen: Addr{Value: ":443"},
		level:  Enum{Value: "info", Allowed: []string{"debug", "info", "warn", "error"}},
	}
	t.set = New("test", "TEST", io.Discard)
	fs := t.set.Flags()
	fs.Var(&t.listen, "listen", "HTTPS listen address")
	fs.Var(&t.level, "log-level", "log level")
	fs.DurationVar(&t.timeout, "shutdown-timeout", 10*time.Second, "grace period")
	fs.Var(&t.peers, "allow-peer", "allowed peer CIDR")
	fs.Var(&t.secrets, "auth-secret", "secret")
	fs.BoolVar(&t.dev, "dev", false, "dev mode")
	return t
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrecedenceFlagThenEnvThenFileThenDefault(t *testing.T) {
	file := writeFile(t, `
listen = ":9000"
log-level = "warn"
shutdown_timeout = "3s"
dev = true
`)
	s := newTestSettings()
	env := map[string]string{"TEST_LOG_LEVEL": "debug", "TEST_LISTEN": ":8000"}
	err := s.set.Load([]string{"-config", file, "-listen", ":7000"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name   string
		got    string
		want   string
		source Source
	}{
		{"listen", s.listen.Value, ":7000", FromFlag},
		{"log-level", s.level.Value, "debug", FromEnv},
		{"shutdown-timeout", s.timeout.String(), "3s", FromFile},
		{"dev", map[bool]string{true: "true", false: "false"}[s.dev], "true", FromFile},
		{"allow-peer", s.peers.String(), "", FromDefault},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
		if got := s.set.Source(c.name); got != c.source {
			t.Errorf("%s source = %v, want %v", c.name, got, c.source)
		}
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	file := writeFile(t, `log-level = "error"`)
	s := newTestSettings()
	env := map[string]string{"TEST_CONFIG": file}
	if err := s.set.Load(nil, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if s.level.Value != "error" {
		t.Fatalf("log-level = %q, want error", s.level.Value)
	}
}

func TestRepeatableSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{"flags repeat", []string{"-allow-peer", "10.1.0.0/16", "-allow-peer", "192.0.2.7"}, nil, "", "10.1.0.0/16,192.0.2.7/32"},
		{"env splits on comma", nil, map[string]string{"TEST_ALLOW_PEER": "10.1.0.0/16, 10.2.0.0/16"}, "", "10.1.0.0/16,10.2.0.0/16"},
		{"file array", nil, nil, `allow-peer = ["10.3.0.0/16", "2001:db8::/32"]`, "10.3.0.0/16,2001:db8::/32"},
		{"flag replaces env", []string{"-allow-peer", "10.9.0.0/16"}, map[string]string{"TEST_ALLOW_PEER": "10.1.0.0/16"}, "", "10.9.0.0/16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSettings()
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, tt.file)}, args...)
			}
			if err := s.set.Load(args, func(k string) string { return tt.env[k] }); err != nil {
				t.Fatal(err)
			}
			if got := s.peers.String(); got != tt.want {
				t.Fatalf("allow-peer = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBadValuesNameTheSetting(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string
	}{
		{"flag enum", []string{"-log-level", "loud"}, nil, "", []string{"-log-level", `"loud" is not one of debug, info, warn, error`}},
		{"env enum", nil, map[string]string{"TEST_LOG_LEVEL": "loud"}, "", []string{"-log-level", "TEST_LOG_LEVEL", "environment", "debug, info, warn, error"}},
		{"file enum", nil, nil, `log-level = "loud"`, []string{"-log-level", "config key log-level", "config file", "debug, info, warn, error"}},
		{"file duration", nil, nil, `shutdown-timeout = "soon"`, []string{"-shutdown-timeout", "TEST_SHUTDOWN_TIMEOUT"}},
		{"env address", nil, map[string]string{"TEST_LISTEN": "8443"}, "", []string{"-listen", "not a listen address"}},
		{"cidr host bits", []string{"-allow-peer", "10.1.2.3/16"}, nil, "", []string{"allow-peer", "did you mean 10.1.0.0/16"}},
		{"unknown file key", nil, nil, `listn = ":1"`, []string{`unknown key "listn"`, "valid keys: allow-peer, auth-secret, dev, listen"}},
		{"file type", nil, nil, "[listen]\nx = 1", []string{"-listen", "unsupported value"}},
		{"file syntax", nil, nil, `listen = `, []string{"config file"}},
		{"stray argument", []string{"serve"}, nil, "", []string{`unexpected argument "serve"`}},
		{"unknown flag", []string{"-listn", ":1"}, nil, "", []string{"flag provided but not defined: -listn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSettings()
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, tt.file)}, args...)
			}
			err := s.set.Load(args, func(k string) string { return tt.env[k] })
			if err == nil {
				t.Fatal("Load accepted a bad value")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestHelpListsEveryFlagWithDefault(t *testing.T) {
	var out strings.Builder
	s := New("test", "TEST", &out)
	level := Enum{Value: "info", Allowed: []string{"info", "debug"}}
	s.Flags().Var(&level, "log-level", "log level")
	s.Flags().Duration("shutdown-timeout", 10*time.Second, "grace period")
	err := s.Load([]string{"-h"}, func(string) string { return "" })
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("Load(-h) = %v, want ErrHelp", err)
	}
	for _, w := range []string{"-log-level", "(default info)", "-shutdown-timeout", "(default 10s)", "-config", "TEST_<FLAG>"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("help does not mention %q:\n%s", w, out.String())
		}
	}
}

func TestInvalidNamesSourceOfValue(t *testing.T) {
	s := newTestSettings()
	env := map[string]string{"TEST_LISTEN": ":1"}
	if err := s.set.Load(nil, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	err := s.set.Invalid("listen", "port %d is reserved", 1)
	for _, w := range []string{"-listen", "TEST_LISTEN", "environment", "port 1 is reserved"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestURLValue(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"https://consult.example.org", "https://consult.example.org", ""},
		{"https://consult.example.org:8443/", "https://consult.example.org:8443", ""},
		{"http://consult.example.org", "", "must use https"},
		{"consult.example.org", "", "not an absolute URL"},
		{"https://consult.example.org/app", "", "must not have a path"},
		{"https://consult.example.org/?a=b", "", "query"},
	}
	for _, tt := range tests {
		var u URL
		err := u.Set(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Set(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || u.String() != tt.want {
			t.Errorf("Set(%q) = %q, %v; want %q", tt.in, u.String(), err, tt.want)
		}
	}
}

// FuzzConfigFile feeds arbitrary files to the loader: it must return an
// error or settings taken from the file, never panic.
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []string{"listen = \":1\"\n", "allow-peer = [\"10.0.0.0/8\"]\n", "[x]\ny=1", "log-level = 3", "dev = true\nshutdown-timeout = \"1s\""} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(dir, "fuzz.toml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Skip()
		}
		s := newTestSettings()
		err := s.set.Load([]string{"-config", path}, func(string) string { return "" })
		if err != nil {
			return
		}
		s.set.Flags().VisitAll(func(fl *flag.Flag) {
			if src := s.set.Source(fl.Name); fl.Name != ConfigFlag && src != FromDefault && src != FromFile {
				t.Fatalf("-%s came from %v with only a file given", fl.Name, src)
			}
		})
	})
}
