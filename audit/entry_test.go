package audit_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
)

func canonical(t testing.TB, e audit.Entry) []byte {
	t.Helper()
	b, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCanonicalEncodingIsExact(t *testing.T) {
	e := audit.Entry{Seq: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Type: audit.TypeSignIn, Outcome: audit.Failure,
		Requester: "u_1", Message: `wrong "password" <b>&`, SourceIP: "192.0.2.1", UserAgent: "UA\tx\u2028",
		Fields: map[string]string{"z": "1", "a": "\x01é"}, Prev: "ab"}
	want := `{"seq":7,"time":"2026-01-02T03:04:05.000000000Z","type":"signin","outcome":"failure","requester":"u_1","room":"",` +
		`"message":"wrong \"password\" <b>&","source_ip":"192.0.2.1","user_agent":"UA\tx` + "\u2028" + `",` +
		`"fields":{"a":"\u0001é","z":"1"},"prev":"ab"}`
	if got := string(canonical(t, e)); got != want {
		t.Fatalf("canonical\n got %s\nwant %s", got, want)
	}
}

func TestCanonicalEncodingIsStableAndKeyOrderIndependent(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))
	fieldsA := map[string]string{}
	fieldsB := map[string]string{}
	keys := []string{"user", "role", "b", "a", "minutes", "z", "method"}
	for i, k := range keys {
		fieldsA[k] = k
		fieldsB[keys[len(keys)-1-i]] = keys[len(keys)-1-i]
	}
	a := audit.Entry{Seq: 1, Time: at, Type: "signin", Outcome: "success", Fields: fieldsA}
	b := audit.Entry{Seq: 1, Time: at.UTC(), Type: "signin", Outcome: "success", Fields: fieldsB}
	first := canonical(t, a)
	for range 20 {
		if got := canonical(t, b); !bytes.Equal(got, first) {
			t.Fatalf("%s != %s", got, first)
		}
	}
	if !strings.Contains(string(first), `"time":"2026-01-02T02:04:05.000000006Z"`) {
		t.Fatalf("time not UTC with nanoseconds: %s", first)
	}
	// A nil and an empty map are the same entry.
	if !bytes.Equal(canonical(t, audit.Entry{Seq: 1}), canonical(t, audit.Entry{Seq: 1, Fields: map[string]string{}})) {
		t.Fatal("nil and empty fields encode differently")
	}
}

func TestParseEntryRoundTrips(t *testing.T) {
	e := audit.Entry{Seq: 42, Time: time.Date(2026, 8, 1, 10, 0, 0, 123, time.UTC), Type: audit.TypeSessionEnded, Outcome: audit.Success,
		Requester: "u_doc", Room: "c_1", Message: "ended\n", Fields: map[string]string{"duration": "30m"}, Prev: strings.Repeat("0", 64)}
	got, err := audit.ParseEntry(canonical(t, e))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonical(t, got), canonical(t, e)) || !got.Time.Equal(e.Time) || got.Fields["duration"] != "30m" {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestParseEntryRefusesOtherSpellings(t *testing.T) {
	good := string(canonical(t, audit.Entry{Seq: 3, Time: time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC), Type: "signin", Outcome: "success",
		Requester: "u_1", Message: "ok", Fields: map[string]string{"a": "1"}, Prev: "ff"}))
	if _, err := audit.ParseEntry([]byte(good)); err != nil {
		t.Fatalf("canonical entry refused: %v", err)
	}
	tests := []struct{ name, in string }{
		{"space after colon", strings.Replace(good, `"seq":3`, `"seq": 3`, 1)},
		{"trailing newline", good + "\n"},
		{"keys reordered", strings.Replace(good, `"seq":3,"time":"2026-08-01T10:00:00.000000000Z"`, `"time":"2026-08-01T10:00:00.000000000Z","seq":3`, 1)},
		{"unknown key", strings.Replace(good, `"prev":"ff"`, `"prev":"ff","admin":"yes"`, 1)},
		{"duplicate key", strings.Replace(good, `"message":"ok"`, `"message":"ok","message":"ok"`, 1)},
		{"escaped letter", strings.Replace(good, `"message":"ok"`, `"message":"\u006fk"`, 1)},
		{"html escape", strings.Replace(good, `"message":"ok"`, `"message":"\u003c"`, 1)},
		{"trimmed nanoseconds", strings.Replace(good, `10:00:00.000000000Z`, `10:00:00Z`, 1)},
		{"other time zone", strings.Replace(good, `10:00:00.000000000Z`, `11:00:00.000000000+01:00`, 1)},
		{"missing key", strings.Replace(good, `"room":"",`, ``, 1)},
		{"null value", strings.Replace(good, `"room":""`, `"room":null`, 1)},
		{"number as string", strings.Replace(good, `"seq":3`, `"seq":"3"`, 1)},
		{"negative seq", strings.Replace(good, `"seq":3`, `"seq":-3`, 1)},
		{"exponent seq", strings.Replace(good, `"seq":3`, `"seq":3e0`, 1)},
		{"invalid UTF-8", strings.Replace(good, `"message":"ok"`, "\"message\":\"o\xffk\"", 1)},
		{"year 0 through an offset", strings.Replace(good, `2026-08-01T10:00:00.000000000Z`, `0000-01-01T00:00:00.000000000+01:00`, 1)},
		{"not an object", `[]`},
		{"empty", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in == good {
				t.Fatal("test case does not change the entry")
			}
			if _, err := audit.ParseEntry([]byte(tt.in)); !errors.Is(err, audit.ErrNotCanonical) {
				t.Fatalf("ParseEntry(%s) = %v, want ErrNotCanonical", tt.in, err)
			}
		})
	}
}

func TestCanonicalRefusesInvalidUTF8AndOutOfRangeTimes(t *testing.T) {
	tests := []audit.Entry{
		{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Message: "\xff"},
		{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Fields: map[string]string{"\xfe": "x"}},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for i, e := range tests {
		if b, err := e.Canonical(); err == nil {
			t.Errorf("case %d encoded: %s", i, b)
		}
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add(canonical(f, audit.Entry{Seq: 1, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Type: "signin", Outcome: "success"}))
	f.Add(canonical(f, audit.Entry{Seq: 9, Time: time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC), Type: "x", Message: "\"\\\x00é",
		Fields: map[string]string{"k": "v", "": ""}, Prev: "00"}))
	f.Add([]byte(`{"seq":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := audit.ParseEntry(b)
		if err != nil {
			return
		}
		// Whatever parses is canonical: encoding it gives the same bytes.
		again, err := e.Canonical()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("parsed %q but encodes as %q, %v", b, again, err)
		}
	})
}
