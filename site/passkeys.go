package site

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/store"
)

// Passkeys is what the site needs from the passkey service.
type Passkeys interface {
	List(ctx context.Context, id auth.Identity) ([]auth.PasskeyInfo, error)
	Has(ctx context.Context, userID string) (bool, error)
	BeginRegistration(ctx context.Context, id auth.Identity) ([]byte, error)
	FinishRegistration(ctx context.Context, id auth.Identity, name string, response []byte, c auth.Client) (auth.PasskeyInfo, error)
	Rename(ctx context.Context, id auth.Identity, passkeyID, name string, c auth.Client) error
	Remove(ctx context.Context, id auth.Identity, passkeyID string, c auth.Client) error
	BeginSignIn(ctx context.Context, id auth.Identity) ([]byte, error)
	FinishSignIn(ctx context.Context, id auth.Identity, response []byte, c auth.Client) (token, stage string, err error)
	RemoveAll(ctx context.Context, admin auth.Identity, userID string, c auth.Client) (int, error)
	PasswordlessOn() bool
	VerifyCode(ctx context.Context, id auth.Identity, code string, c auth.Client) (token, stage string, err error)
	AdminNeedsPasskey(ctx context.Context, id auth.Identity) (bool, error)
	BeginPasswordless(ctx context.Context) (options []byte, ceremonyToken string, err error)
	FinishPasswordless(ctx context.Context, ceremonyToken string, response []byte, c auth.Client) (token, stage string, err error)
}

// jsonRaw sends bytes that are JSON already.
func jsonRaw(b []byte) json.RawMessage { return json.RawMessage(b) }

// maxPasskeyBytes bounds a WebAuthn answer: a few hundred bytes of client
// data and authenticator data, plus an attestation certificate chain.
const maxPasskeyBytes = 64 << 10

// passkeyRoutes adds the passkey pages and their JSON endpoints.
func (s *Site) passkeyRoutes(mux *http.ServeMux) {
	if s.opt.Passkeys == nil {
		return
	}
	mux.HandleFunc("GET /account/passkeys", s.requireStage(s.passkeysPage, auth.StageFull))
	mux.HandleFunc("POST /account/passkeys/options", s.requireStage(s.passkeyRegisterOptions, auth.StageFull))
	mux.HandleFunc("POST /account/passkeys", s.requireStage(s.passkeyRegister, auth.StageFull))
	mux.HandleFunc("POST /account/passkeys/{id}/rename", s.requireStage(s.passkeyRename, auth.StageFull))
	mux.HandleFunc("POST /account/passkeys/{id}/remove", s.requireStage(s.passkeyRemove, auth.StageFull))
	mux.HandleFunc("POST /signin/passkey/options", s.requireStage(s.passkeySignInOptions, auth.StageSecondFactor))
	mux.HandleFunc("POST /signin/passkey", s.requireStage(s.passkeySignIn, auth.StageSecondFactor))
	mux.HandleFunc("POST /admin/users/{id}/passkeys/remove", s.requireAdmin(s.passkeysRemoveAll))
	s.passwordlessRoutes(mux)
}

// hasPasskeys tells the code page whether to offer a passkey.
func (s *Site) hasPasskeys(r *http.Request, id auth.Identity) bool {
	if s.opt.Passkeys == nil {
		return false
	}
	has, err := s.opt.Passkeys.Has(r.Context(), id.User.ID)
	if err != nil {
		s.opt.Log.Warn("passkeys unreadable", "user", id.User.ID, "err", err)
	}
	return has
}

// verifyCode checks a second-factor code, through the passkey rule for
// administrators when passkeys are on.
func (s *Site) verifyCode(r *http.Request, id auth.Identity, code string) (token, stage string, err error) {
	if s.opt.Passkeys != nil {
		return s.opt.Passkeys.VerifyCode(r.Context(), id, code, client(r))
	}
	return s.opt.Accounts.VerifySecondFactor(r.Context(), id, code, client(r))
}

// adminNeedsPasskey sends an administrator who must first register a
// passkey to the passkeys page; true means the reply is sent.
func (s *Site) adminNeedsPasskey(w http.ResponseWriter, r *http.Request, id auth.Identity) bool {
	if s.opt.Passkeys == nil {
		return false
	}
	need, err := s.opt.Passkeys.AdminNeedsPasskey(r.Context(), id)
	if err != nil {
		s.internalError(w, r, "passkey rule", err)
		return true
	}
	if need {
		http.Redirect(w, r, "/account/passkeys?done=required", http.StatusSeeOther)
	}
	return need
}

var passkeyNotices = map[string]string{
	"required": "passkeys.notice.required",
	"added":    "passkeys.notice.added",
	"renamed":  "passkeys.notice.renamed",
	"removed":  "passkeys.notice.removed",
}

func (s *Site) passkeysPage(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	s.renderPasskeys(w, r, id, http.StatusOK, formPage{Notice: s.noticeText(r, passkeyNotices[r.URL.Query().Get("done")])})
}

func (s *Site) renderPasskeys(w http.ResponseWriter, r *http.Request, id auth.Identity, code int, page formPage) {
	keys, err := s.opt.Passkeys.List(r.Context(), id)
	if err != nil {
		s.internalError(w, r, "list passkeys", err)
		return
	}
	page.Data = keys
	s.render(w, r, code, "passkeys", page)
}

// passkeyError is the stable code a JSON endpoint answers with.
type passkeyError struct {
	Error string `json:"error"`
}

func (s *Site) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// passkeyFailure maps a service error to a stable code; internal text never
// reaches the browser.
func (s *Site) passkeyFailure(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, auth.ErrPasskeyRefused):
		s.writeJSON(w, http.StatusUnauthorized, passkeyError{"refused"})
	case errors.Is(err, auth.ErrPasskeyName):
		s.writeJSON(w, http.StatusUnprocessableEntity, passkeyError{"name"})
	case errors.Is(err, auth.ErrLocked):
		clearSession(w)
		s.writeJSON(w, http.StatusUnauthorized, passkeyError{"locked"})
	case errors.Is(err, auth.ErrForbidden):
		s.writeJSON(w, http.StatusForbidden, passkeyError{"forbidden"})
	default:
		s.opt.Log.Error(what, "route", r.Pattern, "err", err)
		s.writeJSON(w, http.StatusInternalServerError, passkeyError{"internal"})
	}
}

// readPasskeyBody reads a bounded JSON body; false means the reply is sent.
func (s *Site) readPasskeyBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPasskeyBytes))
	if err != nil {
		s.writeJSON(w, http.StatusRequestEntityTooLarge, passkeyError{"too_large"})
		return nil, false
	}
	return body, true
}

func (s *Site) passkeyRegisterOptions(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	opts, err := s.opt.Passkeys.BeginRegistration(r.Context(), id)
	if err != nil {
		s.passkeyFailure(w, r, "begin passkey registration", err)
		return
	}
	s.writeJSON(w, http.StatusOK, jsonRaw(opts))
}

func (s *Site) passkeyRegister(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	body, ok := s.readPasskeyBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Name       string          `json:"name"`
		Credential json.RawMessage `json:"credential"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeJSON(w, http.StatusBadRequest, passkeyError{"malformed"})
		return
	}
	if _, err := s.opt.Passkeys.FinishRegistration(r.Context(), id, req.Name, req.Credential, client(r)); err != nil {
		s.passkeyFailure(w, r, "finish passkey registration", err)
		return
	}
	s.writeJSON(w, http.StatusOK, struct {
		Next string `json:"next"`
	}{"/account/passkeys?done=added"})
}

func (s *Site) passkeyRename(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	err := s.opt.Passkeys.Rename(r.Context(), id, r.PathValue("id"), r.PostForm.Get("name"), client(r))
	s.passkeyFormDone(w, r, id, "renamed", err)
}

func (s *Site) passkeyRemove(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	err := s.opt.Passkeys.Remove(r.Context(), id, r.PathValue("id"), client(r))
	s.passkeyFormDone(w, r, id, "removed", err)
}

func (s *Site) passkeyFormDone(w http.ResponseWriter, r *http.Request, id auth.Identity, done string, err error) {
	switch {
	case errors.Is(err, auth.ErrPasskeyName):
		s.renderPasskeys(w, r, id, http.StatusUnprocessableEntity, formPage{Error: s.text(r, "passkeys.name.invalid")})
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
	case err != nil:
		s.internalError(w, r, "passkey "+done, err)
	default:
		http.Redirect(w, r, "/account/passkeys?done="+done, http.StatusSeeOther)
	}
}

func (s *Site) passkeySignInOptions(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if s.limited(w, r, limitCode) {
		return
	}
	opts, err := s.opt.Passkeys.BeginSignIn(r.Context(), id)
	if err != nil {
		s.passkeyFailure(w, r, "begin passkey sign-in", err)
		return
	}
	s.writeJSON(w, http.StatusOK, jsonRaw(opts))
}

func (s *Site) passkeySignIn(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if s.limited(w, r, limitCode) {
		return
	}
	body, ok := s.readPasskeyBody(w, r)
	if !ok {
		return
	}
	token, stage, err := s.opt.Passkeys.FinishSignIn(r.Context(), id, body, client(r))
	if err != nil {
		s.passkeyFailure(w, r, "finish passkey sign-in", err)
		return
	}
	setSession(w, token)
	s.writeJSON(w, http.StatusOK, struct {
		Next string `json:"next"`
	}{stagePath[stage]})
}

func (s *Site) passkeysRemoveAll(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	n, err := s.opt.Passkeys.RemoveAll(r.Context(), id, r.PathValue("id"), client(r))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
	case err != nil:
		s.internalError(w, r, "remove passkeys", err)
	case n == 0:
		s.renderUsers(w, r, id, http.StatusOK, formPage{Notice: s.text(r, "users.passkeys.none")})
	default:
		s.renderUsers(w, r, id, http.StatusOK, formPage{Notice: s.text(r, "users.passkeys.removed")})
	}
}
