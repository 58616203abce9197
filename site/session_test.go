package site

import (
	"testing"
	"time"
)

func TestSignInAttemptsAreLimitedPerAddress(t *testing.T) {
	l := newIPLimiter(6*time.Second, 10)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := range 10 {
		if !l.allow("192.0.2.1") {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if l.allow("192.0.2.1") {
		t.Fatal("eleventh attempt within a minute allowed")
	}
	if !l.allow("192.0.2.2") {
		t.Fatal("another address was limited too")
	}
	now = now.Add(6 * time.Second)
	if !l.allow("192.0.2.1") {
		t.Fatal("the address did not regain an attempt after six seconds")
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newIPLimiter(6*time.Second, 10)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := range ipLimiterMaxEntries {
		l.allow(string(rune(i)))
	}
	now = now.Add(2 * time.Minute)
	if !l.allow("198.51.100.1") {
		t.Fatal("a new address was refused after old entries aged out")
	}
	if len(l.clients) > 2 {
		t.Fatalf("%d entries kept after ageing", len(l.clients))
	}
}
