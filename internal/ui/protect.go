package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Protect guards the UI's own listener (ui.listen_address): next is the
// whole main mux (UI and APIs). Every request needs a session or, when
// ui.anonymous is on, acts as a viewer; the exceptions are the login page
// and what it needs (publicPath). Roles decide the rest (allowed).
// Cross-origin state-changing browser requests are refused first
// (http.CrossOriginProtection: Sec-Fetch-Site, then Origin against Host).
//
// A request without a session gets 401 (JSON), except a browser navigation
// (GET with Accept: text/html), which is redirected to /login?redirect=….
// A role too low for the request gets 403.
func (u *UI) Protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !u.sameOrigin(r) || (isWebSocket(r) && !u.sameOriginWebSocket(r)) {
			u.refuseCrossOrigin(w)
			return
		}
		path, ok := u.unprefixed(r.URL.Path)
		if !ok {
			// Outside the route prefix: nothing of ours; next answers 404
			// or redirects "/" to the prefix.
			path = r.URL.Path
		}
		if u.publicPath(r.Method, path) {
			next.ServeHTTP(w, r)
			return
		}
		p := u.authenticate(r)
		if p == nil {
			u.m.unauthorized.Inc()
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
				strings.Contains(r.Header.Get("Accept"), "text/html") && !isAPIPath(path) {
				back := path
				if r.URL.RawQuery != "" {
					back += "?" + r.URL.RawQuery
				}
				http.Redirect(w, r, u.prefix+"/login?redirect="+url.QueryEscape(back), http.StatusFound)
				return
			}
			writeError(w, http.StatusUnauthorized, "login required")
			return
		}
		if !allowed(p.role, r.Method, path) {
			u.m.forbidden.Inc()
			writeError(w, http.StatusForbidden, "role "+string(p.role)+" may not "+r.Method+" "+path)
			return
		}
		if t := u.state.Load().cfg.Tenant; t != "" && r.Header.Get("X-Scope-OrgID") == "" {
			r.Header.Set("X-Scope-OrgID", t) // ui.tenant, for tenancy on
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// unprefixed is path below the route prefix (Deps.RoutePrefix); ok is false
// for a path outside it.
func (u *UI) unprefixed(path string) (string, bool) {
	if u.prefix == "" {
		return path, true
	}
	rest, ok := strings.CutPrefix(path, u.prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

// isWebSocket reports a WebSocket handshake (the Loki tail).
func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// sameOriginWebSocket applies the cross-origin rule of state-changing
// requests to WebSocket handshakes, which are GETs that
// CrossOriginProtection lets through: a page on another port of the same
// host is same-site, so SameSite=Lax would still send it the cookie, and
// the tail endpoint accepts every Origin (Grafana proxies it).
func (u *UI) sameOriginWebSocket(r *http.Request) bool {
	probe := r.Clone(r.Context())
	probe.Method = http.MethodPost
	return u.sameOrigin(probe)
}

// publicPath is what the UI listener serves without a session: the login
// call itself, logout, what the login page loads (/login, the static assets,
// /api/ui/config) and the health checks Kubernetes probes.
func (u *UI) publicPath(method, path string) bool {
	switch method {
	case http.MethodPost:
		return path == "/api/ui/login" || path == "/api/ui/logout"
	case http.MethodGet, http.MethodHead:
		switch path {
		case "/login", "/api/ui/config", "/api/health", "/-/healthy", "/-/ready":
			return true
		}
		return !isAPIPath(path) && u.assets.isStatic(path)
	}
	return false
}

// readOnlyPOST are the query endpoints Grafana and our UI send as POST
// (form-encoded, for long queries); they read only, so viewers may call them.
var readOnlyPOST = map[string]bool{
	"/api/v1/query":           true,
	"/api/v1/query_range":     true,
	"/api/v1/query_exemplars": true,
	"/api/v1/series":          true,
	"/api/v1/labels":          true,
	"/api/v1/format_query":    true,
	"/api/v1/parse_query":     true,

	"/loki/api/v1/query":              true,
	"/loki/api/v1/query_range":        true,
	"/loki/api/v1/labels":             true,
	"/loki/api/v1/series":             true,
	"/loki/api/v1/index/stats":        true,
	"/loki/api/v1/index/volume":       true,
	"/loki/api/v1/index/volume_range": true,
	"/loki/api/v1/format_query":       true,
	"/loki/api/v1/detected_labels":    true,
	"/loki/api/v1/detected_fields":    true,
	"/loki/api/v1/patterns":           true,

	"/api/ui/login":  true,
	"/api/ui/logout": true,
}

// adminPrefixes are the endpoints that change the server itself: TSDB
// admin (delete series, snapshot, clean tombstones), reload and quit.
var adminPrefixes = []string{"/api/v1/admin/", "/-/reload", "/-/quit"}

// allowed is the role policy of the UI listener:
//   - viewer: GET, HEAD, OPTIONS anywhere, and POST to the read-only query
//     endpoints (readOnlyPOST, plus /loki/api/v1/label/<name>/values);
//   - editor: also every other state-changing call (silences, pushes, alerts),
//     except the admin endpoints;
//   - admin: everything.
func allowed(role Role, method, path string) bool {
	for _, p := range adminPrefixes {
		if strings.HasPrefix(path, p) {
			return role.rank() >= RoleAdmin.rank()
		}
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return role.rank() >= RoleViewer.rank()
	case http.MethodPost:
		if readOnlyPOST[path] || isLokiLabelValues(path) {
			return role.rank() >= RoleViewer.rank()
		}
	}
	return role.rank() >= RoleEditor.rank()
}

func isLokiLabelValues(path string) bool {
	rest, ok := strings.CutPrefix(path, "/loki/api/v1/label/")
	if !ok {
		return false
	}
	name, ok := strings.CutSuffix(rest, "/values")
	return ok && name != "" && !strings.Contains(name, "/")
}

// apiPrefixes are the paths that are never the SPA: an unknown path below
// them is a 404, not index.html.
var apiPrefixes = []string{"/api/", "/loki/", "/otlp/", "/v1/", "/-/", "/debug/"}

func isAPIPath(path string) bool {
	for _, p := range apiPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return path == "/metrics" || path == "/federate" || path == "/ready"
}
