// Package web holds the browser side of the platform: page templates and the
// static files (plain ES modules and CSS, no build step), embedded into the
// signal binary.
package web

import (
	"embed"
	"html/template"
	"io/fs"
	"path"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Templates parses the page templates with funcs, which hold the message
// catalog of one language (t, th, …). Each page defines "title" and "main"
// and is rendered through "layout".
func Templates(funcs template.FuncMap) (map[string]*template.Template, error) {
	pages, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		if p == "templates/layout.html" || p == "templates/links.html" {
			continue
		}
		t, err := template.New(path.Base(p)).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/links.html", p)
		if err != nil {
			return nil, err
		}
		out[p[len("templates/"):len(p)-len(".html")]] = t
	}
	return out, nil
}

// Static is the tree served under /static/.
func Static() fs.FS {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory exists
	}
	return sub
}
