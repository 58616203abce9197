package auth

import (
	_ "embed"
	"strings"
)

//go:embed common-passwords.txt
var commonPasswordList string

// commonPasswords is the breached-password list of NIST SP 800-63B 5.1.1.2,
// built once at start and read-only after.
var commonPasswords = func() map[string]bool {
	m := make(map[string]bool, 18000)
	for line := range strings.Lines(commonPasswordList) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			m[line] = true
		}
	}
	return m
}()
