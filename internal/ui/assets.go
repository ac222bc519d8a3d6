package ui

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// dist is the built web UI (web/ui → npm run build). The frontend owns its
// content; index.html is the SPA shell, assets/ holds Vite's content-hashed
// files. A file.gz next to a file is served to clients that accept gzip.
//
//go:embed all:dist
var dist embed.FS

type assets struct {
	fs    fs.FS
	index []byte
}

func newAssets() (*assets, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		return nil, errNoAssets
	}
	return &assets{fs: sub, index: index}, nil
}

// isStatic reports whether path names an embedded file other than the SPA
// shell: static assets hold no data and load without a session.
func (a *assets) isStatic(p string) bool {
	name, ok := a.name(p)
	if !ok || name == "index.html" {
		return false
	}
	st, err := fs.Stat(a.fs, name)
	return err == nil && !st.IsDir()
}

// name maps a URL path to a file name in the embedded tree. A path with an
// "/assets/" segment deeper down (/explore/assets/x.js) names assets/x.js:
// the build refers to its files relatively ("./assets/…", so it works under
// a route prefix), and a page deep in the app, served as index.html, makes
// the browser ask for them below its own directory.
func (a *assets) name(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	clean := path.Clean(p)
	if i := strings.LastIndex(clean, "/assets/"); i > 0 {
		if name := "assets/" + clean[i+len("/assets/"):]; fs.ValidPath(name) {
			if st, err := fs.Stat(a.fs, name); err == nil && !st.IsDir() {
				return name, true
			}
		}
	}
	name := strings.TrimPrefix(clean, "/")
	if name == "" {
		return "index.html", true
	}
	return name, fs.ValidPath(name)
}

// Assets serves "/" and everything below it that no other route took: an
// embedded file by its path, or, for any other GET that is not an API path,
// index.html (the SPA routes on the client). API paths get 404.
func (u *UI) Assets(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if isAPIPath(r.URL.Path) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
		return
	}
	a := u.assets
	name, ok := a.name(r.URL.Path)
	if ok && name != "index.html" {
		if st, err := fs.Stat(a.fs, name); err == nil && !st.IsDir() {
			a.serveFile(w, r, name)
			return
		}
	}
	if path.Ext(r.URL.Path) != "" && strings.Contains(r.URL.Path, "/assets/") {
		// A missing hashed asset (an old page after an upgrade) is a 404:
		// index.html in its place would fail to parse as JS.
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	setSecurityHeaders(h)
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(a.index))
}

func (a *assets) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	if strings.HasPrefix(name, "assets/") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	setSecurityHeaders(h)
	h.Add("Vary", "Accept-Encoding")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		if b, err := fs.ReadFile(a.fs, name+".gz"); err == nil {
			if ct := contentType(name); ct != "" {
				h.Set("Content-Type", ct)
			}
			h.Set("Content-Encoding", "gzip")
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
			return
		}
	}
	b, err := fs.ReadFile(a.fs, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json"
	}
	return ""
}

// setSecurityHeaders: no MIME sniffing, no framing (Grafana's
// allow_embedding=false default), no referrer leaking queries off-site.
func setSecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}
