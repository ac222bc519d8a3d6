package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nx-watcher/nxwatcher/deploy/dashboards"
	"github.com/nx-watcher/nxwatcher/deploy/grafana"
)

// CookieName is the session cookie.
const CookieName = "nxwatcher_session"

// StatusFunc answers GET /api/ui/status/{name}: any JSON-encodable value.
type StatusFunc func(ctx context.Context) (any, error)

// Features says which pages have a backend; the UI hides the others.
type Features struct {
	Metrics  bool `json:"metrics"`
	Logs     bool `json:"logs"`
	Traces   bool `json:"traces"`
	Alerting bool `json:"alerting"`
}

// Deps are the UI's collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Getenv reads GF_SECURITY_ADMIN_USER and GF_SECURITY_ADMIN_PASSWORD;
	// defaults to os.Getenv.
	Getenv func(string) string
	// Version is shown by /api/ui/config and /api/health.
	Version string
	// Features lists the enabled signals; nil means all.
	Features *Features
	// RoutePrefix is --web.route-prefix ("/" or "" for none) when the handler
	// given to Protect serves below it: Protect then judges paths below the
	// prefix and redirects to <prefix>/login.
	RoutePrefix string
	// Status are the status sources without an upstream API (log store and
	// trace store stats, the running config), served at
	// /api/ui/status/{name}.
	Status map[string]StatusFunc
	// Dashboards are the built-in dashboards (*.json at the root); nil
	// means deploy/dashboards (dashboards.FS).
	Dashboards fs.FS
	// DatasourceProvisioning is Grafana data-source provisioning YAML whose
	// names and UIDs GET /api/datasources answers; nil means
	// deploy/grafana's (grafana.Datasources).
	DatasourceProvisioning []byte
}

// Route is one entry of the route table. An empty Method matches every
// method (the handler checks it): the SPA fallback "/" must be mounted
// without a method, since "GET /" conflicts with method-less patterns such as
// "/api/v2/" in net/http's ServeMux.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// UI serves the embedded web UI and its login, sessions and helper API.
type UI struct {
	logger   *slog.Logger
	now      func() time.Time
	version  string
	features Features
	status   map[string]StatusFunc

	dir    string
	getenv func(string) string
	listen string // ui.listen_address at New; not reloadable
	prefix string // route prefix without a trailing "/"; "" for none

	state    atomic.Pointer[authState]
	applyMu  sync.Mutex // serialises ApplyConfig
	sessions *sessionStore
	limiter  *loginLimiter
	assets   *assets
	m        *uiMetrics

	dash        *dashboardStore
	datasources []datasource
}

// authState is everything ApplyConfig replaces at once.
type authState struct {
	cfg      Config
	accounts map[string]*account
	cop      *http.CrossOriginProtection
}

type uiMetrics struct {
	logins       prometheus.Counter
	failures     prometheus.Counter
	rateLimited  prometheus.Counter
	unauthorized prometheus.Counter
	forbidden    prometheus.Counter
	crossOrigin  prometheus.Counter
}

// New resolves the accounts (see loadAdmin for the admin password), opens
// the sessions under dataDir/ui and builds the handlers. It starts no
// goroutine.
func New(cfg Config, dataDir string, deps Deps) (*UI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Getenv == nil {
		deps.Getenv = os.Getenv
	}
	u := &UI{
		logger:   deps.Logger.With("component", "ui"),
		now:      deps.Now,
		version:  deps.Version,
		features: Features{Metrics: true, Logs: true, Traces: true, Alerting: true},
		status:   deps.Status,
		getenv:   deps.Getenv,
		listen:   cfg.ListenAddress,
		prefix:   strings.TrimRight(deps.RoutePrefix, "/"),
		limiter:  newLoginLimiter(),
	}
	if deps.Features != nil {
		u.features = *deps.Features
	}

	u.dir = filepath.Join(dataDir, "ui")
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return nil, fmt.Errorf("ui: create %s: %w", u.dir, err)
	}
	var err error
	if u.sessions, err = openSessions(u.dir, time.Duration(cfg.SessionTTL), time.Duration(cfg.SessionIdleTimeout), u.now()); err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	if u.assets, err = newAssets(); err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	if err := u.registerMetrics(deps.Registerer); err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	if deps.Dashboards == nil {
		deps.Dashboards = dashboards.FS
	}
	if u.dash, err = openDashboards(filepath.Join(u.dir, importedDir), deps.Dashboards, u.now, u.logger); err != nil {
		return nil, fmt.Errorf("ui: dashboards: %w", err)
	}
	if deps.DatasourceProvisioning == nil {
		deps.DatasourceProvisioning = grafana.Datasources
	}
	if u.datasources, err = loadDatasources(deps.DatasourceProvisioning, u.prefix, u.features); err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	// Last: a generated password is stored and shown only by a New that
	// succeeds.
	st, err := u.loadState(cfg)
	if err != nil {
		return nil, err
	}
	u.state.Store(st)
	u.dash.setFolder(cfg.DashboardsPath)
	return u, nil
}

// loadState resolves the accounts of cfg (see loadAdmin) and logs where the
// admin password came from, or the generated password, once.
func (u *UI) loadState(cfg Config) (*authState, error) {
	admin, src, generated, err := loadAdmin(cfg, u.dir, u.getenv)
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	st := &authState{cfg: cfg, accounts: map[string]*account{admin.name: admin}}
	users, err := loadUsers(cfg)
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	for _, a := range users {
		if st.accounts[a.name] != nil {
			return nil, fmt.Errorf("ui: user %q is also the admin (%s)", a.name, envAdminUser)
		}
		st.accounts[a.name] = a
	}
	st.cop = http.NewCrossOriginProtection()
	for _, o := range cfg.CSRFTrustedOrigins {
		_ = st.cop.AddTrustedOrigin(o) // checked by Validate
	}
	if generated != "" {
		u.logger.Warn("UI admin password generated at first start; it is shown only this once and only its bcrypt hash is stored",
			"user", admin.name, "password", generated, "hash_file", filepath.Join(u.dir, adminHashFile))
	} else {
		u.logger.Info("UI admin account", "user", admin.name, "password_from", string(src))
	}
	return st, nil
}

// ApplyConfig applies a reloaded `ui:` section: accounts (the admin
// password is resolved again, so a rotated password file takes effect),
// roles, anonymous access, session lifetimes, cookie and CSRF settings, and
// the dashboards folder (read again; its errors are logged, not returned). A
// changed listen_address needs a restart; it is logged and otherwise
// ignored. On error nothing changes.
func (u *UI) ApplyConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	u.applyMu.Lock()
	defer u.applyMu.Unlock()
	st, err := u.loadState(cfg)
	if err != nil {
		return err
	}
	if cfg.ListenAddress != u.listen {
		u.logger.Warn("ui.listen_address changed; it takes effect at the next start", "running", u.listen, "configured", cfg.ListenAddress)
	}
	u.sessions.setLifetimes(time.Duration(cfg.SessionTTL), time.Duration(cfg.SessionIdleTimeout))
	u.state.Store(st)
	// Re-read even when the path is unchanged: files in it may have changed.
	u.dash.setFolder(cfg.DashboardsPath)
	return nil
}

func (u *UI) registerMetrics(reg prometheus.Registerer) error {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nxwatcher_ui_requests_refused_total",
		Help: "Requests the UI listener refused, by reason: unauthenticated (no session), forbidden (role too low), cross_origin (CSRF).",
	}, []string{"reason"})
	u.m = &uiMetrics{
		logins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_ui_logins_total", Help: "Successful UI logins.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_ui_login_failures_total", Help: "UI logins refused for a wrong user name or password.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_ui_login_rate_limited_total", Help: "UI logins refused (429) because the client failed too often.",
		}),
		unauthorized: refused.WithLabelValues("unauthenticated"),
		forbidden:    refused.WithLabelValues("forbidden"),
		crossOrigin:  refused.WithLabelValues("cross_origin"),
	}
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nxwatcher_ui_sessions", Help: "UI sessions held (persisted under the data directory).",
	}, func() float64 { return float64(u.sessions.count()) })
	for _, c := range []prometheus.Collector{u.m.logins, u.m.failures, u.m.rateLimited, refused, sessions} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// ListenAddress is the UI's own port, "" for none.
func (u *UI) ListenAddress() string { return u.listen }

// Close writes the sessions' last-seen times.
func (u *UI) Close() error { return u.sessions.save(u.now()) }

// Routes is the route table documented in the package comment. Mount it on
// the main listener; the UI listener serves the same mux wrapped in Protect.
func (u *UI) Routes() []Route {
	return []Route{
		{http.MethodPost, "/api/ui/login", u.csrf(u.Login)},
		{http.MethodPost, "/api/ui/logout", u.csrf(u.Logout)},
		{http.MethodGet, "/api/ui/session", u.Session},
		{http.MethodGet, "/api/ui/config", u.ClientConfig},
		{http.MethodGet, "/api/ui/status/{name}", u.Status},
		{http.MethodGet, "/api/health", u.Health},
		{http.MethodGet, "/api/ui/dashboards", u.SearchDashboards},
		{http.MethodGet, "/api/dashboards/uid/{uid}", u.GetDashboard},
		{http.MethodDelete, "/api/dashboards/uid/{uid}", u.csrf(u.DeleteDashboard)},
		{http.MethodPost, "/api/dashboards/db", u.csrf(u.ImportDashboard)},
		{http.MethodGet, "/api/datasources", u.Datasources},
		{http.MethodGet, "/api/datasources/uid/{uid}", u.Datasource},
		{http.MethodGet, "/api/datasources/name/{name}", u.Datasource},
		{"", "/", u.Assets},
	}
}

// csrf refuses cross-origin browser requests to h, also on the main listener.
func (u *UI) csrf(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !u.sameOrigin(r) {
			u.refuseCrossOrigin(w)
			return
		}
		h(w, r)
	}
}

// sameOrigin is http.CrossOriginProtection's verdict under the current
// trusted origins (safe methods always pass).
func (u *UI) sameOrigin(r *http.Request) bool { return u.state.Load().cop.Check(r) == nil }

func (u *UI) refuseCrossOrigin(w http.ResponseWriter) {
	u.m.crossOrigin.Inc()
	writeError(w, http.StatusForbidden, "cross-origin request refused")
}

// principal is who a request acts as.
type principal struct {
	user      string
	role      Role
	anonymous bool
}

type principalKey struct{}

var anonymousPrincipal = &principal{role: RoleViewer, anonymous: true}

// User returns the user name and role a request acts as, when it passed
// Protect (or carries a session cookie). ok is false without one; anonymous
// requests report user "".
func User(ctx context.Context) (user string, role Role, ok bool) {
	p, ok := ctx.Value(principalKey{}).(*principal)
	if !ok {
		return "", "", false
	}
	return p.user, p.role, true
}

// authenticate resolves the request's session, or the anonymous viewer, or
// nil.
func (u *UI) authenticate(r *http.Request) *principal {
	if p, ok := r.Context().Value(principalKey{}).(*principal); ok {
		return p
	}
	st := u.state.Load()
	if c, err := r.Cookie(CookieName); err == nil {
		if ss := u.sessions.lookup(c.Value, u.now()); ss != nil {
			if acc := st.accounts[ss.user]; acc != nil && acc.cred == ss.cred {
				return acc.principal
			}
		}
	}
	if st.cfg.Anonymous.Enabled {
		return anonymousPrincipal
	}
	return nil
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type sessionResponse struct {
	User      string    `json:"user"`
	Role      Role      `json:"role"`
	Anonymous bool      `json:"anonymous,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
}

// Login is POST /api/ui/login: JSON {"user", "password"} answers 200 with
// the session cookie and {"user", "role", "expires"}, 401 for a wrong user
// or password, 429 (with Retry-After) after too many failures, 415 for a
// body that is not JSON.
func (u *UI) Login(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		writeError(w, http.StatusUnsupportedMediaType, "login wants Content-Type: application/json")
		return
	}
	var req loginRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "login: decode body: "+err.Error())
		return
	}
	now := u.now()
	ip := clientIP(r)
	if wait, blocked := u.limiter.blocked(ip, req.User, now); blocked {
		u.m.rateLimited.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeError(w, http.StatusTooManyRequests, "too many failed logins; try again later")
		return
	}
	st := u.state.Load()
	acc := st.accounts[req.User]
	if !verify(acc, req.User, req.Password) {
		u.limiter.fail(ip, req.User, now)
		u.m.failures.Inc()
		writeError(w, http.StatusUnauthorized, "invalid user name or password")
		return
	}
	u.limiter.succeed(ip, req.User)
	token, ss, err := u.sessions.create(acc, now)
	if err != nil {
		// The session works until restart; say so rather than fail the login.
		u.logger.Error("persist UI session", "err", err)
	}
	u.m.logins.Inc()
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    token,
		Path:     "/",
		Expires:  ss.expires,
		MaxAge:   int(ss.expires.Sub(now) / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   st.cfg.CookieSecure || r.TLS != nil,
	})
	writeJSON(w, http.StatusOK, sessionResponse{User: acc.name, Role: acc.role, Expires: ss.expires.UTC()})
}

// Logout is POST /api/ui/logout: it ends the session server-side (the token
// stops working even if a copy of the cookie survives) and clears the
// cookie. 204, also without a session.
func (u *UI) Logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		if _, err := u.sessions.remove(c.Value, u.now()); err != nil {
			u.logger.Error("persist UI session logout", "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: u.state.Load().cfg.CookieSecure || r.TLS != nil,
	})
	w.WriteHeader(http.StatusNoContent)
}

// Session is GET /api/ui/session: {"user", "role", "expires"} for a
// session, {"user": "", "role": "viewer", "anonymous": true} for the
// anonymous viewer, else 401.
func (u *UI) Session(w http.ResponseWriter, r *http.Request) {
	p := u.authenticate(r)
	if p == nil {
		writeError(w, http.StatusUnauthorized, "not logged in")
		return
	}
	resp := sessionResponse{User: p.user, Role: p.role, Anonymous: p.anonymous}
	if !p.anonymous {
		if c, err := r.Cookie(CookieName); err == nil {
			if ss := u.sessions.lookup(c.Value, u.now()); ss != nil {
				resp.Expires = ss.expires.UTC()
			}
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// clientConfig is what the UI needs before login.
type clientConfig struct {
	Version   string   `json:"version"`
	Anonymous bool     `json:"anonymous"`
	Features  Features `json:"features"`
	Status    []string `json:"status"`
}

// ClientConfig is GET /api/ui/config (no session needed): version, whether
// anonymous viewing is on, which signals are enabled, and the names served
// under /api/ui/status/.
func (u *UI) ClientConfig(w http.ResponseWriter, r *http.Request) {
	c := clientConfig{Version: u.version, Anonymous: u.state.Load().cfg.Anonymous.Enabled, Features: u.features, Status: []string{}}
	for name := range u.status {
		c.Status = append(c.Status, name)
	}
	slices.Sort(c.Status)
	writeJSON(w, http.StatusOK, c)
}

// Status is GET /api/ui/status/{name}: {"status": "success", "data": …}
// from the named status source, 404 for an unknown name.
func (u *UI) Status(w http.ResponseWriter, r *http.Request) {
	f := u.status[r.PathValue("name")]
	if f == nil {
		writeError(w, http.StatusNotFound, "no status source "+strconv.Quote(r.PathValue("name")))
		return
	}
	v, err := f(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": v})
}

// Health is GET /api/health, Grafana's health check (probes and load
// balancers written for Grafana's port 3000 keep working): no session
// needed.
func (u *UI) Health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"database": "ok", "version": u.version})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the Prometheus API's error shape.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"status": "error", "errorType": errorType(code), "error": msg})
}

func errorType(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return "bad_data"
	}
	return "internal"
}

func isJSON(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// clientIP is the peer address. X-Forwarded-For is not trusted: anyone can
// set it, and throttling by a forged address throttles nobody.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

var errNoAssets = errors.New("the embedded UI has no index.html (build web/ui)")
