package consult

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
)

// GuestSessionMaxAge bounds a guest session even when its link lives longer.
const GuestSessionMaxAge = 12 * time.Hour

// link returns the usable link behind token.
func (s *Service) link(ctx context.Context, token string) (store.ConsultLink, error) {
	if len(token) < 22 || len(token) > 64 {
		return store.ConsultLink{}, ErrLinkInvalid
	}
	l, err := s.Store.LinkByTokenHash(ctx, hashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return store.ConsultLink{}, ErrLinkInvalid
	}
	if err != nil {
		return store.ConsultLink{}, err
	}
	if !l.RevokedAt.IsZero() || !s.Now().Before(l.ExpiresAt) {
		return store.ConsultLink{}, ErrLinkInvalid
	}
	if _, err := s.Active(ctx, l.ConsultID); err != nil {
		if errors.Is(err, ErrEnded) {
			return store.ConsultLink{}, ErrLinkInvalid
		}
		return store.ConsultLink{}, err
	}
	return l, nil
}

// CheckLink reports whether a guest link can be used now.
func (s *Service) CheckLink(ctx context.Context, token string) error {
	_, err := s.link(ctx, token)
	return err
}

// LinkHostName is the name the clinician of the consult a usable link
// opens shows to patients: their display name, else their username.
func (s *Service) LinkHostName(ctx context.Context, token string) (string, error) {
	l, err := s.link(ctx, token)
	if err != nil {
		return "", err
	}
	return s.Store.ConsultHostName(ctx, l.ConsultID)
}

// HostName is the name the clinician of a consult shows to patients.
func (s *Service) HostName(ctx context.Context, consultID string) (string, error) {
	return s.Store.ConsultHostName(ctx, consultID)
}

// CleanName validates a display name typed by a guest.
func CleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > signaling.MaxNameBytes || !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: enter a name of 1 to %d characters", ErrBadInput, signaling.MaxNameBytes)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("%w: the name contains control characters", ErrBadInput)
		}
	}
	if err := checkVisible("name", name); err != nil {
		return "", err
	}
	return name, nil
}

// NewDeviceID returns a random identifier for a browser's device cookie.
func NewDeviceID() (string, error) {
	t, _, err := newToken()
	return t, err
}

// deviceHash hashes a device cookie; a missing or implausible one is nil.
func deviceHash(device string) []byte {
	if len(device) < 22 || len(device) > 64 {
		return nil
	}
	return hashToken("device:" + device)
}

// JoinAsGuest redeems a link with a display name: it records the guest and
// returns a session token scoped to that one consult. A link stays usable
// until it expires or is revoked, so a patient can rejoin from another
// device; each join is a separate guest the clinician admits. device is the
// browser's device cookie: once the guests of that device were denied
// DenialLimit times, the link refuses it (ErrDeviceRefused).
func (s *Service) JoinAsGuest(ctx context.Context, token, name, device string) (sessionToken string, g Guest, err error) {
	l, err := s.link(ctx, token)
	if err != nil {
		return "", Guest{}, err
	}
	if name, err = CleanName(name); err != nil {
		return "", Guest{}, err
	}
	dev := deviceHash(device)
	if dev != nil {
		n, err := s.Store.DeviceDenials(ctx, l.ID, dev)
		if err != nil {
			return "", Guest{}, err
		}
		if n >= s.denialLimit() {
			s.Log.Info("link refused a device denied before", "consult", l.ConsultID, "link", l.ID, "denials", n)
			return "", Guest{}, ErrDeviceRefused
		}
	}
	id, err := ids.New("g")
	if err != nil {
		return "", Guest{}, err
	}
	nameEnc, err := s.Sealer.SealString(name, guestAAD(id))
	if err != nil {
		return "", Guest{}, fmt.Errorf("seal name: %w", err)
	}
	sessionToken, hash, err := newToken()
	if err != nil {
		return "", Guest{}, err
	}
	now := s.Now()
	expires := l.ExpiresAt
	if max := now.Add(GuestSessionMaxAge); max.Before(expires) {
		expires = max
	}
	sess := store.Session{IDHash: hash, GuestID: id, ConsultID: l.ConsultID, Stage: "guest", CreatedAt: now, LastSeenAt: now, ExpiresAt: expires}
	if err := s.Store.AddGuest(ctx, store.Guest{ID: id, ConsultID: l.ConsultID, LinkID: l.ID, NameEnc: nameEnc, CreatedAt: now, DeviceHash: dev}, sess); err != nil {
		return "", Guest{}, err
	}
	s.Log.Info("guest joined through a link", "consult", l.ConsultID, "guest", id, "link", l.ID)
	return sessionToken, Guest{ID: id, ConsultID: l.ConsultID, LinkID: l.ID, Name: name, Expires: expires}, nil
}

func (s *Service) denialLimit() int {
	if s.DenialLimit > 0 {
		return s.DenialLimit
	}
	return DefaultDenialLimit
}

// DenyGuest records that the host denied or removed a guest of the
// consult and ends the guest's session, so it cannot knock again
// (signaling.Guests).
func (s *Service) DenyGuest(ctx context.Context, consultID, guestID string) error {
	g, err := s.Store.GuestByID(ctx, guestID)
	if err != nil {
		return fmt.Errorf("deny guest %s: %w", guestID, err)
	}
	if g.ConsultID != consultID {
		return fmt.Errorf("deny guest %s: not a guest of %s", guestID, consultID)
	}
	if err := s.Store.DenyGuest(ctx, guestID, s.Now()); err != nil {
		return fmt.Errorf("deny guest %s: %w", guestID, err)
	}
	return nil
}

// GuestSession returns the guest behind a session token, if the session is
// live and its consult has not ended.
func (s *Service) GuestSession(ctx context.Context, token string) (Guest, error) {
	if token == "" {
		return Guest{}, ErrLinkInvalid
	}
	sess, err := s.Store.SessionByHash(ctx, hashToken(token))
	if errors.Is(err, store.ErrNotFound) || err == nil && (sess.GuestID == "" || !s.Now().Before(sess.ExpiresAt)) {
		return Guest{}, ErrLinkInvalid
	}
	if err != nil {
		return Guest{}, err
	}
	if _, err := s.Active(ctx, sess.ConsultID); err != nil {
		return Guest{}, err
	}
	g, err := s.Store.GuestByID(ctx, sess.GuestID)
	if err != nil {
		return Guest{}, err
	}
	name, err := s.Sealer.UnsealString(g.NameEnc, guestAAD(g.ID))
	if err != nil {
		return Guest{}, fmt.Errorf("unseal guest name: %w", err)
	}
	return Guest{ID: g.ID, ConsultID: g.ConsultID, LinkID: g.LinkID, Name: name, Expires: sess.ExpiresAt}, nil
}

// AppendChat seals and stores a chat message (signaling.ChatLog). The
// sequence number is part of the sealing context, so a message cannot be
// moved to another place in the log; the store hands out the number and
// keeps appends from every process in order.
func (s *Service) AppendChat(ctx context.Context, consultID string, m signaling.ChatMessage) (signaling.ChatMessage, error) {
	now := s.Now().UTC().Truncate(time.Millisecond)
	row, err := s.Store.AppendNextChat(ctx, consultID, func(seq int64) (store.ChatRow, error) {
		return s.sealChat(consultID, seq, m.From, m.Name, m.Text, now)
	})
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	m.Seq, m.At = row.Seq, now
	return m, nil
}

// sealChat makes the stored form of message seq of a consult.
func (s *Service) sealChat(consultID string, seq int64, from, name, text string, at time.Time) (store.ChatRow, error) {
	nameEnc, err := s.Sealer.SealString(name, chatAAD("name", consultID, seq))
	if err != nil {
		return store.ChatRow{}, err
	}
	textEnc, err := s.Sealer.SealString(text, chatAAD("text", consultID, seq))
	if err != nil {
		return store.ChatRow{}, err
	}
	return store.ChatRow{ConsultID: consultID, Seq: seq, MemberID: from, NameEnc: nameEnc, TextEnc: textEnc, CreatedAt: at}, nil
}

// ChatHistory unseals a consult's chat (signaling.ChatLog).
func (s *Service) ChatHistory(ctx context.Context, consultID string) ([]signaling.ChatMessage, error) {
	rows, err := s.Store.ChatRows(ctx, consultID)
	if err != nil {
		return nil, err
	}
	out := make([]signaling.ChatMessage, 0, len(rows))
	for _, r := range rows {
		name, err := s.Sealer.UnsealString(r.NameEnc, chatAAD("name", consultID, r.Seq))
		if err != nil {
			return nil, fmt.Errorf("unseal chat %s/%d: %w", consultID, r.Seq, err)
		}
		text, err := s.Sealer.UnsealString(r.TextEnc, chatAAD("text", consultID, r.Seq))
		if err != nil {
			return nil, fmt.Errorf("unseal chat %s/%d: %w", consultID, r.Seq, err)
		}
		m := signaling.ChatMessage{Seq: r.Seq, From: r.MemberID, Name: name, Text: text, At: r.CreatedAt}
		if r.DocumentID != "" {
			docName, err := s.Sealer.UnsealString(r.DocNameEnc, docNameAAD(r.DocumentID))
			if err != nil {
				return nil, fmt.Errorf("unseal document name %s: %w", r.DocumentID, err)
			}
			m.File = &signaling.FileInfo{ID: r.DocumentID, Name: docName, Type: r.DocType, Size: r.DocSize}
		}
		out = append(out, m)
	}
	return out, nil
}
