package site

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
)

// The fakes below stand in for the services the site consumes, keeping
// their contracts (consult.Service answers ErrNotOwner for another owner's
// consult, ErrEnded for an ended one, ErrLinkInvalid for an unknown guest
// token; auth.Service answers ErrNoSession without a session), so the
// site's own access decisions are what the tests exercise.

// Session cookies of the cast.
const (
	sessAlice      = "session-alice"       // clinician, owns the live and the ended consult
	sessBob        = "session-bob"         // another clinician
	sessAdmin      = "session-admin"       // administrator
	sessAliceCode  = "session-alice-code"  // Alice, password given, code pending
	sessAliceEnrol = "session-alice-enrol" // Alice, must enroll a second factor first
	sessCarol      = "session-carol"       // clinician forced to change her password
)

// Guest cookies.
const (
	guestLive   = "guest-live"   // admitted guest of the live consult
	guestLobby  = "guest-lobby"  // guest of the live consult still in the lobby
	guestOther  = "guest-other"  // admitted guest of Bob's consult
	guestEnded  = "guest-ended"  // guest of the ended consult
	guestBogus  = "guest-bogus"  // a token that names no guest
	linkLive    = "link-live"    // usable join link of the live consult
	linkRevoked = "link-revoked" // revoked join link
)

// Consults and documents.
const (
	consultLive  = "c-live"  // Alice's, running
	consultEnded = "c-ended" // Alice's, ended
	consultOther = "c-other" // Bob's, running
	docLive      = "d-live"  // shared in c-live
	docEnded     = "d-ended" // shared in c-ended
	docOther     = "d-other" // shared in c-other
)

func user(id, name, role string) store.User {
	return store.User{ID: id, Username: name, Role: role, TOTPEnabledAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

var (
	alice = user("u-alice", "alice", "clinician")
	bob   = user("u-bob", "bob", "clinician")
	admin = user("u-admin", "chief", "admin")
	carol = user("u-carol", "carol", "clinician")
)

type fakeAccounts struct {
	Accounts // methods no test reaches panic
	sessions map[string]auth.Identity

	mu    sync.Mutex
	calls []string // state-changing calls made
}

func (a *fakeAccounts) record(call string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call)
}

func (a *fakeAccounts) made() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

func (a *fakeAccounts) Session(_ context.Context, token string) (auth.Identity, error) {
	if id, ok := a.sessions[token]; ok {
		return id, nil
	}
	return auth.Identity{}, auth.ErrNoSession
}

func (a *fakeAccounts) VerifySecondFactor(_ context.Context, id auth.Identity, _ string, _ auth.Client) (string, string, error) {
	a.record("verify " + id.User.ID)
	return sessAlice, auth.StageFull, nil
}

func (a *fakeAccounts) BeginEnrollment(context.Context, auth.Identity) (auth.Enrollment, error) {
	return auth.Enrollment{Secret: "JBSWY3DPEHPK3PXP", QRData: "data:image/png;base64,"}, nil
}

func (a *fakeAccounts) RecoveryCodesLeft(context.Context, auth.Identity) (int, error) { return 10, nil }

func (a *fakeAccounts) SignOut(_ context.Context, token string) error {
	a.record("signout")
	return nil
}

func (a *fakeAccounts) SignOutEverywhere(_ context.Context, id auth.Identity, _ auth.Client) error {
	a.record("signout everywhere " + id.User.ID)
	return nil
}

func (a *fakeAccounts) Users(_ context.Context, id auth.Identity) ([]auth.UserSummary, error) {
	if !id.IsAdmin() {
		return nil, auth.ErrForbidden
	}
	return []auth.UserSummary{{ID: alice.ID, Username: alice.Username, Role: alice.Role, Active: true}}, nil
}

func (a *fakeAccounts) CreateUser(_ context.Context, id auth.Identity, username, role, _ string, _ auth.Client) (store.User, error) {
	if !id.IsAdmin() {
		return store.User{}, auth.ErrForbidden
	}
	a.record("create " + username)
	return store.User{ID: "u-new", Username: username, Role: role}, nil
}

func (a *fakeAccounts) Apply(_ context.Context, id auth.Identity, userID string, action auth.AdminAction, _ auth.Client) error {
	if !id.IsAdmin() {
		return auth.ErrForbidden
	}
	a.record(fmt.Sprintf("apply %v to %s", action, userID))
	return nil
}

func (a *fakeAccounts) SetDisplayName(_ context.Context, actor auth.Identity, userID, name string, _ auth.Client) error {
	if !actor.Full() || actor.User.ID != userID && !actor.IsAdmin() {
		return auth.ErrForbidden
	}
	if _, err := auth.CleanDisplayName(name); err != nil {
		return err
	}
	a.record("display-name " + userID + " " + name)
	return nil
}

func (a *fakeAccounts) Policy() auth.Policy { return auth.DefaultPolicy }

// Password links: each token works for one purpose only.
const (
	resetLink    = "reset-link"
	activateLink = "activate-link"
	setupLink    = "setup-link"
)

var linkPurpose = map[string]string{resetLink: auth.PurposeReset, activateLink: auth.PurposeActivate}

func (a *fakeAccounts) LinkUsable(_ context.Context, token, purpose string) (bool, error) {
	return linkPurpose[token] == purpose, nil
}

func (a *fakeAccounts) SetPasswordWithLink(_ context.Context, token, purpose, _ string, _ auth.Client) error {
	if linkPurpose[token] != purpose {
		return auth.ErrLinkInvalid
	}
	a.record("password set with " + purpose + " link")
	return nil
}

// fakeSetup accepts its one link.
type fakeSetup struct{ accounts *fakeAccounts }

func (s fakeSetup) Usable(_ context.Context, token string) (bool, error) {
	return token == setupLink, nil
}

func (s fakeSetup) Complete(_ context.Context, token, username, _ string) (store.User, error) {
	if token != setupLink {
		return store.User{}, auth.ErrSetupClosed
	}
	s.accounts.record("first administrator " + username)
	return store.User{ID: "u-first", Username: username, Role: "admin"}, nil
}

type fakeConsult struct {
	owner string
	ended bool
}

type fakeConsults struct {
	consults map[string]fakeConsult
	guests   map[string]consult.Guest // guest token -> guest
	links    map[string]string        // usable join link token -> consult

	mu    sync.Mutex
	calls []string
}

func (c *fakeConsults) record(call string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call)
}

func (c *fakeConsults) made() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func (c *fakeConsults) owned(ownerID, id string) (fakeConsult, error) {
	fc, ok := c.consults[id]
	if !ok {
		return fakeConsult{}, store.ErrNotFound
	}
	if fc.owner != ownerID {
		return fakeConsult{}, consult.ErrNotOwner
	}
	return fc, nil
}

func (c *fakeConsults) Create(_ context.Context, ownerID, title string, _ bool) (consult.View, error) {
	c.record("create by " + ownerID)
	return consult.View{ID: "c-new", Title: title}, nil
}

func (c *fakeConsults) View(_ context.Context, ownerID, id string) (consult.View, error) {
	fc, err := c.owned(ownerID, id)
	if err != nil {
		return consult.View{}, err
	}
	return consult.View{ID: id, Title: "Follow-up", Ended: fc.ended, Links: []consult.LinkView{
		{ID: "l1", Label: "Patient", URL: "https://consult.example.org/j/" + linkLive, Usable: !fc.ended},
	}}, nil
}

func (c *fakeConsults) List(_ context.Context, ownerID string, _ time.Time) ([]consult.View, error) {
	var out []consult.View
	for id, fc := range c.consults {
		if fc.owner == ownerID {
			out = append(out, consult.View{ID: id, Ended: fc.ended})
		}
	}
	return out, nil
}

func (c *fakeConsults) AddLink(_ context.Context, ownerID, consultID, _ string) error {
	fc, err := c.owned(ownerID, consultID)
	if err != nil {
		return err
	}
	if fc.ended {
		return consult.ErrEnded
	}
	c.record("add link to " + consultID)
	return nil
}

func (c *fakeConsults) RevokeLink(_ context.Context, ownerID, consultID, linkID string) error {
	if _, err := c.owned(ownerID, consultID); err != nil {
		return err
	}
	c.record("revoke " + linkID + " of " + consultID)
	return nil
}

func (c *fakeConsults) Active(_ context.Context, id string) (store.Consult, error) {
	fc, ok := c.consults[id]
	if !ok {
		return store.Consult{}, store.ErrNotFound
	}
	if fc.ended {
		return store.Consult{}, consult.ErrEnded
	}
	return store.Consult{ID: id, OwnerID: fc.owner}, nil
}

func (c *fakeConsults) CheckLink(_ context.Context, token string) error {
	if _, ok := c.links[token]; !ok {
		return consult.ErrLinkInvalid
	}
	return nil
}

func (c *fakeConsults) JoinAsGuest(_ context.Context, token, name, _ string) (string, consult.Guest, error) {
	consultID, ok := c.links[token]
	if !ok {
		return "", consult.Guest{}, consult.ErrLinkInvalid
	}
	if name == "" {
		return "", consult.Guest{}, consult.ErrBadInput
	}
	c.record("join " + consultID)
	return guestLobby, consult.Guest{ID: "g-new", ConsultID: consultID, Name: name}, nil
}

func (c *fakeConsults) GuestSession(ctx context.Context, token string) (consult.Guest, error) {
	g, ok := c.guests[token]
	if !ok {
		return consult.Guest{}, consult.ErrLinkInvalid
	}
	if _, err := c.Active(ctx, g.ConsultID); err != nil {
		return consult.Guest{}, err
	}
	return g, nil
}

func (c *fakeConsults) ChatHistory(context.Context, string) ([]signaling.ChatMessage, error) {
	return []signaling.ChatMessage{{Seq: 1, From: "g1", Name: "Pat", Text: "hello"}}, nil
}

// fakeDocuments holds documents by consult; a document is found only in
// the consult it was shared in, as store.DocumentByID does.
type fakeDocuments struct {
	docs map[string]string // document id -> consult id

	mu     sync.Mutex
	shared []string
}

func (d *fakeDocuments) ShareDocument(_ context.Context, consultID, fromID, _, fileName string, content io.Reader) (signaling.ChatMessage, error) {
	n, err := io.Copy(io.Discard, content)
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.shared = append(d.shared, consultID+" by "+fromID)
	return signaling.ChatMessage{From: fromID, File: &signaling.FileInfo{ID: "d-new", Name: fileName, Type: "application/pdf", Size: n}}, nil
}

func (d *fakeDocuments) made() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.shared...)
}

func (d *fakeDocuments) OpenDocument(_ context.Context, consultID, id string) (consult.OpenedDocument, error) {
	if d.docs[id] != consultID {
		return consult.OpenedDocument{}, store.ErrNotFound
	}
	content := []byte("%PDF-1.7 " + id)
	return consult.OpenedDocument{Name: "scan.pdf", Type: "application/pdf", Size: int64(len(content)),
		Content: nopCloser{bytes.NewReader(content)}}, nil
}

// nopCloser is a document's content that needs no closing.
type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// fakeRooms knows who is admitted where.
type fakeRooms struct {
	admitted map[string]bool // consult id + "/" + member id
}

func (r *fakeRooms) Admitted(consultID, memberID string) bool {
	return r.admitted[consultID+"/"+memberID]
}
func (r *fakeRooms) Announce(string, signaling.ChatMessage) {}

type fakeDocAudit struct{}

func (fakeDocAudit) RecordSession(context.Context, string, string, string, string, map[string]string) error {
	return nil
}

// fakeSignaling records who was let into which room and greets them.
type fakeSignaling struct {
	mu     sync.Mutex
	joined []string
	ended  []string
}

func (s *fakeSignaling) Serve(ws *websocket.Conn, consultID string, p signaling.Participant) {
	s.mu.Lock()
	s.joined = append(s.joined, fmt.Sprintf("%s %s %s host=%v", consultID, p.Kind, p.ID, p.Host))
	s.mu.Unlock()
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome"}`))
	_ = ws.Close()
}

func (s *fakeSignaling) EndConsult(_ context.Context, consultID, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = append(s.ended, consultID+" by "+by)
	return nil
}

func (s *fakeSignaling) CloseLink(consultID, linkID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = append(s.ended, "link "+linkID+" of "+consultID+" closed")
	return 0
}

func (s *fakeSignaling) made() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(append([]string(nil), s.joined...), s.ended...)
}

type fakeAudit struct{}

func (fakeAudit) Entries(context.Context, audit.Filter, int) ([]audit.Entry, error) { return nil, nil }
func (fakeAudit) Export(_ context.Context, w io.Writer, _ audit.Filter, _, _ string) error {
	_, err := io.WriteString(w, "[]")
	return err
}
func (fakeAudit) Verify(context.Context) (audit.Report, error) { return audit.Report{OK: true}, nil }
func (fakeAudit) VerifierKey() string                          { return "ed25519:key" }

// world is a site over the fakes, with the cast above.
type world struct {
	site      *Site
	handler   http.Handler
	accounts  *fakeAccounts
	consults  *fakeConsults
	docs      *fakeDocuments
	signaling *fakeSignaling
}

// newWorld builds the site; public is the origin WebSocket upgrades must
// come from.
func newWorld(t *testing.T, public *url.URL) *world {
	t.Helper()
	full := func(u store.User) auth.Identity { return auth.Identity{User: u, Stage: auth.StageFull} }
	w := &world{
		accounts: &fakeAccounts{sessions: map[string]auth.Identity{
			sessAlice:      full(alice),
			sessBob:        full(bob),
			sessAdmin:      full(admin),
			sessAliceCode:  {User: alice, Stage: auth.StageSecondFactor},
			sessAliceEnrol: {User: alice, Stage: auth.StageEnroll},
			sessCarol:      {User: carol, Stage: auth.StageChange},
		}},
		consults: &fakeConsults{
			consults: map[string]fakeConsult{
				consultLive:  {owner: alice.ID},
				consultEnded: {owner: alice.ID, ended: true},
				consultOther: {owner: bob.ID},
			},
			guests: map[string]consult.Guest{
				guestLive:  {ID: "g-live", ConsultID: consultLive, Name: "Pat"},
				guestLobby: {ID: "g-lobby", ConsultID: consultLive, Name: "Sam"},
				guestOther: {ID: "g-other", ConsultID: consultOther, Name: "Kim"},
				guestEnded: {ID: "g-ended", ConsultID: consultEnded, Name: "Lee"},
			},
			links: map[string]string{linkLive: consultLive},
		},
		docs:      &fakeDocuments{docs: map[string]string{docLive: consultLive, docEnded: consultEnded, docOther: consultOther}},
		signaling: &fakeSignaling{},
	}
	rooms := &fakeRooms{admitted: map[string]bool{
		consultLive + "/" + alice.ID:   true,
		consultLive + "/g-live":        true,
		consultOther + "/" + bob.ID:    true,
		consultOther + "/g-other":      true,
		consultEnded + "/" + "g-ended": true, // still listed; the consult's end must refuse anyway
	}}
	log := slog.New(slog.DiscardHandler)
	s, err := New(Options{
		Log: log, Health: obs.NewHealth(log, time.Second), Metrics: obs.NewHTTPMetrics(obs.NewRegistry(), "site"),
		Setup: fakeSetup{w.accounts}, Accounts: w.accounts, Consults: w.consults, Audit: fakeAudit{}, Documents: w.docs, Rooms: rooms,
		DocAudit: fakeDocAudit{}, Signaling: w.signaling, Upgrader: signaling.Upgrader(public),
		Now: func() time.Time { return time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) }, PasswordLo: 12, PasswordHi: 128,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.site, w.handler = s, s.Handler()
	return w
}

// sideEffects lists every state-changing call the fakes received.
func (w *world) sideEffects() []string {
	var out []string
	out = append(out, w.accounts.made()...)
	out = append(out, w.consults.made()...)
	out = append(out, w.docs.made()...)
	out = append(out, w.signaling.made()...)
	return out
}
