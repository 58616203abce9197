package tlsmux

import (
	"bytes"
	"testing"

	"github.com/pion/stun/v3"
)

func TestClassifyTellsSTUNFromHTTP(t *testing.T) {
	binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
	allocate := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest)).Raw
	noCookie := bytes.Clone(binding)
	noCookie[4] = 0
	for _, tc := range []struct {
		name string
		b    []byte
		want Kind
	}{
		{"nothing yet", nil, Undecided},
		{"first byte of a STUN message", binding[:1], Undecided},
		{"seven bytes of a STUN message", binding[:7], Undecided},
		{"header of a Binding request", binding[:8], TURN},
		{"whole Allocate request", allocate, TURN},
		{"zero top bits without the magic cookie", noCookie[:8], HTTP},
		{"GET request", []byte("GET / HTTP/1.1\r\n"), HTTP},
		{"first byte of a POST", []byte("P"), HTTP},
		{"HTTP/2 preface", []byte("PRI * HTTP/2.0\r\n"), HTTP},
		{"ChannelData is never a first message", []byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4}, HTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.b); got != tc.want {
				t.Fatalf("Classify(%x) = %v, want %v", tc.b, got, tc.want)
			}
		})
	}
}

func TestByALPN(t *testing.T) {
	for proto, want := range map[string]Kind{"": Undecided, "stun.turn": TURN, "h2": HTTP, "http/1.1": HTTP, "acme-tls/1": HTTP} {
		if got := ByALPN(proto); got != want {
			t.Errorf("ByALPN(%q) = %v, want %v", proto, got, want)
		}
	}
}

// FuzzClassify checks that the classifier decides within PeekLen bytes,
// never changes its mind as more bytes arrive, and calls TURN only a
// message with the STUN header's zero bits and magic cookie.
func FuzzClassify(f *testing.F) {
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw)
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xA4})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Classify(b)
		if got == Undecided && len(b) >= PeekLen {
			t.Fatalf("undecided after %d bytes", len(b))
		}
		if got == TURN && (b[0]>>6 != 0 || !bytes.Equal(b[4:8], []byte{0x21, 0x12, 0xA4, 0x42})) {
			t.Fatalf("TURN for %x", b[:PeekLen])
		}
		for i := range len(b) {
			if k := Classify(b[:i]); k != Undecided && k != got {
				t.Fatalf("%v after %d bytes, %v after %d", k, i, got, len(b))
			}
		}
	})
}
