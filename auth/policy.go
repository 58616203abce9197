package auth

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// PasswordPolicy follows NIST SP 800-63B: length matters, composition rules
// are an institution's opt-in, every character is allowed.
type PasswordPolicy struct {
	MinLength int // in characters (Unicode code points after NFKC)
	MaxLength int
	// RequireMixed demands an upper-case letter, a lower-case letter and a
	// digit, for institutions whose policy still asks for composition rules.
	RequireMixed bool
}

// DefaultPasswordPolicy is 12 to 256 characters. NIST asks for a maximum of
// at least 64; 256 stays far from argon2 input limits and pasted-book abuse.
var DefaultPasswordPolicy = PasswordPolicy{MinLength: 12, MaxLength: 256}

// PolicyError says why a password was refused, in words fit for the user.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// NormalizePassword applies NFKC so the same password typed on two keyboards
// hashes the same, as SP 800-63B recommends.
func NormalizePassword(pw string) string { return norm.NFKC.String(pw) }

// Check refuses a (normalized) password that breaks the policy.
func (p PasswordPolicy) Check(password, username string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return &PolicyError{"The password contains invalid characters."}
	case n < p.MinLength:
		return &PolicyError{fmt.Sprintf("Use at least %d characters.", p.MinLength)}
	case n > p.MaxLength:
		return &PolicyError{fmt.Sprintf("Use at most %d characters.", p.MaxLength)}
	case username != "" && strings.Contains(strings.ToLower(password), strings.ToLower(username)):
		return &PolicyError{"The password must not contain the username."}
	case p.RequireMixed && !mixed(password):
		return &PolicyError{"Use at least one upper-case letter, one lower-case letter and one digit."}
	case commonPasswords[strings.ToLower(password)]:
		return &PolicyError{"This password appears in lists of breached passwords. Choose another."}
	}
	return nil
}

func mixed(pw string) bool {
	var upper, lower, digit bool
	for _, r := range pw {
		upper = upper || unicode.IsUpper(r)
		lower = lower || unicode.IsLower(r)
		digit = digit || unicode.IsDigit(r)
	}
	return upper && lower && digit
}

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{1,62}[a-z0-9]$`)

// NormalizeUsername lower-cases and checks a username: 3 to 64 of a-z, 0-9
// and . _ @ -, starting and ending with a letter or digit.
func NormalizeUsername(s string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	if !usernamePattern.MatchString(u) {
		return "", &PolicyError{"Use 3 to 64 characters: letters, digits and . _ @ -, starting and ending with a letter or digit."}
	}
	return u, nil
}
