package site

import (
	"net/http"
	"strings"

	"github.com/openconsult/openconsult/auth"
)

// navLink is one entry of the staff pages' header.
type navLink struct {
	Href, Key string
	Current   bool
}

// staffNav is the header navigation of a fully signed-in account's pages:
// only the pages its role may open, the current one marked. Pages outside
// a session, and the call page (which is all video), have none.
func staffNav(r *http.Request, page string) []navLink {
	id, ok := r.Context().Value(identityKey{}).(auth.Identity)
	if !ok || !id.Full() || page == "call" {
		return nil
	}
	var links []navLink
	if id.User.Role == "clinician" {
		links = append(links, navLink{Href: "/consults", Key: "nav.consults"})
	}
	if id.IsAdmin() {
		links = append(links, navLink{Href: "/admin/users", Key: "nav.users"}, navLink{Href: "/admin/audit", Key: "nav.audit"})
	}
	links = append(links, navLink{Href: "/account", Key: "nav.account"})
	path := r.URL.Path
	for i := range links {
		links[i].Current = path == links[i].Href || (links[i].Href == "/consults" && strings.HasPrefix(path, "/consults/"))
	}
	return links
}
