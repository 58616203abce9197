package sso

import (
	"encoding/json"
	"testing"
)

// FuzzOpen feeds the flow cookie, which the browser controls, to open:
// anything but a value this site sealed is refused without a panic.
func FuzzOpen(f *testing.F) {
	sealer, err := KeySealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	flows := &Flows{sealer: sealer}
	good, err := flows.seal(flowState{Provider: "keycloak", State: "s", Nonce: "n", Verifier: "v", Expires: 1}, sealAAD)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(good[:len(good)-1] + "A")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := flows.open(s, sealAAD)
		if err == nil && s != good {
			// Only a sealed value opens; GCM makes any other one fail.
			if st.Provider != "keycloak" {
				t.Fatalf("%q opened to %+v", s, st)
			}
		}
	})
}

// FuzzStringList reads a groups claim of any JSON shape.
func FuzzStringList(f *testing.F) {
	f.Add(`["a","b"]`)
	f.Add(`"a"`)
	f.Add(`[1,{"x":2},null,"c"]`)
	f.Fuzz(func(t *testing.T, claim string) {
		var v any
		if err := json.Unmarshal([]byte(claim), &v); err != nil {
			return
		}
		stringList(v)
	})
}
