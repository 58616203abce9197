package auth

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
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
	// ContextWords are refused inside a password (SP 800-63B's
	// context-specific words): the institution's name, see ContextWords.
	ContextWords []string
	// MaxRepeat, when above zero, refuses more than that many identical
	// characters in a row, for institutions whose policy asks for it.
	MaxRepeat int
	// MaxAge, when above zero, makes a password older than that be changed
	// at the next sign-in. SP 800-63B advises against periodic changes; it
	// is an institution's opt-in.
	MaxAge time.Duration
}

// ContextWords returns what a password must not contain for an institution
// of this name: the name itself (without spaces) and each of its words of
// four letters or more, in lower case.
func ContextWords(institution string) []string {
	var words []string
	if joined := strings.ToLower(strings.Join(strings.Fields(institution), "")); utf8.RuneCountInString(joined) >= 4 {
		words = append(words, joined)
	}
	for _, w := range strings.FieldsFunc(strings.ToLower(institution), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if utf8.RuneCountInString(w) >= 4 && !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	return words
}

// DefaultPasswordPolicy is 12 to 256 characters. NIST asks for a maximum of
// at least 64; 256 stays far from argon2 input limits and pasted-book abuse.
var DefaultPasswordPolicy = PasswordPolicy{MinLength: 12, MaxLength: 256}

// PolicyError says why a password (or an account's field) was refused, in
// words fit for the user: Reason in English, and Key and Args naming the
// message in the catalogs (web/i18n) for pages in the user's language.
type PolicyError struct {
	Reason string
	Key    string
	Args   []any // name, value pairs for the message's placeholders
}

func policyError(key, reason string, args ...any) *PolicyError {
	return &PolicyError{Reason: reason, Key: key, Args: args}
}

func (e *PolicyError) Error() string { return e.Reason }

// NormalizePassword applies NFKC so the same password typed on two keyboards
// hashes the same, as SP 800-63B recommends.
func NormalizePassword(pw string) string { return norm.NFKC.String(pw) }

// Check refuses a (normalized) password that breaks the policy.
func (p PasswordPolicy) Check(password, username string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return policyError("policy.invalid.chars", "The password contains invalid characters.")
	case n < p.MinLength:
		return policyError("policy.min", fmt.Sprintf("Use at least %d characters.", p.MinLength), "count", p.MinLength)
	case n > p.MaxLength:
		return policyError("policy.max", fmt.Sprintf("Use at most %d characters.", p.MaxLength), "count", p.MaxLength)
	case strings.TrimSpace(password) == "" || oneCharacter(password):
		return policyError("policy.repeated.only", "Use more than one repeated character.")
	case username != "" && strings.Contains(strings.ToLower(password), strings.ToLower(username)):
		return policyError("policy.username", "The password must not contain the username.")
	case containsAny(strings.ToLower(password), p.ContextWords):
		return policyError("policy.context", "The password must not contain the name of the institution or of this service.")
	case p.MaxRepeat > 0 && longestRun(password) > p.MaxRepeat:
		return policyError("policy.run", fmt.Sprintf("Use no more than %d identical characters in a row.", p.MaxRepeat), "count", p.MaxRepeat)
	case p.RequireMixed && !mixed(password):
		return policyError("policy.mixed", "Use at least one upper-case letter, one lower-case letter and one digit.")
	case commonPasswords[strings.ToLower(password)]:
		return policyError("policy.breached", "This password appears in lists of breached passwords. Choose another.")
	}
	return nil
}

func oneCharacter(pw string) bool {
	first, _ := utf8.DecodeRuneInString(pw)
	return strings.Trim(pw, string(first)) == ""
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if w != "" && strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// longestRun is the length of the longest run of one character.
func longestRun(pw string) int {
	longest, run := 0, 0
	var prev rune = -1
	for _, r := range pw {
		if r == prev {
			run++
		} else {
			prev, run = r, 1
		}
		longest = max(longest, run)
	}
	return longest
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
		return "", policyError("policy.username.format", "Use 3 to 64 characters: letters, digits and . _ @ -, starting and ending with a letter or digit.")
	}
	return u, nil
}
