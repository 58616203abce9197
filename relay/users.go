package relay

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ParseUsersFile reads static long-term users: one "username:password" per
// line; blank lines and lines starting with # are ignored. Errors name the
// line, never its content.
func ParseUsersFile(r io.Reader) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" || strings.ContainsAny(user, " \t") {
			return nil, fmt.Errorf("users file line %d: want username:password", n)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("users file line %d: user listed twice", n)
		}
		if len(pass) < 12 {
			return nil, fmt.Errorf("users file line %d: password shorter than 12 characters", n)
		}
		users[user] = pass
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	return users, nil
}
