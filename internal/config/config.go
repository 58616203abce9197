// Package config owns how a binary's settings are read: command-line flags,
// then environment variables, then an optional TOML file, then defaults, in
// that order of precedence.
//
// Every setting is a flag registered on a flag.FlagSet, so `-h` lists them
// all with their defaults. The environment name of flag "tls-cert" for the
// binary with prefix "SIGNAL" is SIGNAL_TLS_CERT; its key in the file is
// tls-cert (tls_cert is accepted too). A value that does not parse fails the
// start with an error naming the flag, the variable and the key, so an
// operator finds the culprit whichever way it was given.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Source says where a setting's value came from.
type Source int

// The sources, in increasing order of precedence.
const (
	FromDefault Source = iota
	FromFile
	FromEnv
	FromFlag
)

func (s Source) String() string {
	switch s {
	case FromFile:
		return "config file"
	case FromEnv:
		return "environment"
	case FromFlag:
		return "command line"
	default:
		return "default"
	}
}

// ConfigFlag is the name of the flag that points at the config file. Its
// environment form (PREFIX_CONFIG) works too.
const ConfigFlag = "config"

// Set binds one binary's settings. Build it with New, register settings on
// Flags(), then call Load once.
type Set struct {
	prefix  string
	fs      *flag.FlagSet
	sources map[string]Source
	file    string
}

// New returns a Set for the binary name (used in help output) whose
// environment variables start with prefix + "_".
func New(name, prefix string, output io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	s := &Set{prefix: prefix, fs: fs, sources: map[string]Source{}}
	fs.StringVar(&s.file, ConfigFlag, "", "path of a TOML config file (keys are flag names)")
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage of %s:\n\n", name)
		fmt.Fprintf(output, "Every flag can also be set by the environment variable %s_<FLAG>\n", prefix)
		fmt.Fprintf(output, "(upper case, '-' as '_') or by a key of the same name in the -%s file.\n", ConfigFlag)
		fmt.Fprintf(output, "Precedence: flag, then environment, then file, then default.\n\n")
		fs.PrintDefaults()
	}
	return s
}

// Flags is where the binary registers its settings.
func (s *Set) Flags() *flag.FlagSet { return s.fs }

// EnvName is the environment variable that sets flag name.
func (s *Set) EnvName(name string) string {
	return s.prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Source reports where flag name got its value; FromDefault when nobody set it.
func (s *Set) Source(name string) Source { return s.sources[name] }

// IsSet reports whether the operator gave flag name a value by any means.
func (s *Set) IsSet(name string) bool { return s.sources[name] != FromDefault }

// ErrHelp is returned by Load when -h or -help was asked for; the usage has
// already been printed.
var ErrHelp = flag.ErrHelp

// Load parses args, then fills the flags not given on the command line from
// getenv and from the config file. getenv is os.Getenv in production and a map
// lookup in tests.
func (s *Set) Load(args []string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: settings are given as -flag value", s.fs.Arg(0))
	}
	s.fs.Visit(func(f *flag.Flag) { s.sources[f.Name] = FromFlag })

	var errs []error
	s.fs.VisitAll(func(f *flag.Flag) {
		if s.sources[f.Name] == FromFlag {
			return
		}
		v := getenv(s.EnvName(f.Name))
		if v == "" {
			return
		}
		if err := setAll(f, []string{v}, true); err != nil {
			errs = append(errs, s.settingError(f.Name, FromEnv, err))
			return
		}
		s.sources[f.Name] = FromEnv
	})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if s.file == "" {
		return nil
	}
	return s.loadFile(s.file)
}

func (s *Set) loadFile(path string) error {
	raw := map[string]any{}
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, key := range keys {
		name := strings.ReplaceAll(key, "_", "-")
		f := s.fs.Lookup(name)
		if f == nil || name == ConfigFlag {
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q (valid keys: %s)", path, key, strings.Join(s.names(), ", ")))
			continue
		}
		if s.sources[name] != FromDefault {
			continue
		}
		values, err := fileValues(raw[key])
		if err == nil {
			err = setAll(f, values, false)
		}
		if err != nil {
			errs = append(errs, s.settingError(name, FromFile, err))
			continue
		}
		s.sources[name] = FromFile
	}
	return errors.Join(errs...)
}

// settingError names a setting in every form an operator may have used.
func (s *Set) settingError(name string, from Source, err error) error {
	return fmt.Errorf("invalid setting -%s (env %s, config key %s) from %s: %w",
		name, s.EnvName(name), name, from, err)
}

// Invalid reports a value that parsed but is not acceptable, naming the
// setting the same way a parse error does. Binaries use it in their own
// cross-setting validation.
func (s *Set) Invalid(name string, format string, args ...any) error {
	return s.settingError(name, s.sources[name], fmt.Errorf(format, args...))
}

func (s *Set) names() []string {
	var names []string
	s.fs.VisitAll(func(f *flag.Flag) {
		if f.Name != ConfigFlag {
			names = append(names, f.Name)
		}
	})
	return names
}

// repeatable is implemented by list-valued flags, which take several values
// from a file array or a comma-separated environment variable.
type repeatable interface {
	Reset()
}

func setAll(f *flag.Flag, values []string, splitComma bool) error {
	r, isList := f.Value.(repeatable)
	if isList {
		r.Reset()
		if splitComma && len(values) == 1 {
			values = splitList(values[0])
		}
	} else if len(values) != 1 {
		return fmt.Errorf("takes one value, got %d", len(values))
	}
	for _, v := range values {
		if err := f.Value.Set(v); err != nil {
			return err
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fileValues(v any) ([]string, error) {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	default:
		s, err := scalar(v)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool, int64, float64:
		return fmt.Sprint(x), nil
	default:
		return "", fmt.Errorf("unsupported value of type %T (use a string, number, boolean or array)", v)
	}
}
