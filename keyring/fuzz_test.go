package keyring_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/openconsult/openconsult/keyring"
)

// FuzzUnseal feeds arbitrary values and additional data to Unseal: no input
// may panic, and nothing but the one genuine value with its own aad opens.
func FuzzUnseal(f *testing.F) {
	k := newRing(f, openDB(f), newMaster(f))
	if _, err := k.RotateDataKey(context.Background()); err != nil {
		f.Fatal(err)
	}
	good, err := k.Seal([]byte("seed"), []byte("aad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte("aad"))
	f.Add(good, []byte("other"))
	f.Add(good[:20], []byte("aad"))
	f.Add([]byte{1, 0, 0, 0, 1}, []byte("aad"))
	f.Add(append([]byte{1, 0xff, 0xff, 0xff, 0xff}, good[5:]...), []byte("aad"))
	f.Fuzz(func(t *testing.T, b, aad []byte) {
		id, idErr := keyring.SealedKeyID(b)
		p, err := k.Unseal(b, aad)
		if err != nil {
			return
		}
		if !bytes.Equal(b, good) || string(aad) != "aad" || string(p) != "seed" || idErr != nil || id != 2 {
			t.Fatalf("forged value opened: %q (key %d)", p, id)
		}
	})
}
