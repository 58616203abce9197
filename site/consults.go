package site

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"image/png"
	"net/http"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
)

// guestCookie carries a guest's consult-scoped session.
const guestCookie = "__Host-oc_guest"

// deviceCookie is a random id of the browser that joins with a link, so a
// link can refuse a device whose guests were denied too often. It names no
// one and lives a month.
const (
	deviceCookie    = "__Host-oc_device"
	deviceCookieAge = 30 * 24 * time.Hour
)

// Consults is what the site needs from consult records.
type Consults interface {
	Create(ctx context.Context, ownerID, title string, relayOnly bool) (consult.View, error)
	View(ctx context.Context, ownerID, id string) (consult.View, error)
	List(ctx context.Context, ownerID string, since time.Time) ([]consult.View, error)
	AddLink(ctx context.Context, ownerID, consultID, label string) error
	RevokeLink(ctx context.Context, ownerID, consultID, linkID string) error
	Active(ctx context.Context, id string) (store.Consult, error)
	CheckLink(ctx context.Context, token string) error
	JoinAsGuest(ctx context.Context, token, name, device string) (string, consult.Guest, error)
	GuestSession(ctx context.Context, token string) (consult.Guest, error)
	ChatHistory(ctx context.Context, consultID string) ([]signaling.ChatMessage, error)
}

// Signaling is what the site needs from the live rooms. Serve takes over
// an upgraded connection and returns without waiting for it to end.
type Signaling interface {
	Serve(ws *websocket.Conn, consultID string, p signaling.Participant)
	// EndConsult ends the consult's record and its live room in one path.
	EndConsult(ctx context.Context, consultID, by string) error
	// CloseLink takes the guests of a withdrawn link out of the live room.
	CloseLink(consultID, linkID string) int
}

type dashboardPage struct {
	Consults []consultCard
	Labels   []string
}

type consultCard struct {
	consult.View
	QR map[string]template.URL // link id -> PNG data URI made by the server
}

func qrDataURI(text string) (string, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return "", err
	}
	code, err = barcode.Scale(code, 200, 200)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, code); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func (s *Site) card(v consult.View) (consultCard, error) {
	c := consultCard{View: v, QR: map[string]template.URL{}}
	for _, l := range v.Links {
		if !l.Usable {
			continue
		}
		uri, err := qrDataURI(l.URL)
		if err != nil {
			return consultCard{}, err
		}
		c.QR[l.ID] = template.URL(uri)
	}
	return c, nil
}

// clinician wraps handlers for fully signed-in clinicians.
func (s *Site) clinician(h func(http.ResponseWriter, *http.Request, auth.Identity)) http.HandlerFunc {
	return s.requireStage(func(w http.ResponseWriter, r *http.Request, id auth.Identity) {
		if id.User.Role != "clinician" {
			s.render(w, r, http.StatusForbidden, "error", errorPage{"err.notallowed.title", "err.clinicians.text"})
			return
		}
		h(w, r, id)
	}, auth.StageFull)
}

func (s *Site) dashboard(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	now := s.opt.Now()
	since := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	views, err := s.opt.Consults.List(r.Context(), id.User.ID, since)
	if err != nil {
		s.internalError(w, r, "list consults", err)
		return
	}
	page := dashboardPage{Labels: consult.Labels[1:]}
	for _, v := range views {
		c, err := s.card(v)
		if err != nil {
			s.internalError(w, r, "qr code", err)
			return
		}
		page.Consults = append(page.Consults, c)
	}
	s.render(w, r, http.StatusOK, "dashboard", formPage{Data: page})
}

func (s *Site) consultCreate(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	relay := s.opt.RelayOnly || r.PostForm.Get("relay_only") == "on"
	v, err := s.opt.Consults.Create(r.Context(), id.User.ID, r.PostForm.Get("title"), relay)
	if inv := (*consult.InvisibleError)(nil); errors.As(err, &inv) {
		s.render(w, r, http.StatusUnprocessableEntity, "error", errorPage{"err.consult.notcreated", "err.consult.title.invisible"})
		return
	}
	if errors.Is(err, consult.ErrBadInput) {
		s.render(w, r, http.StatusUnprocessableEntity, "error", errorPage{"err.consult.notcreated", "err.consult.title.long"})
		return
	}
	if err != nil {
		s.internalError(w, r, "create consult", err)
		return
	}
	http.Redirect(w, r, "/consults/"+v.ID, http.StatusSeeOther)
}

// consultError maps consult errors to pages.
func (s *Site) consultError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, consult.ErrNotOwner):
		s.notFound(w, r)
	case errors.Is(err, consult.ErrEnded):
		s.render(w, r, http.StatusGone, "error", errorPage{"err.consult.ended.title", "err.consult.ended.text"})
	case errors.Is(err, consult.ErrBadInput):
		s.render(w, r, http.StatusUnprocessableEntity, "error", errorPage{"err.notpossible", "err.consult.label"})
	default:
		s.internalError(w, r, "consult", err)
	}
}

// HostNames names a consult's clinician to its patients: the display name,
// else the username.
type HostNames interface {
	LinkHostName(ctx context.Context, token string) (string, error)
	HostName(ctx context.Context, consultID string) (string, error)
}

// hostName is the clinician's name for the patient's pages, "" when none
// can be told; a failure only loses the name, never the page.
func (s *Site) hostName(r *http.Request, lookup func(HostNames) (string, error)) string {
	if s.opt.Hosts == nil {
		return ""
	}
	name, err := lookup(s.opt.Hosts)
	if err != nil {
		s.opt.Log.Warn("clinician name for the patient", "err", err)
		return ""
	}
	return name
}

// joinData is what the join page shows.
type joinData struct {
	Action string
	Host   string // the clinician's name, "" when unknown
}

func (s *Site) joinData(r *http.Request) joinData {
	token := r.PathValue("token")
	return joinData{Action: "/j/" + token, Host: s.hostName(r, func(h HostNames) (string, error) { return h.LinkHostName(r.Context(), token) })}
}

type callPage struct {
	HostName  string // for a guest: the clinician's name
	ConsultID string
	Host      bool
	Card      consultCard
	Labels    []string
}

func (s *Site) consultCall(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	v, err := s.opt.Consults.View(r.Context(), id.User.ID, r.PathValue("id"))
	if err != nil {
		s.consultError(w, r, err)
		return
	}
	if v.Ended {
		s.consultError(w, r, consult.ErrEnded)
		return
	}
	c, err := s.card(v)
	if err != nil {
		s.internalError(w, r, "qr code", err)
		return
	}
	s.render(w, r, http.StatusOK, "call", formPage{Data: callPage{ConsultID: v.ID, Host: true, Card: c, Labels: consult.Labels[1:]}})
}

// consultRecord shows the owner a consult's record, also after it ended:
// when, who was invited, and the chat.
func (s *Site) consultRecord(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	v, err := s.opt.Consults.View(r.Context(), id.User.ID, r.PathValue("id"))
	if err != nil {
		s.consultError(w, r, err)
		return
	}
	chat, err := s.opt.Consults.ChatHistory(r.Context(), v.ID)
	if err != nil {
		s.internalError(w, r, "chat history", err)
		return
	}
	var recs *recordingsPage
	if s.opt.Recordings != nil {
		list, err := s.opt.Recordings.List(r.Context(), v.ID)
		if err != nil {
			s.internalError(w, r, "list recordings", err)
			return
		}
		recs = &recordingsPage{ConsultID: v.ID, Recordings: recordingViews(list)}
	}
	s.render(w, r, http.StatusOK, "record", formPage{Data: struct {
		Consult    consult.View
		Chat       []signaling.ChatMessage
		Recordings *recordingsPage
	}{v, chat, recs}})
}

func (s *Site) consultAddLink(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	if err := s.opt.Consults.AddLink(r.Context(), id.User.ID, r.PathValue("id"), r.PostForm.Get("label")); err != nil {
		s.consultError(w, r, err)
		return
	}
	http.Redirect(w, r, "/consults/"+r.PathValue("id"), http.StatusSeeOther)
}

func (s *Site) consultRevokeLink(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if err := s.opt.Consults.RevokeLink(r.Context(), id.User.ID, r.PathValue("id"), r.PathValue("link")); err != nil {
		s.consultError(w, r, err)
		return
	}
	// The link's guest sessions ended with it; their open pages close now.
	s.opt.Signaling.CloseLink(r.PathValue("id"), r.PathValue("link"))
	http.Redirect(w, r, "/consults/"+r.PathValue("id"), http.StatusSeeOther)
}

func (s *Site) consultEnd(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	consultID := r.PathValue("id")
	v, err := s.opt.Consults.View(r.Context(), id.User.ID, consultID)
	if err == nil && v.Ended {
		err = consult.ErrEnded
	}
	if err != nil {
		s.consultError(w, r, err)
		return
	}
	// The same path as the host's end message in the call.
	if err := s.opt.Signaling.EndConsult(r.Context(), consultID, id.User.ID); err != nil {
		s.internalError(w, r, "end consult", err)
		return
	}
	http.Redirect(w, r, "/consults", http.StatusSeeOther)
}

func (s *Site) joinPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	err := s.opt.Consults.CheckLink(r.Context(), r.PathValue("token"))
	if errors.Is(err, consult.ErrLinkInvalid) {
		s.render(w, r, http.StatusGone, "error", errorPage{"err.link.gone.title", "err.link.gone.text"})
		return
	}
	if err != nil {
		s.internalError(w, r, "check link", err)
		return
	}
	s.render(w, r, http.StatusOK, "join", formPage{Data: s.joinData(r)})
}

// connectivity gives the join page short-lived relay credentials for its
// network check, so a patient learns before joining whether the call can
// connect. The credentials expire in two minutes and name no one.
func (s *Site) connectivity(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := s.opt.Consults.CheckLink(r.Context(), r.PathValue("token")); err != nil {
		http.Error(w, "link not valid", http.StatusGone)
		return
	}
	var servers []signaling.ICEServer
	if s.opt.ICE != nil {
		servers = s.opt.ICE("check", 2*time.Minute)
	}
	if servers == nil {
		servers = []signaling.ICEServer{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"iceServers": servers})
}

func (s *Site) joinSubmit(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.limited(w, r, limitJoin) || !s.readForm(w, r) {
		return
	}
	device, err := s.device(w, r)
	if err != nil {
		s.internalError(w, r, "device cookie", err)
		return
	}
	token, _, err := s.opt.Consults.JoinAsGuest(r.Context(), r.PathValue("token"), r.PostForm.Get("name"), device)
	switch {
	case errors.Is(err, consult.ErrDeviceRefused):
		s.render(w, r, http.StatusForbidden, "error", errorPage{"err.device.title", "err.device.text"})
	case errors.Is(err, consult.ErrLinkInvalid):
		s.render(w, r, http.StatusGone, "error", errorPage{"err.link.gone.title", "err.link.gone.text"})
	case errors.Is(err, consult.ErrBadInput):
		msg := s.text(r, "join.error.name")
		if inv := (*consult.InvisibleError)(nil); errors.As(err, &inv) {
			msg = s.text(r, "join.error.invisible")
		}
		s.render(w, r, http.StatusUnprocessableEntity, "join", formPage{Error: msg, Data: s.joinData(r)})
	case err != nil:
		s.internalError(w, r, "join", err)
	default:
		http.SetCookie(w, &http.Cookie{Name: guestCookie, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		mode := ""
		if r.PostForm.Get("audio_only") == "on" {
			mode = "?audio=only"
		}
		http.Redirect(w, r, "/call"+mode, http.StatusSeeOther)
	}
}

func (s *Site) guestCall(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	c, err := r.Cookie(guestCookie)
	if err != nil {
		s.render(w, r, http.StatusUnauthorized, "error", errorPage{"err.guest.reopen.title", "err.guest.reopen.text"})
		return
	}
	g, err := s.opt.Consults.GuestSession(r.Context(), c.Value)
	if errors.Is(err, consult.ErrLinkInvalid) || errors.Is(err, consult.ErrEnded) {
		s.render(w, r, http.StatusGone, "error", errorPage{"err.consultation.ended.title", "err.consultation.ended.text"})
		return
	}
	if err != nil {
		s.internalError(w, r, "guest session", err)
		return
	}
	host := s.hostName(r, func(h HostNames) (string, error) { return h.HostName(r.Context(), g.ConsultID) })
	s.render(w, r, http.StatusOK, "call", formPage{Data: callPage{ConsultID: g.ConsultID, HostName: host}})
}

// websocket upgrades a tab of the consult's owner (as host) or of a guest
// of that consult; anyone else is refused before the upgrade. Signaling
// takes the connection over and the handler returns, which releases the
// request, its buffers and the goroutine that served it.
func (s *Site) websocket(w http.ResponseWriter, r *http.Request) {
	consultID := r.PathValue("id")
	p, ok, err := s.participant(r, consultID)
	if err != nil {
		s.opt.Log.Error("websocket identity", "consult", consultID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if !ok {
		http.Error(w, "not a participant of this consult", http.StatusForbidden)
		return
	}
	ws, err := s.opt.Upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered (bad origin, not a WebSocket)
	}
	s.opt.Signaling.Serve(ws, consultID, p)
}

func (s *Site) participant(r *http.Request, consultID string) (signaling.Participant, bool, error) {
	if c, err := r.Cookie(guestCookie); err == nil {
		g, err := s.opt.Consults.GuestSession(r.Context(), c.Value)
		if err == nil && g.ConsultID == consultID {
			check := signaling.CheckResult(r.URL.Query().Get("check"))
			return signaling.Participant{ID: g.ID, Name: g.Name, Kind: "guest", Link: g.LinkID, Check: check, NoMic: r.URL.Query().Get("mic") == "none",
				Session: guestSession{consults: s.opt.Consults, token: c.Value, guestID: g.ID}}, true, nil
		}
		if err != nil && !errors.Is(err, consult.ErrLinkInvalid) && !errors.Is(err, consult.ErrEnded) {
			return signaling.Participant{}, false, err
		}
	}
	id, ok, err := s.identity(r)
	if err != nil || !ok || !id.Full() || id.User.Role != "clinician" {
		return signaling.Participant{}, false, err
	}
	if _, err := s.opt.Consults.View(r.Context(), id.User.ID, consultID); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, consult.ErrNotOwner) {
			return signaling.Participant{}, false, nil
		}
		return signaling.Participant{}, false, err
	}
	if _, err := s.opt.Consults.Active(r.Context(), consultID); err != nil {
		return signaling.Participant{}, false, nil
	}
	name := id.User.DisplayName // what patients see of the clinician
	if name == "" {
		name = id.User.Username
	}
	return signaling.Participant{ID: id.User.ID, Name: name, Kind: "clinician", Host: true,
		Session: staffSession{accounts: s.opt.Accounts, token: sessionToken(r), userID: id.User.ID}}, true, nil
}
