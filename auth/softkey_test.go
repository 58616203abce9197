package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// softKey is an authenticator in software: a P-256 key that answers
// WebAuthn ceremonies the way a platform authenticator does, with the
// "none" attestation format. Its fields can be bent to play an attacker.
type softKey struct {
	priv   *ecdsa.PrivateKey
	id     []byte
	count  uint32
	origin string
	rpID   string // "" answers for the RP ID the options name
	flags  byte   // authenticator data flags of assertions
	handle []byte // user handle, learnt at registration as a resident key
}

const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
	flagAT = 0x40 // attested credential data follows
)

func newSoftKey(t testing.TB, origin string) *softKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softKey{priv: priv, id: id, origin: origin, flags: flagUP | flagUV}
}

var b64 = base64.RawURLEncoding

// options reads the challenge and RP ID of creation or request options.
func options(t testing.TB, raw []byte) (challenge, rpID string) {
	challenge, rpID, _ = optionsUser(t, raw)
	return challenge, rpID
}

// optionsUser is options with the user handle of creation options.
func optionsUser(t testing.TB, raw []byte) (challenge, rpID, user string) {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RPID      string `json:"rpId"`
			RP        struct {
				ID string `json:"id"`
			} `json:"rp"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("options %s: %v", raw, err)
	}
	rp := o.PublicKey.RPID
	if rp == "" {
		rp = o.PublicKey.RP.ID
	}
	return o.PublicKey.Challenge, rp, o.PublicKey.User.ID
}

func (k *softKey) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return b
}

func (k *softKey) authData(rpID string, flags byte) []byte {
	if k.rpID != "" {
		rpID = k.rpID
	}
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	return binary.BigEndian.AppendUint32(out, k.count)
}

// register answers creation options with a new credential.
func (k *softKey) register(t testing.TB, opts []byte) []byte {
	t.Helper()
	challenge, rpID, user := optionsUser(t, opts)
	handle, err := b64.DecodeString(user)
	if err != nil {
		t.Fatalf("user handle %q: %v", user, err)
	}
	k.handle = handle
	point, err := k.priv.PublicKey.Bytes() // 0x04 | X | Y
	if err != nil {
		t.Fatal(err)
	}
	x, y := point[1:33], point[33:65]
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         1, XCoord: x, YCoord: y,
	})
	if err != nil {
		t.Fatal(err)
	}
	ad := k.authData(rpID, flagUP|flagUV|flagAT)
	ad = append(ad, make([]byte, 16)...) // AAGUID
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(k.id)))
	ad = append(append(ad, k.id...), cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(k.clientData("webauthn.create", challenge)),
			"attestationObject": b64.EncodeToString(att),
		},
	})
	return body
}

// assert answers request options, counting one more use.
func (k *softKey) assert(t testing.TB, opts []byte) []byte {
	t.Helper()
	challenge, rpID := options(t, opts)
	k.count++
	ad := k.authData(rpID, k.flags)
	cd := k.clientData("webauthn.get", challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(ad),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(k.handle),
		},
	})
	return body
}
