package keyring_test

import (
	"crypto/rand"
	"testing"
)

// 1 KiB is the order of a chat message or a display name with its overhead.
func BenchmarkSeal1KiB(b *testing.B) {
	k := newRing(b, openDB(b), newMaster(b))
	plain := make([]byte, 1024)
	rand.Read(plain)
	aad := []byte("chat:c_1:42")
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Seal(plain, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnseal1KiB(b *testing.B) {
	k := newRing(b, openDB(b), newMaster(b))
	plain := make([]byte, 1024)
	rand.Read(plain)
	aad := []byte("chat:c_1:42")
	sealed, err := k.Seal(plain, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Unseal(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}
