package relay

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v5"
)

func TestBoundedLifetime(t *testing.T) {
	tests := []struct {
		requested uint32
		refresh   bool
		want      uint32
	}{
		{0, false, 600},
		{0, true, 0},
		{1, false, 600},
		{1, true, 600},
		{600, false, 600},
		{601, true, 601},
		{3599, false, 3599},
		{3600, true, 3599},
		{0xFFFFFFFF, false, 3599},
	}
	for _, tt := range tests {
		if got := boundedLifetime(tt.requested, tt.refresh); got != tt.want {
			t.Errorf("boundedLifetime(%d, refresh %v) = %d, want %d", tt.requested, tt.refresh, got, tt.want)
		}
	}
}

// FuzzBoundLifetime feeds the LIFETIME rewrite untrusted messages: it must
// never panic or write outside a message, must leave a message it does not
// rewrite byte for byte as it was, and a message it rewrites must carry
// the bounded LIFETIME under a valid MESSAGE-INTEGRITY and FINGERPRINT.
func FuzzBoundLifetime(f *testing.F) {
	user, pass := mint(testSecret, "g_fuzz_life")
	for _, m := range []*stun.Message{
		signed(f, stun.MethodAllocate, user, testRealm, pass, requestedUDP, lifetime(1)),
		signed(f, stun.MethodRefresh, user, testRealm, pass, lifetime(86400)),
		signed(f, stun.MethodRefresh, user, testRealm, pass, lifetime(0)),
		signed(f, stun.MethodAllocate, user, testRealm, pass, requestedUDP),
	} {
		f.Add(m.Raw)
	}
	s := gateServer(f, testSecret)
	f.Fuzz(func(t *testing.T, b []byte) {
		lt, mi, fp := attributeOffsets(b)
		for _, off := range []int{lt, mi, fp} {
			if off >= len(b) || (off >= 0 && off < 20) {
				t.Fatalf("offset %d outside the attributes of %d bytes", off, len(b))
			}
		}
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		if m.Decode() != nil || (m.Type != typeAllocate && m.Type != typeRefresh) {
			return
		}
		orig := append([]byte(nil), b...)
		got := append([]byte(nil), b...)
		(&inspector{s: s}).boundLifetime(got, m, s.creds.Load())
		if len(got) != len(orig) {
			t.Fatal("the rewrite changed the length")
		}
		if bytes.Equal(got, orig) {
			return
		}
		out := &stun.Message{Raw: got}
		if err := out.Decode(); err != nil {
			t.Fatalf("rewritten message does not decode: %v", err)
		}
		var name stun.Username
		if err := name.GetFrom(out); err != nil {
			t.Fatalf("rewritten message without a username: %v", err)
		}
		key := turn.GenerateAuthKey(name.String(), testRealm, RESTPassword(testSecret, name.String()))
		if err := stun.MessageIntegrity(key).Check(out); err != nil {
			t.Fatalf("rewritten message fails its integrity: %v", err)
		}
		if fp >= 0 {
			if err := stun.Fingerprint.Check(out); err != nil {
				t.Fatalf("rewritten message fails its fingerprint: %v", err)
			}
		}
		v, err := out.Get(stun.AttrLifetime)
		requested := binary.BigEndian.Uint32(orig[lt+4:])
		if err != nil || binary.BigEndian.Uint32(v) != boundedLifetime(requested, m.Type == typeRefresh) {
			t.Fatalf("LIFETIME %x after the rewrite of %d", v, requested)
		}
	})
}
