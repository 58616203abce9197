package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfilerWritesTheWindowsProfiles: start and stop leave a CPU
// profile, the heap at both ends of the window and the memory figures,
// and -node-profile is refused without -direct.
func TestProfilerWritesTheWindowsProfiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node")
	var p profiler
	if err := p.do("profile-start", path); err != nil {
		t.Fatal(err)
	}
	if err := p.do("profile-start", path); err == nil {
		t.Error("a second start was accepted")
	}
	if err := p.do("profile-stop", path); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".cpu", ".heap0", ".heap", ".memstats", ".goroutines"} {
		st, err := os.Stat(path + ext)
		if err != nil {
			t.Errorf("%s: %v", ext, err)
		} else if st.Size() == 0 {
			t.Errorf("%s is empty", ext)
		}
	}
	b, _ := os.ReadFile(path + ".memstats")
	if !strings.Contains(string(b), "heap in use") {
		t.Errorf("memory figures %q", b)
	}
	if err := p.do("profile-start", ""); err == nil {
		t.Error("a profile without a path was accepted")
	}
	if _, _, err := parseFlags([]string{"-node-profile", path}, io.Discard); err == nil {
		t.Error("-node-profile without -direct was accepted")
	}
}

func TestParseRssAnon(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   int64
		ok     bool
	}{
		{"linux", "VmRSS:\t    2004 kB\nRssAnon:\t     152 kB\nRssFile:\t    1852 kB\n", 152 << 10, true},
		{"missing", "VmRSS:\t    2004 kB\n", 0, false},
		{"no unit", "RssAnon:\t 152\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRssAnon(tt.status)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parseRssAnon = %d, %v; want %d, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}
