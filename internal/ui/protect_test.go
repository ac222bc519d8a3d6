package ui

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// withTestAssets replaces the embedded build (which the frontend owns) by a
// known tree.
func withTestAssets(f *fixture) {
	f.ui.assets = &assets{
		fs: fstest.MapFS{
			"index.html":             {Data: []byte("<!doctype html><title>shell</title>")},
			"favicon.svg":            {Data: []byte("<svg/>")},
			"assets/index-abc.js":    {Data: []byte("console.log(1)")},
			"assets/index-abc.js.gz": {Data: []byte("\x1f\x8b not really")},
		},
		index: []byte("<!doctype html><title>shell</title>"),
	}
}

// TestProtectRefusesWithoutSession: on the UI listener every UI path, UI
// API and upstream API path refuses a request without a session, whatever
// the method; only the login page's needs are public.
func TestProtectRefusesWithoutSession(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	withTestAssets(f)
	h := f.protected()

	refused := []struct{ method, path string }{
		{"GET", "/"},
		{"GET", "/index.html"},
		{"GET", "/explore/metrics?query=up"},
		{"GET", "/explore/logs"},
		{"GET", "/alerting/silences"},
		{"GET", "/status/targets"},
		{"GET", "/api/ui/session"},
		{"GET", "/api/ui/status/logstore"},
		{"GET", "/api/ui/unknown"},
		{"GET", "/api/v1/query?query=up"},
		{"POST", "/api/v1/query"},
		{"GET", "/api/v1/status/config"},
		{"GET", "/loki/api/v1/labels"},
		{"GET", "/loki/api/v1/tail?query={a=\"b\"}"},
		{"POST", "/loki/api/v1/push"},
		{"GET", "/api/traces/0123"},
		{"GET", "/api/search"},
		{"GET", "/api/echo"},
		{"GET", "/api/v2/alerts"},
		{"POST", "/api/v2/silences"},
		{"DELETE", "/api/v2/silence/x"},
		{"POST", "/-/reload"},
		{"GET", "/metrics"},
		{"POST", "/v1/traces"},
		{"PUT", "/anything"},
		{"HEAD", "/"},
		{"OPTIONS", "/api/v1/query"},
	}
	for _, rq := range refused {
		for _, accept := range []string{"", "text/html,application/xhtml+xml"} {
			rec := do(h, rq.method, rq.path, "", map[string]string{"Accept": accept})
			switch {
			case rec.Code == http.StatusUnauthorized:
			case rec.Code == http.StatusFound && accept != "" && (rq.method == "GET" || rq.method == "HEAD"):
				loc, _ := url.Parse(rec.Header().Get("Location"))
				if loc.Path != "/login" || loc.Query().Get("redirect") != rq.path {
					t.Errorf("%s %s: redirect to %q", rq.method, rq.path, loc)
				}
			default:
				t.Errorf("%s %s (Accept %q): %d %s, want refused", rq.method, rq.path, accept, rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), `"data":"api"`) || strings.Contains(rec.Body.String(), "shell") {
				t.Errorf("%s %s: leaked the content", rq.method, rq.path)
			}
		}
	}
	if got := testutil.ToFloat64(f.ui.m.unauthorized); got != float64(2*len(refused)) {
		t.Errorf("refused counter %v, want %d", got, 2*len(refused))
	}

	public := []struct {
		method, path string
		want         int
	}{
		{"GET", "/login", 200},
		{"GET", "/api/ui/config", 200},
		{"GET", "/api/health", 200},
		{"GET", "/-/healthy", 200},
		{"GET", "/-/ready", 200},
		{"GET", "/favicon.svg", 200},
		{"GET", "/assets/index-abc.js", 200},
		{"GET", "/alerting/silences/assets/index-abc.js", 200},
		{"POST", "/api/ui/logout", 204},
	}
	for _, rq := range public {
		if rec := do(h, rq.method, rq.path, "", nil); rec.Code != rq.want {
			t.Errorf("public %s %s: %d, want %d", rq.method, rq.path, rec.Code, rq.want)
		}
	}

	// With a session every refused path answers.
	c := login(t, h, "admin", testPassword)
	for _, rq := range refused {
		rec := do(h, rq.method, rq.path, "", nil, c)
		if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusFound || rec.Code == http.StatusForbidden {
			t.Errorf("%s %s with a session: %d", rq.method, rq.path, rec.Code)
		}
	}
}

// TestCrossOriginRefused: a state-changing request from another origin is
// refused on the UI listener (any path) and at login/logout on the main
// listener; same-origin browser requests and non-browser clients pass.
func TestCrossOriginRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CSRFTrustedOrigins = []string{"https://grafana.example.com"}
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	prot := f.protected()
	c := login(t, prot, "admin", testPassword)

	cross := []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
	}
	for _, hdr := range cross {
		for _, rq := range []struct {
			h         http.Handler
			method, p string
			body      string
		}{
			{prot, "POST", "/api/v2/silences", ""},
			{prot, "DELETE", "/api/v2/silence/x", ""},
			{prot, "POST", "/api/v1/query", ""},
			{prot, "POST", "/api/ui/logout", ""},
			{prot, "POST", "/api/ui/login", loginBody("admin", testPassword)},
			{f.mux(), "POST", "/api/ui/login", loginBody("admin", testPassword)},
			{f.mux(), "POST", "/api/ui/logout", ""},
		} {
			h := map[string]string{"Content-Type": "application/json"}
			for k, v := range hdr {
				h[k] = v
			}
			rec := do(rq.h, rq.method, rq.p, rq.body, h, c)
			if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
				t.Errorf("%v %s %s: %d, want 403", hdr, rq.method, rq.p, rec.Code)
			}
		}
	}
	// The session survived the refused cross-origin logout.
	if rec := do(prot, "GET", "/api/ui/session", "", nil, c); rec.Code != 200 {
		t.Fatalf("session after refused logout: %d", rec.Code)
	}

	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "same-origin"},
		{"Origin": "http://example.com"}, // httptest's Host
		{"Origin": "https://grafana.example.com"},
		{}, // curl, Grafana's backend
	} {
		if rec := do(prot, "POST", "/api/v2/silences", "", hdr, c); rec.Code != 200 {
			t.Errorf("%v: %d, want 200", hdr, rec.Code)
		}
	}
	// Reads are never refused for their origin (SameSite=Lax already keeps
	// the cookie off cross-site subrequests).
	if rec := do(prot, "GET", "/api/v1/labels", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, c); rec.Code != 200 {
		t.Errorf("cross-site GET: %d", rec.Code)
	}
	// WebSocket handshakes (the Loki tail) are GETs but get the same rule.
	ws := map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}
	for hdr, want := range map[[2]string]int{
		{"Origin", "http://example.com:8080"}: 403,
		{"Sec-Fetch-Site", "same-site"}:       403,
		{"Origin", "http://example.com"}:      200,
		{"Sec-Fetch-Site", "same-origin"}:     200,
		{"X-None", ""}:                        200,
	} {
		h := map[string]string{hdr[0]: hdr[1]}
		for k, v := range ws {
			h[k] = v
		}
		if rec := do(prot, "GET", "/loki/api/v1/tail?query=%7Ba%3D%22b%22%7D", "", h, c); rec.Code != want {
			t.Errorf("WebSocket with %v: %d, want %d", hdr, rec.Code, want)
		}
	}
	if got := testutil.ToFloat64(f.ui.m.crossOrigin); got == 0 {
		t.Error("cross_origin counter not counted")
	}
}

func TestAssetsAndSPAFallback(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	withTestAssets(f)
	h := f.mux()
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		code         int
		body, ctype  string
		cache        string
	}{
		{"GET", "/", nil, 200, "shell", "text/html", "no-cache"},
		{"GET", "/explore/logs?query=x", nil, 200, "shell", "text/html", "no-cache"},
		{"GET", "/login", nil, 200, "shell", "text/html", "no-cache"},
		{"HEAD", "/alerting", nil, 200, "", "text/html", "no-cache"},
		{"GET", "/favicon.svg", nil, 200, "<svg/>", "image/svg+xml", "no-cache"},
		{"GET", "/assets/index-abc.js", nil, 200, "console.log", "javascript", "immutable"},
		{"GET", "/assets/index-abc.js", map[string]string{"Accept-Encoding": "gzip, br"}, 200, "not really", "javascript", "immutable"},
		{"GET", "/assets/index-old.js", nil, 404, "", "", ""},
		// The build refers to "./assets/…": a deep page asks below itself.
		{"GET", "/explore/metrics/assets/index-abc.js", nil, 200, "console.log", "javascript", "immutable"},
		{"GET", "/explore/assets/index-old.js", nil, 404, "", "", ""},
		{"GET", "/api/v9/nothing", nil, 404, "no such endpoint", "application/json", ""},
		{"GET", "/loki/api/v2/x", nil, 404, "", "application/json", ""},
		{"POST", "/explore", nil, 405, "", "application/json", ""},
	} {
		rec := do(h, tc.method, tc.path, "", tc.hdr)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) ||
			!strings.Contains(rec.Header().Get("Content-Type"), tc.ctype) || !strings.Contains(rec.Header().Get("Cache-Control"), tc.cache) {
			t.Errorf("%s %s: %d %q type %q cache %q", tc.method, tc.path, rec.Code, rec.Body, rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"))
		}
		if tc.code == 200 && rec.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: no X-Frame-Options", tc.path)
		}
	}
	// The handler itself, past the mux's path cleaning, never leaves its tree.
	if rec := do(http.HandlerFunc(f.ui.Assets), "GET", "/assets/../../../etc/passwd", "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "shell") {
		t.Errorf("dot-dot path: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/assets/index-abc.js", "", map[string]string{"Accept-Encoding": "gzip"}); rec.Header().Get("Content-Encoding") != "gzip" {
		t.Error("precompressed asset not served gzip")
	}
}

// TestEmbeddedBuild: the committed build has the SPA shell, and every file
// it refers to is served, from "/" and from a page deep in the app.
func TestEmbeddedBuild(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.mux()
	rec := do(h, "GET", "/", "", nil)
	if rec.Code != 200 || !strings.Contains(strings.ToLower(rec.Body.String()), "<html") {
		t.Fatalf("GET /: %d %.200s", rec.Code, rec.Body)
	}
	refs := regexp.MustCompile(`(?:src|href)="(?:\./|/)?(assets/[^"]+)"`).FindAllStringSubmatch(rec.Body.String(), -1)
	for _, m := range refs {
		for _, page := range []string{"/", "/explore/metrics/"} {
			rec := do(h, "GET", page+m[1], "", nil)
			if rec.Code != 200 || strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
				t.Errorf("%s%s: %d %s", page, m[1], rec.Code, rec.Header().Get("Content-Type"))
			}
		}
	}
	t.Logf("index.html refers to %d assets", len(refs))
}

func TestClientConfigAndStatus(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	f.ui.status = map[string]StatusFunc{
		"logstore": func(ctx context.Context) (any, error) { return map[string]int{"streams": 3}, nil },
		"broken":   func(ctx context.Context) (any, error) { return nil, errors.New("store closed") },
	}
	h := f.mux()
	rec := do(h, "GET", "/api/ui/config", "", nil)
	want := `{"version":"test","anonymous":false,"features":{"metrics":true,"logs":true,"traces":true,"alerting":true},"status":["broken","logstore"]}`
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("config: %d %s", rec.Code, rec.Body)
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/api/ui/status/logstore", 200, `{"data":{"streams":3},"status":"success"}`},
		{"/api/ui/status/broken", 500, `"error":"store closed"`},
		{"/api/ui/status/nope", 404, `"errorType":"not_found"`},
	} {
		rec := do(h, "GET", tc.path, "", nil)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s: %d %s", tc.path, rec.Code, rec.Body)
		}
	}
}

func TestAllowedPolicy(t *testing.T) {
	for _, tc := range []struct {
		role         Role
		method, path string
		want         bool
	}{
		{RoleViewer, "GET", "/api/v1/admin/tsdb/snapshot", false},
		{RoleViewer, "POST", "/loki/api/v1/label/a/b/values", false},
		{RoleViewer, "POST", "/loki/api/v1/label//values", false},
		{RoleViewer, "PUT", "/api/v1/query", false},
		{RoleViewer, "PATCH", "/x", false},
		{RoleEditor, "PUT", "/-/reload", false},
		{RoleAdmin, "PUT", "/api/v1/admin/tsdb/snapshot", true},
		{Role(""), "GET", "/", false},
	} {
		if got := allowed(tc.role, tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s %s: %v", tc.role, tc.method, tc.path, got)
		}
	}
}

// TestProtectUnderRoutePrefix: with --web.route-prefix the UI port still
// lets the login page in, judges roles on the path below the prefix and
// redirects to <prefix>/login.
func TestProtectUnderRoutePrefix(t *testing.T) {
	c := newClock()
	logs := &syncBuffer{}
	u, err := New(DefaultConfig(), t.TempDir(), Deps{
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: c.Now,
		Getenv: env{envAdminPassword: testPassword}.get, RoutePrefix: "/nx/",
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ui: u, clock: c, logs: logs}
	withTestAssets(f)
	inner := http.NewServeMux()
	inner.Handle("/nx/", http.StripPrefix("/nx", f.mux()))
	h := u.Protect(inner)

	rec := do(h, "GET", "/nx/explore?x=1", "", map[string]string{"Accept": "text/html"})
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/nx/login?redirect="+url.QueryEscape("/explore?x=1") {
		t.Fatalf("redirect: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	for _, p := range []string{"/nx/login", "/nx/assets/index-abc.js", "/nx/api/ui/config"} {
		if rec := do(h, "GET", p, "", nil); rec.Code != 200 {
			t.Errorf("public %s: %d", p, rec.Code)
		}
	}
	for _, p := range []string{"/nx/", "/nx/api/v1/labels", "/nxother/api/v1/labels", "/api/v1/labels"} {
		if rec := do(h, "GET", p, "", nil); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s without session: %d", p, rec.Code)
		}
	}
	rec = do(h, "POST", "/nx/api/ui/login", loginBody("admin", testPassword), jsonHdr)
	if rec.Code != 200 {
		t.Fatalf("login under prefix: %d %s", rec.Code, rec.Body)
	}
	ck := rec.Result().Cookies()[0]
	if rec := do(h, "GET", "/nx/api/v1/labels", "", nil, ck); rec.Code != 200 {
		t.Errorf("with session: %d", rec.Code)
	}
}

// ui.tenant: the UI listener adds X-Scope-OrgID to requests that carry none
// (tenancy on), and keeps one a client set itself; unset, it adds nothing.
func TestProtectAddsTheConfiguredTenant(t *testing.T) {
	for _, tc := range []struct {
		tenant, sent, want string
	}{
		{"team-a", "", "team-a"},
		{"team-a", "team-b", "team-b"},
		{"", "", ""},
	} {
		cfg := DefaultConfig()
		cfg.Tenant = tc.tenant
		f := newFixture(t, cfg, t.TempDir(), nil, nil)
		var got string
		echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("X-Scope-OrgID") })
		mux := f.mux()
		mux.Handle("/loki/api/v1/labels", echo)
		h := f.ui.Protect(mux)
		c := login(t, h, "admin", testPassword)
		hdr := map[string]string{}
		if tc.sent != "" {
			hdr["X-Scope-OrgID"] = tc.sent
		}
		if rec := do(h, http.MethodGet, "/loki/api/v1/labels", "", hdr, c); rec.Code != http.StatusOK {
			t.Fatalf("%+v: %d %s", tc, rec.Code, rec.Body)
		}
		if got != tc.want {
			t.Errorf("ui.tenant %q, sent %q: the API got X-Scope-OrgID %q, want %q", tc.tenant, tc.sent, got, tc.want)
		}
	}
	bad := DefaultConfig()
	bad.Tenant = "../x"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "tenant") {
		t.Errorf("ui.tenant ../x: %v", err)
	}
}
