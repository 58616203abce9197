package keyring

import (
	"errors"
	"testing"
)

func TestDeriveKeyDependsOnKeyPurposeAndSalt(t *testing.T) {
	m, _ := NewMasterKey()
	other, _ := NewMasterKey()
	base, err := m.DeriveKey("backup v1", []byte("salt"))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.DeriveKey("backup v1", []byte("salt"))
	if again != base {
		t.Fatal("the same inputs derived different keys")
	}
	for name, k := range map[string]func() ([32]byte, error){
		"other master":  func() ([32]byte, error) { return other.DeriveKey("backup v1", []byte("salt")) },
		"other purpose": func() ([32]byte, error) { return m.DeriveKey("export v1", []byte("salt")) },
		"other salt":    func() ([32]byte, error) { return m.DeriveKey("backup v1", []byte("pepper")) },
	} {
		if got, err := k(); err != nil || got == base {
			t.Errorf("%s: derived the same key (err %v)", name, err)
		}
	}
	if _, err := (MasterKey{}).DeriveKey("backup v1", nil); !errors.Is(err, errZeroMaster) {
		t.Errorf("zero master key: %v", err)
	}
}
