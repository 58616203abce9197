package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinStaticPasswordLen is the shortest password ParseUsersFile accepts. A
// long-term TURN key is MD5(username:realm:password), which a captured
// request lets an attacker attack offline, so short passwords are refused.
const MinStaticPasswordLen = 12

// ParseUsersFile reads static long-term TURN users, for staff or devices
// that cannot fetch time-limited credentials. The format is one user per
// line:
//
//	# comment
//	username:password
//
// Blank lines and lines whose first non-blank character is # are ignored;
// leading and trailing blanks of a line are dropped. The username is
// everything before the first colon and must be non-empty, at most 512
// bytes, free of blanks and control characters, and not shaped like a REST
// username ("digits" or "digits:..."), which would be ambiguous. The
// password is everything after it, colons included, and has at least
// MinStaticPasswordLen characters. A username may appear once.
//
// Errors name the line number and the rule broken, never the line's
// content, so that a password cannot reach a log through them.
func ParseUsersFile(r io.Reader) (map[string]string, error) {
	users := map[string]string{}
	first := map[string]int{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		user, pass, ok := strings.Cut(text, ":")
		if err := checkStaticUser(user, pass, ok); err != nil {
			return nil, fmt.Errorf("users file line %d: %w", line, err)
		}
		if prev, dup := first[user]; dup {
			return nil, fmt.Errorf("users file line %d: user already defined on line %d", line, prev)
		}
		first[user] = line
		users[user] = pass
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("users file line %d: line too long", line+1)
		}
		return nil, fmt.Errorf("users file: %w", err)
	}
	return users, nil
}

func checkStaticUser(user, pass string, hasColon bool) error {
	switch {
	case !hasColon:
		return errors.New("want username:password")
	case user == "":
		return errors.New("empty username")
	case len(user) > maxUsernameLen:
		return fmt.Errorf("username longer than %d bytes", maxUsernameLen)
	case !utf8.ValidString(user) || !utf8.ValidString(pass):
		return errors.New("not UTF-8")
	case strings.IndexFunc(user, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("blank or control character in username")
	case strings.IndexFunc(pass, unicode.IsControl) >= 0:
		return errors.New("control character in password")
	case utf8.RuneCountInString(pass) < MinStaticPasswordLen:
		return fmt.Errorf("password shorter than %d characters", MinStaticPasswordLen)
	}
	if _, _, err := ParseRESTUsername(user); err == nil {
		return errors.New("username looks like a REST credential (expiry seconds)")
	}
	return nil
}
