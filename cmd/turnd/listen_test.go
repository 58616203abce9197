package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// -listen takes several addresses: repeated, separated by commas, from
// the environment or as an array in the config file; the default goes as
// soon as one is given.
func TestSeveralListenAddresses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "turnd.toml")
	if err := os.WriteFile(file, []byte(`listen = [":3478", "[::]:3478", ":443"]`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"default", nil, nil, []string{":3478"}},
		{"one", []string{"-listen", "192.0.2.10:3478"}, nil, []string{"192.0.2.10:3478"}},
		{"repeated", []string{"-listen", "192.0.2.10:3478", "-listen", "[2001:db8::10]:3478"}, nil, []string{"192.0.2.10:3478", "[2001:db8::10]:3478"}},
		{"commas", []string{"-listen", "192.0.2.10:3478, 192.0.2.10:443"}, nil, []string{"192.0.2.10:3478", "192.0.2.10:443"}},
		{"environment", nil, map[string]string{"TURND_LISTEN": ":3478,:443"}, []string{":3478", ":443"}},
		{"config file", []string{"-config", file}, nil, []string{":3478", "[::]:3478", ":443"}},
		{"flag over file", []string{"-config", file, "-listen", ":3479"}, nil, []string{":3479"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"TURND_AUTH_SECRET": testSecret}
			for k, v := range tt.env {
				env[k] = v
			}
			s := newSettings(io.Discard)
			if err := s.load(append([]string{"-relay-ip", "192.0.2.10", "-tls-listen", "off"}, tt.args...), func(k string) string { return env[k] }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.listen.Values, tt.want) {
				t.Fatalf("listen %q, want %q", s.listen.Values, tt.want)
			}
		})
	}
}

func TestRelayFlagsChecked(t *testing.T) {
	env := map[string]string{"TURND_AUTH_SECRET": testSecret}
	var out strings.Builder
	args := []string{"-check", "-tls-listen", "off", "-listen", "192.0.2.10:3478", "-listen", "[2001:db8::10]:3478",
		"-relay-ip6", "2001:db8::10", "-public-ip6", "2001:db8:ffff::10", "-max-total-bps", "500000000"}
	if err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatalf("-check: %v", err)
	}
	for _, want := range []string{"listen 192.0.2.10:3478,[2001:db8::10]:3478", "relay 192.0.2.10", "IPv6 relay 2001:db8::10 (public 2001:db8:ffff::10)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-check printed %q, want %q in it", out.String(), want)
		}
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-listen", "nowhere"}, "-listen"},
		{[]string{"-listen", ":3478", "-listen", ":3478"}, "given twice"},
		{[]string{"-relay-ip6", "192.0.2.10"}, "-relay-ip6"},
		{[]string{"-relay-ip6", "::ffff:192.0.2.10"}, "-relay-ip6"},
		{[]string{"-public-ip6", "2001:db8::1"}, "-public-ip6"},
		{[]string{"-max-total-bps", "-1"}, "-max-total-bps"},
	}
	for _, tt := range tests {
		err := run(context.Background(), append([]string{"-check", "-tls-listen", "off", "-relay-ip", "192.0.2.10"}, tt.args...), func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%v) = %v, want mention of %q", tt.args, err, tt.want)
		}
	}
}
