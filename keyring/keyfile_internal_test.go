package keyring

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestChangePassphraseNeverLowersCosts(t *testing.T) {
	d := defaultKDFParams()
	tests := []struct {
		name     string
		recorded KDFParams
		want     KDFParams
	}{
		{"cheaper than the defaults", KDFParams{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}, d},
		{"stronger than the defaults", KDFParams{MemoryKiB: 1 << 20, Time: 10, Threads: 8}, KDFParams{MemoryKiB: 1 << 20, Time: 10, Threads: 8}},
		{"mixed", KDFParams{MemoryKiB: 1 << 20, Time: 1, Threads: 1}, KDFParams{MemoryKiB: 1 << 20, Time: d.Time, Threads: d.Threads}},
	}
	for _, tt := range tests {
		if got := raiseToDefaults(tt.recorded); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if DefaultKDFParams != d || d.MemoryKiB < 64*1024 || d.Time < 3 || d.Threads < 2 {
		t.Fatalf("defaults %+v are weaker than 64 MiB, 3 passes, 2 lanes", d)
	}
}

// FuzzDecodeKeyFile feeds arbitrary bytes to the key file parser, which runs
// before any passphrase is tried: it must never panic, and whatever it
// accepts must be within the bounds that keep argon2id affordable.
func FuzzDecodeKeyFile(f *testing.F) {
	m, err := NewMasterKey()
	if err != nil {
		f.Fatal(err)
	}
	valid, err := sealKeyFile("a long enough passphrase", m, KDFParams{MemoryKiB: 8 * 1024, Time: 1, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte("{}"))
	f.Add([]byte(`{"format":"openconsult-master-key-v1","kdf":"argon2id","params":{"memory_kib":4294967295,"time":4294967295,"threads":255}}`))
	f.Add([]byte(`{"salt":"!!","nonce":null,"sealed_key":[1,2]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := decodeKeyFile(b)
		if err != nil {
			return
		}
		if kf.Params.validate() != nil || len(kf.Nonce) != 12 || len(kf.Sealed) != 48 || len(kf.Salt) < 16 || len(kf.Salt) > 64 {
			t.Fatalf("accepted out-of-bounds key file %+v", kf.Params)
		}
		again, err := json.Marshal(kf)
		if err != nil {
			t.Fatal(err)
		}
		kf2, err := decodeKeyFile(again)
		if err != nil || kf2.Params != kf.Params || !bytes.Equal(kf2.Sealed, kf.Sealed) {
			t.Fatalf("re-encoded key file does not decode the same: %v", err)
		}
	})
}
