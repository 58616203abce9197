package site

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestDisplayNameRoutes: the owner changes their own name, an
// administrator anyone's; nobody else reaches the routes, and a refused
// name says why and changes nothing.
func TestDisplayNameRoutes(t *testing.T) {
	name := url.Values{"display_name": {"Dr. Ana Ruiz"}}
	bad := url.Values{"display_name": {"Dr.\u202eAna"}}
	cases := append(withRoute("POST", "/account/profile", name, refusedBeforeSignIn()),
		accessCase{name: "owner", method: "POST", path: "/account/profile", form: name, session: sessAlice,
			want: http.StatusSeeOther, location: "/account?changed=profile", effects: []string{"display-name u-alice Dr. Ana Ruiz"}},
		accessCase{name: "owner, invisible characters", method: "POST", path: "/account/profile", form: bad, session: sessAlice,
			want: http.StatusUnprocessableEntity},
		accessCase{name: "administrator", method: "POST", path: "/admin/users/u-alice/display-name", form: name, session: sessAdmin,
			want: http.StatusOK, effects: []string{"display-name u-alice Dr. Ana Ruiz"}},
		accessCase{name: "another clinician", method: "POST", path: "/admin/users/u-alice/display-name", form: name, session: sessBob,
			want: http.StatusForbidden},
	)
	cases = append(cases, withRoute("POST", "/admin/users/u-alice/display-name", name, refusedBeforeSignIn())...)
	runAccess(t, cases)
}

type fakeHosts struct{ err error }

func (h fakeHosts) LinkHostName(_ context.Context, token string) (string, error) {
	if token != linkLive {
		return "", errors.New("no such link")
	}
	return "Dr. <Ana> Ruiz", h.err
}

func (h fakeHosts) HostName(_ context.Context, consultID string) (string, error) {
	return "Dr. <Ana> Ruiz", h.err
}

// TestPatientPagesNameTheClinician: the join page and the guest's waiting
// room name the clinician (escaped); a failed lookup only loses the name.
func TestPatientPagesNameTheClinician(t *testing.T) {
	for _, hosts := range []fakeHosts{{}, {err: errors.New("database down")}} {
		w := newWorld(t, sitePublic)
		opt := w.site.opt
		opt.Hosts = hosts
		s, err := New(opt)
		if err != nil {
			t.Fatal(err)
		}
		h := s.Handler()
		for _, path := range []string{"/j/" + linkLive, "/call"} {
			r := httptest.NewRequest("GET", path, nil)
			r.AddCookie(&http.Cookie{Name: guestCookie, Value: guestLobby})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			shown := strings.Contains(rec.Body.String(), "Dr. &lt;Ana&gt; Ruiz")
			if rec.Code != http.StatusOK || shown != (hosts.err == nil) {
				t.Fatalf("GET %s (lookup error %v) = %d, name shown %v", path, hosts.err, rec.Code, shown)
			}
		}
	}
}
