package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Type names what happened. It is an alias of string so that callers
// holding their own event names (auth, signaling) pass them unchanged.
type Type = string

// Types of entries the platform writes. Callers may add others.
const (
	TypeSignIn              Type = "signin" // success or failure
	TypeLockout             Type = "lockout"
	TypeTOTPEnrolled        Type = "totp.enrolled"
	TypeTOTPReset           Type = "totp.reset"
	TypePasswordChanged     Type = "password.changed"
	TypePasswordReset       Type = "password.reset"
	TypeUserCreated         Type = "user.created"
	TypeUserActivated       Type = "user.activated" // the account's first password, set through its activation link
	TypeUserDisabled        Type = "user.disabled"
	TypeProfileChanged      Type = "user.profile.changed" // display name
	TypeSessionsRevoked     Type = "sessions.revoked"
	TypeSessionRequest      Type = "session.request"
	TypeSessionAccepted     Type = "session.accepted"
	TypeSessionAborted      Type = "session.aborted"
	TypeSessionEnded        Type = "session.ended"
	TypeDocumentShared      Type = "document.shared"
	TypeDocumentExpired     Type = "document.expired" // deleted by retention
	TypeLegalHoldSet        Type = "consult.legal_hold.set"
	TypeLegalHoldCleared    Type = "consult.legal_hold.cleared"
	TypeRecordingStarted    Type = "recording.started"
	TypeRecordingStopped    Type = "recording.stopped"
	TypeRecordingDownloaded Type = "recording.downloaded"
	TypeRecordingViewed     Type = "recording.viewed"
	TypeRecordingDeleted    Type = "recording.deleted"
	TypeRecordingExpired    Type = "recording.expired" // deleted by retention
	TypeAuditExported       Type = "audit.exported"
)

// Outcome says whether the recorded action succeeded. Like Type it is an
// alias of string for the callers that compute it.
type Outcome = string

// Outcomes.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
)

// Entry is one audit record.
type Entry struct {
	Seq       uint64    // 1-based, gapless
	Time      time.Time // UTC, never earlier than the previous entry's
	Type      Type
	Outcome   Outcome
	Requester string // user id or guest id
	Room      string // consult id, if any
	Message   string
	SourceIP  string
	UserAgent string
	Fields    map[string]string
	// Prev is the hex leaf hash of entry Seq-1 ("" for entry 1), so that a
	// removed, inserted or moved entry breaks the chain where it happened.
	Prev string
}

// timeLayout is RFC 3339 with all nine fractional digits: a fixed width,
// so one instant has exactly one spelling.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Canonical returns the entry's canonical JSON: the keys seq, time, type,
// outcome, requester, room, message, source_ip, user_agent, fields, prev in
// that order, every key present, fields sorted by key (byte order), no
// whitespace, time in UTC with nanoseconds, and strings escaped only where
// JSON requires it (", \ and control characters, in their shortest form).
// Strings must be valid UTF-8: a byte sequence with two readings could not
// be hashed unambiguously.
func (e Entry) Canonical() ([]byte, error) {
	t := e.Time.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return nil, fmt.Errorf("entry %d: time %v outside years 1 to 9999", e.Seq, e.Time)
	}
	var b bytes.Buffer
	b.Grow(256)
	b.WriteString(`{"seq":`)
	b.WriteString(strconv.FormatUint(e.Seq, 10))
	b.WriteString(`,"time":"`)
	b.WriteString(t.Format(timeLayout))
	b.WriteByte('"')
	for _, f := range [...]struct{ key, val string }{
		{"type", e.Type}, {"outcome", e.Outcome}, {"requester", e.Requester}, {"room", e.Room},
		{"message", e.Message}, {"source_ip", e.SourceIP}, {"user_agent", e.UserAgent},
	} {
		b.WriteString(`,"` + f.key + `":`)
		if err := writeString(&b, f.val); err != nil {
			return nil, fmt.Errorf("entry %d %s: %w", e.Seq, f.key, err)
		}
	}
	b.WriteString(`,"fields":`)
	if err := writeFields(&b, e.Fields); err != nil {
		return nil, fmt.Errorf("entry %d %w", e.Seq, err)
	}
	b.WriteString(`,"prev":`)
	if err := writeString(&b, e.Prev); err != nil {
		return nil, fmt.Errorf("entry %d prev: %w", e.Seq, err)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var errInvalidUTF8 = errors.New("not valid UTF-8")

// writeString writes s as a JSON string with the minimal escaping of
// RFC 8785: only the quote, the backslash and control characters.
// writeFields writes fields as a JSON object with its keys in order.
func writeFields(b *bytes.Buffer, fields map[string]string) error {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeString(b, k); err != nil {
			return fmt.Errorf("field name: %w", err)
		}
		b.WriteByte(':')
		if err := writeString(b, fields[k]); err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	b.WriteByte('}')
	return nil
}

func writeString(b *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return errInvalidUTF8
	}
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return nil
}

// wireEntry is the decoding side of Canonical.
type wireEntry struct {
	Seq       *uint64            `json:"seq"`
	Time      *string            `json:"time"`
	Type      *string            `json:"type"`
	Outcome   *string            `json:"outcome"`
	Requester *string            `json:"requester"`
	Room      *string            `json:"room"`
	Message   *string            `json:"message"`
	SourceIP  *string            `json:"source_ip"`
	UserAgent *string            `json:"user_agent"`
	Fields    *map[string]string `json:"fields"`
	Prev      *string            `json:"prev"`
}

// ErrNotCanonical reports bytes that are not the canonical encoding of an
// entry: some other spelling of one (spaces, key order, escapes, a
// duplicate or unknown key) or not an entry at all.
var ErrNotCanonical = errors.New("not a canonical audit entry")

// ParseEntry decodes canonical entry bytes. It accepts only the exact
// output of Canonical, so that what a person reads in the bytes is what
// their hash covers.
func ParseEntry(b []byte) (Entry, error) {
	var w wireEntry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if w.Seq == nil || w.Time == nil || w.Type == nil || w.Outcome == nil || w.Requester == nil || w.Room == nil ||
		w.Message == nil || w.SourceIP == nil || w.UserAgent == nil || w.Fields == nil || w.Prev == nil {
		return Entry{}, fmt.Errorf("%w: a key is missing or null", ErrNotCanonical)
	}
	t, err := time.Parse(timeLayout, *w.Time)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: time: %v", ErrNotCanonical, err)
	}
	e := Entry{Seq: *w.Seq, Time: t.UTC(), Type: *w.Type, Outcome: *w.Outcome, Requester: *w.Requester, Room: *w.Room,
		Message: *w.Message, SourceIP: *w.SourceIP, UserAgent: *w.UserAgent, Fields: *w.Fields, Prev: *w.Prev}
	// Re-encoding and comparing catches every other spelling at once:
	// whitespace, key order, escapes, duplicates, trailing bytes, a time
	// zone other than Z, and invalid UTF-8 (which decoding replaced).
	again, err := e.Canonical()
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if !bytes.Equal(again, b) {
		return Entry{}, ErrNotCanonical
	}
	return e, nil
}

// sanitize makes caller-supplied text encodable without failing: an audit
// record must not be lost because a user agent carried invalid UTF-8.
func sanitize(e Entry) Entry {
	clean := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	e.Type, e.Outcome, e.Requester, e.Room = clean(e.Type), clean(e.Outcome), clean(e.Requester), clean(e.Room)
	e.Message, e.SourceIP, e.UserAgent = clean(e.Message), clean(e.SourceIP), clean(e.UserAgent)
	if e.Fields != nil {
		fields := make(map[string]string, len(e.Fields))
		for k, v := range e.Fields {
			// Two invalid keys may collapse to one; the later value wins,
			// which is no worse than the caller's own ambiguity.
			fields[clean(k)] = clean(v)
		}
		e.Fields = fields
	}
	return e
}
