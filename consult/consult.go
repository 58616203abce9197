// Package consult owns the records of a consult: who owns it, its optional
// title, the links that let guests in (random, expiring, revocable, bound
// to one consult), the guests who used them with their consult-scoped
// sessions, and the chat, all sensitive fields sealed at rest.
package consult

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/store"
)

// Store is what consult records need from persistence.
type Store interface {
	CreateConsult(ctx context.Context, c store.Consult, l store.ConsultLink) error
	AddConsultLink(ctx context.Context, l store.ConsultLink) error
	ConsultByID(ctx context.Context, id string) (store.Consult, error)
	ConsultHostName(ctx context.Context, consultID string) (string, error)
	ConsultsOf(ctx context.Context, ownerID string, since time.Time) ([]store.Consult, error)
	EndConsult(ctx context.Context, id string, now time.Time) error
	RevokeConsultLink(ctx context.Context, consultID, linkID string, now time.Time) error
	ConsultLinks(ctx context.Context, consultID string) ([]store.ConsultLink, error)
	LinkByTokenHash(ctx context.Context, hash []byte) (store.ConsultLink, error)
	AddGuest(ctx context.Context, g store.Guest, s store.Session) error
	GuestByID(ctx context.Context, id string) (store.Guest, error)
	DenyGuest(ctx context.Context, guestID string, now time.Time) error
	DeviceDenials(ctx context.Context, linkID string, deviceHash []byte) (int, error)
	SessionByHash(ctx context.Context, hash []byte) (store.Session, error)
	AppendNextChat(ctx context.Context, consultID string, build func(seq int64) (store.ChatRow, error)) (store.ChatRow, error)
	ChatRows(ctx context.Context, consultID string) ([]store.ChatRow, error)
	ShareDocument(ctx context.Context, d store.Document, q store.DocumentQuota, build func(seq int64) (store.ChatRow, error)) (store.ChatRow, error)
	DocumentByID(ctx context.Context, consultID, id string) (store.Document, error)
	DocumentUsage(ctx context.Context, consultID string) (files int, bytes int64, err error)
	DocumentsToMove(ctx context.Context, limit int) ([]store.Document, error)
	MoveDocument(ctx context.Context, id, object string, keyEnc []byte) (bool, error)
}

// Sealer encrypts sensitive fields; aad binds a value to its place.
type Sealer interface {
	SealString(plain string, aad []byte) ([]byte, error)
	UnsealString(sealed []byte, aad []byte) (string, error)
}

// Labels say whom a link is for; they are roles, never names.
var Labels = []string{"patient", "interpreter", "family", "clinician", "guest"}

// Errors a page can show.
var (
	ErrLinkInvalid = errors.New("this link is not valid: it expired, was revoked, or the consult ended")
	ErrNotOwner    = errors.New("this consult belongs to another clinician")
	ErrEnded       = errors.New("the consult has ended")
	ErrBadInput    = errors.New("invalid input")
	// ErrDeviceRefused: the link refuses a device whose guests were denied
	// DenialLimit times.
	ErrDeviceRefused = errors.New("this link no longer admits this device")
)

// DefaultDenialLimit is how many denials of a device's guests make a link
// refuse that device when Service.DenialLimit is 0.
const DefaultDenialLimit = 3

// Service manages consult records.
type Service struct {
	Store   Store
	Sealer  Sealer
	Log     *slog.Logger
	Public  *url.URL
	LinkTTL time.Duration
	Now     func() time.Time
	// DenialLimit is how many times the guests of one device may be denied
	// or removed before the link refuses that device; 0 means
	// DefaultDenialLimit.
	DenialLimit int

	// Objects stores shared documents' content; Documents bounds them
	// (the zero value: DefaultDocumentLimits); Uploads limits how fast
	// each member shares (nil: no limit).
	Objects   Objects
	Documents DocumentLimits
	Uploads   *UploadLimiter
}

// View is a consult as its owner sees it.
type View struct {
	ID        string
	Title     string
	CreatedAt time.Time
	Ended     bool
	RelayOnly bool
	Links     []LinkView
}

// LinkView is one guest link as its owner sees it.
type LinkView struct {
	ID      string
	Label   string
	URL     string
	Expires time.Time
	Usable  bool
}

// Guest is the verified holder of a guest session.
type Guest struct {
	ID        string
	ConsultID string
	LinkID    string
	Name      string
	Expires   time.Time // when the guest session ends at the latest
}

// newToken returns a 256-bit link or session token and its hash.
func newToken() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("random token: %w", err)
	}
	t := base64.RawURLEncoding.EncodeToString(b)
	return t, hashToken(t), nil
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

func titleAAD(id string) []byte { return []byte("consults.title:" + id) }
func linkAAD(id string) []byte  { return []byte("consult_links.token:" + id) }
func guestAAD(id string) []byte { return []byte("guests.name:" + id) }

// chatAAD binds a chat column's value to its consult, position and column,
// so neither moving a message nor swapping its name and text opens.
func chatAAD(column, c string, seq int64) []byte {
	return fmt.Appendf(nil, "chat_messages.%s:%s:%d", column, c, seq)
}

// Create opens a consult owned by ownerID with its patient link.
func (s *Service) Create(ctx context.Context, ownerID, title string, relayOnly bool) (View, error) {
	title = strings.TrimSpace(title)
	if len(title) > 200 || !utf8.ValidString(title) {
		return View{}, fmt.Errorf("%w: the title is limited to 200 characters", ErrBadInput)
	}
	if err := checkVisible("title", title); err != nil {
		return View{}, err
	}
	id, err := ids.New("c")
	if err != nil {
		return View{}, err
	}
	var titleEnc []byte
	if title != "" {
		if titleEnc, err = s.Sealer.SealString(title, titleAAD(id)); err != nil {
			return View{}, fmt.Errorf("seal title: %w", err)
		}
	}
	now := s.Now()
	l, err := s.newLink(id, "patient", now)
	if err != nil {
		return View{}, err
	}
	if err := s.Store.CreateConsult(ctx, store.Consult{ID: id, OwnerID: ownerID, TitleEnc: titleEnc, RelayOnly: relayOnly, CreatedAt: now}, l); err != nil {
		return View{}, err
	}
	s.Log.Info("consult created", "consult", id, "owner", ownerID, "relay_only", relayOnly)
	return s.View(ctx, ownerID, id)
}

func (s *Service) newLink(consultID, label string, now time.Time) (store.ConsultLink, error) {
	if !slices.Contains(Labels, label) {
		return store.ConsultLink{}, fmt.Errorf("%w: unknown link label", ErrBadInput)
	}
	id, err := ids.New("l")
	if err != nil {
		return store.ConsultLink{}, err
	}
	token, hash, err := newToken()
	if err != nil {
		return store.ConsultLink{}, err
	}
	enc, err := s.Sealer.SealString(token, linkAAD(id))
	if err != nil {
		return store.ConsultLink{}, fmt.Errorf("seal link: %w", err)
	}
	return store.ConsultLink{ID: id, ConsultID: consultID, TokenHash: hash, TokenEnc: enc, Label: label, CreatedAt: now, ExpiresAt: now.Add(s.LinkTTL)}, nil
}

// owned returns the consult when ownerID owns it.
func (s *Service) owned(ctx context.Context, ownerID, id string) (store.Consult, error) {
	c, err := s.Store.ConsultByID(ctx, id)
	if err != nil {
		return store.Consult{}, err
	}
	if c.OwnerID != ownerID {
		return store.Consult{}, ErrNotOwner
	}
	return c, nil
}

// View returns one of the owner's consults with its links.
func (s *Service) View(ctx context.Context, ownerID, id string) (View, error) {
	c, err := s.owned(ctx, ownerID, id)
	if err != nil {
		return View{}, err
	}
	return s.view(ctx, c)
}

func (s *Service) view(ctx context.Context, c store.Consult) (View, error) {
	v := View{ID: c.ID, CreatedAt: c.CreatedAt, Ended: !c.EndedAt.IsZero(), RelayOnly: c.RelayOnly}
	if len(c.TitleEnc) > 0 {
		t, err := s.Sealer.UnsealString(c.TitleEnc, titleAAD(c.ID))
		if err != nil {
			return View{}, fmt.Errorf("unseal title of %s: %w", c.ID, err)
		}
		v.Title = t
	}
	links, err := s.Store.ConsultLinks(ctx, c.ID)
	if err != nil {
		return View{}, err
	}
	now := s.Now()
	for _, l := range links {
		token, err := s.Sealer.UnsealString(l.TokenEnc, linkAAD(l.ID))
		if err != nil {
			return View{}, fmt.Errorf("unseal link %s: %w", l.ID, err)
		}
		v.Links = append(v.Links, LinkView{ID: l.ID, Label: l.Label, URL: s.joinURL(token), Expires: l.ExpiresAt,
			Usable: l.RevokedAt.IsZero() && now.Before(l.ExpiresAt) && !v.Ended})
	}
	return v, nil
}

func (s *Service) joinURL(token string) string {
	u := *s.Public
	u.Path = "/j/" + token
	return u.String()
}

// List returns the owner's consults created since, newest first.
func (s *Service) List(ctx context.Context, ownerID string, since time.Time) ([]View, error) {
	cs, err := s.Store.ConsultsOf(ctx, ownerID, since)
	if err != nil {
		return nil, err
	}
	out := make([]View, 0, len(cs))
	for _, c := range cs {
		v, err := s.view(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// AddLink invites one more guest (interpreter, family member).
func (s *Service) AddLink(ctx context.Context, ownerID, consultID, label string) error {
	c, err := s.owned(ctx, ownerID, consultID)
	if err != nil {
		return err
	}
	if !c.EndedAt.IsZero() {
		return ErrEnded
	}
	l, err := s.newLink(consultID, label, s.Now())
	if err != nil {
		return err
	}
	return s.Store.AddConsultLink(ctx, l)
}

// RevokeLink makes a link unusable and ends the sessions of the guests who
// joined with it; the caller closes their live connections.
func (s *Service) RevokeLink(ctx context.Context, ownerID, consultID, linkID string) error {
	if _, err := s.owned(ctx, ownerID, consultID); err != nil {
		return err
	}
	return s.Store.RevokeConsultLink(ctx, consultID, linkID, s.Now())
}

// End marks the consult ended and revokes its links.
func (s *Service) End(ctx context.Context, ownerID, consultID string) error {
	if _, err := s.owned(ctx, ownerID, consultID); err != nil {
		return err
	}
	err := s.Store.EndConsult(ctx, consultID, s.Now())
	if errors.Is(err, store.ErrNotFound) {
		return ErrEnded
	}
	return err
}

// Finish marks the consult ended and revokes its links; a consult that had
// already ended is no error. It checks no owner: the live room calls it for
// its host (signaling.Records), and the site after checking ownership.
func (s *Service) Finish(ctx context.Context, consultID string) error {
	err := s.Store.EndConsult(ctx, consultID, s.Now())
	if errors.Is(err, store.ErrNotFound) {
		if _, err := s.Store.ConsultByID(ctx, consultID); err != nil {
			return err
		}
		return nil // already ended
	}
	return err
}

// Active returns the consult when it exists and has not ended.
func (s *Service) Active(ctx context.Context, id string) (store.Consult, error) {
	c, err := s.Store.ConsultByID(ctx, id)
	if err != nil {
		return store.Consult{}, err
	}
	if !c.EndedAt.IsZero() {
		return store.Consult{}, ErrEnded
	}
	return c, nil
}
