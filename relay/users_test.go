package relay

import (
	"strings"
	"testing"
)

func TestParseUsersFile(t *testing.T) {
	in := "# staff relay users\n\nalice:a-long-password\n bob:another:long:one \r\n\t# indented comment\ncarol:pässwörd-ünïcode\n"
	users, err := ParseUsersFile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"alice": "a-long-password", "bob": "another:long:one", "carol": "pässwörd-ünïcode"}
	if len(users) != len(want) {
		t.Fatalf("ParseUsersFile = %v, want %v", users, want)
	}
	for u, p := range want {
		if users[u] != p {
			t.Errorf("user %q: password %q, want %q", u, users[u], p)
		}
	}
}

func TestParseUsersFileNamesTheLineNotTheContent(t *testing.T) {
	const secretish = "s3cret-password-value"
	tests := []struct {
		name, in, want string
	}{
		{"no colon", "# c\n" + secretish + "\n", "line 2: want username:password"},
		{"empty user", ":" + secretish, "line 1: empty username"},
		{"short password", "alice:short", "line 1: password shorter than 12"},
		{"blank in user", "al ice:" + secretish, "line 1: blank or control character in username"},
		{"control in password", "alice:" + secretish + "\x01", "line 1: control character in password"},
		{"REST-shaped user", "1700000000:" + secretish, "line 1: username looks like a REST credential"},
		{"twice", "alice:" + secretish + "\n\nalice:" + secretish, "line 3: user already defined on line 1"},
		{"not UTF-8", "alice:" + secretish + "\xff", "line 1: not UTF-8"},
		{"long user", strings.Repeat("u", 513) + ":" + secretish, "line 1: username longer than 512"},
		{"line too long", "alice:" + secretish + "\n" + strings.Repeat("x", 70000), "line 2: line too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseUsersFile(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secretish) {
				t.Fatalf("the error quotes the file: %v", err)
			}
		})
	}
}

func FuzzParseUsersFile(f *testing.F) {
	f.Add("alice:a-long-password\n# c\n")
	f.Add("a:b\n\n:x")
	f.Add("bob:pässwörd-ünïcode\r\nbob:again-and-again")
	f.Fuzz(func(t *testing.T, s string) {
		users, err := ParseUsersFile(strings.NewReader(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "users file") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		for u, p := range users {
			if checkStaticUser(u, p, true) != nil {
				t.Fatalf("accepted %q:%q", u, p)
			}
			if !strings.Contains(s, u+":"+p) {
				t.Fatalf("user %q:%q is not in the input", u, p)
			}
		}
	})
}
