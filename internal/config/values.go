package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// StringList is a repeatable string flag: -flag a -flag b, or "a,b" in the
// environment, or an array in the file.
type StringList struct {
	Values []string
}

func (l *StringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.Values, ",")
}

// Set appends one value.
func (l *StringList) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	l.Values = append(l.Values, v)
	return nil
}

// Reset forgets the values, so a lower-precedence source replaces rather than
// appends.
func (l *StringList) Reset() { l.Values = nil }

// Enum is a string flag restricted to a fixed set of values; a bad value's
// error lists the valid ones.
type Enum struct {
	Value   string
	Allowed []string
}

func (e *Enum) String() string {
	if e == nil {
		return ""
	}
	return e.Value
}

// Set accepts one of Allowed.
func (e *Enum) Set(v string) error {
	if !slices.Contains(e.Allowed, v) {
		return fmt.Errorf("%q is not one of %s", v, strings.Join(e.Allowed, ", "))
	}
	e.Value = v
	return nil
}

// Addr is a listen address flag "host:port"; the empty string switches the
// listener off, which the flag's usage must say.
type Addr struct {
	Value string
}

func (a *Addr) String() string {
	if a == nil {
		return ""
	}
	return a.Value
}

// Set accepts "host:port", ":port" or "" (off).
func (a *Addr) Set(v string) error {
	if v == "" || v == "off" {
		a.Value = ""
		return nil
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Errorf("%q is not a listen address (want host:port, :port, or off)", v)
	}
	a.Value = v
	return nil
}

// PrefixList is a repeatable CIDR flag.
type PrefixList struct {
	Values []netip.Prefix
}

func (l *PrefixList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(l.Values))
	for i, p := range l.Values {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Set appends a CIDR prefix; a bare address is taken as a single-host prefix.
func (l *PrefixList) Set(v string) error {
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR prefix or IP address", v)
		}
		l.Values = append(l.Values, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		return nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return fmt.Errorf("%q is not a CIDR prefix (like 10.20.0.0/16)", v)
	}
	if p.Masked() != p {
		return fmt.Errorf("%q has host bits set; did you mean %s?", v, p.Masked())
	}
	l.Values = append(l.Values, p)
	return nil
}

// Reset forgets the values.
func (l *PrefixList) Reset() { l.Values = nil }

// URL is an absolute http(s) URL flag, such as the public address of the site.
type URL struct {
	Value *url.URL
}

func (u *URL) String() string {
	if u == nil || u.Value == nil {
		return ""
	}
	return u.Value.String()
}

// Set accepts an absolute https:// URL without path, query or fragment.
func (u *URL) Set(v string) error {
	if v == "" {
		u.Value = nil
		return nil
	}
	parsed, err := url.Parse(v)
	if err != nil || parsed.Host == "" {
		return fmt.Errorf("%q is not an absolute URL (like https://consult.example-hospital.org)", v)
	}
	if parsed.Scheme != "https" {
		return fmt.Errorf("%q must use https://", v)
	}
	if parsed.RawQuery != "" || parsed.Fragment != "" {
		return fmt.Errorf("%q must not have a query or fragment", v)
	}
	if parsed.Path != "" && parsed.Path != "/" {
		return fmt.Errorf("%q must not have a path: the platform is served at the root of its host", v)
	}
	parsed.Path = ""
	u.Value = parsed
	return nil
}
