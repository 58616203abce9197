package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpPeriod and totpSkew follow RFC 6238's recommendations: 30-second steps
// and one step of tolerance either way for clock drift.
const (
	totpPeriod = 30
	totpSkew   = 1
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// newTOTPKey makes a secret for account at issuer, as authenticator apps
// expect it (SHA-1, 6 digits, 30 s, 160-bit secret).
func newTOTPKey(issuer, account string) (*otp.Key, error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: totpPeriod, SecretSize: 20})
	if err != nil {
		return nil, fmt.Errorf("generate totp secret: %w", err)
	}
	return k, nil
}

// matchTOTP returns the time step whose code equals code, within the skew,
// comparing in constant time. The step lets the caller refuse a replay.
func matchTOTP(secret, code string, now time.Time, opts totp.ValidateOpts) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if len(code) != opts.Digits.Length() {
		return 0, false
	}
	current := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		s := current + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), opts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// recoveryCodeCount is how many single-use recovery codes a user gets.
const recoveryCodeCount = 10

// newRecoveryCodes returns codes like "k7q2m-x9p4t" (50 random bits each)
// and their hashes. The entropy makes a fast hash safe here: there is no
// dictionary to try, and each attempt also counts toward the lockout.
func newRecoveryCodes() (codes []string, hashes [][]byte, err error) {
	enc := base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)
	for range recoveryCodeCount {
		b := make([]byte, 7)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, fmt.Errorf("recovery code: %w", err)
		}
		s := enc.EncodeToString(b)[:10]
		code := s[:5] + "-" + s[5:]
		codes = append(codes, code)
		hashes = append(hashes, recoveryHash(code))
	}
	return codes, hashes, nil
}

func recoveryHash(code string) []byte {
	c := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), " ", ""))
	if len(c) == 10 {
		c = c[:5] + "-" + c[5:]
	}
	h := sha256.Sum256([]byte("recovery:" + c))
	return h[:]
}

// looksLikeRecoveryCode tells a recovery code from a TOTP code on one form.
func looksLikeRecoveryCode(s string) bool {
	s = strings.TrimSpace(s)
	return len(s) == 11 && s[5] == '-' || len(s) == 10 && strings.ContainsAny(s, "abcdefghijkmnpqrstuvwxyz")
}
