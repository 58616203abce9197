package site

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStaticFilesAreServedButDirectoriesAreNotListed(t *testing.T) {
	w := newWorld(t, sitePublic)
	cases := []struct {
		path string
		want int
	}{
		{"/static/call.js", http.StatusOK},
		{"/static/app.css", http.StatusOK},
		{"/static/", http.StatusNotFound},
		{"/static/.", http.StatusNotFound},
		{"/static", http.StatusNotFound},
		{"/static/no-such.js", http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w.handler.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
			// The mux redirects "/static" and "/static/." to "/static/";
			// follow that once as a browser would.
			if loc := rec.Header().Get("Location"); rec.Code/100 == 3 && strings.HasPrefix(loc, "/static") {
				rec = httptest.NewRecorder()
				w.handler.ServeHTTP(rec, httptest.NewRequest("GET", loc, nil))
			}
			if rec.Code != c.want {
				t.Fatalf("GET %s = %d, want %d\n%s", c.path, rec.Code, c.want, rec.Body)
			}
			if c.want == http.StatusOK && rec.Body.Len() == 0 {
				t.Fatalf("GET %s served nothing", c.path)
			}
			if c.want != http.StatusOK {
				if body := rec.Body.String(); strings.Contains(body, "call.js") || strings.Contains(body, "href=") {
					t.Fatalf("GET %s lists files:\n%s", c.path, body)
				}
			}
		})
	}
}
