package ui

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"
)

func hashOf(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestConfigValidate(t *testing.T) {
	good := hashOf(t, "x")
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"default", func(*Config) {}, nil},
		{"users and anonymous", func(c *Config) {
			c.Users = []UserConfig{{Name: "ann", PasswordHash: "", PasswordHashFile: "/x", Role: RoleViewer}, {Name: "bob", PasswordHash: secret(good), Role: RoleEditor}}
			c.Anonymous.Enabled = true
			c.ListenAddress = ":3000"
		}, nil},
		{"every problem at once", func(c *Config) {
			c.AdminUser = ""
			c.ListenAddress = "3000"
			c.SessionTTL = 0
			c.SessionIdleTimeout = -1
			c.Users = []UserConfig{
				{Name: "", Role: "root", PasswordHash: "plain"},
				{Name: "x", PasswordHash: secret(good), PasswordHashFile: "/f", Role: RoleViewer},
				{Name: "x", Role: RoleViewer},
			}
			c.Anonymous = AnonymousConfig{Enabled: true, Role: RoleAdmin}
			c.CSRFTrustedOrigins = []string{"not a url"}
		}, []string{"ui.admin_user", "ui.listen_address", "ui.session_ttl", "ui.session_idle_timeout",
			"ui.users[0].name", `ui.users[0].role: "root"`, "ui.users[0].password_hash: not a bcrypt hash",
			"ui.users[1]: password_hash and password_hash_file are mutually exclusive",
			`ui.users[2].name: "x" is already`, "ui.users[2]: one of password_hash",
			"ui.anonymous.role", "ui.csrf_trusted_origins[0]"}},
		{"idle longer than ttl", func(c *Config) { c.SessionIdleTimeout = model.Duration(60 * 24 * time.Hour) }, []string{"must not exceed session_ttl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.mux()

	rec := do(h, http.MethodPost, "/api/ui/login", loginBody("admin", testPassword), jsonHdr)
	if rec.Code != http.StatusOK {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	var resp sessionResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.User != "admin" || resp.Role != RoleAdmin {
		t.Fatalf("login answer %s (%v)", rec.Body, err)
	}
	c := rec.Result().Cookies()[0]
	if c.Name != CookieName || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" ||
		c.MaxAge != int((30*24*time.Hour)/time.Second) {
		t.Errorf("cookie %+v", c)
	}

	rec = do(h, http.MethodGet, "/api/ui/session", "", nil, c)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"user":"admin","role":"admin"`) {
		t.Errorf("session: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, http.MethodGet, "/api/ui/session", "", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("session without cookie: %d", rec.Code)
	}

	for _, tc := range []struct {
		name, body string
		hdr        map[string]string
		want       int
	}{
		{"wrong password", loginBody("admin", "nope"), jsonHdr, http.StatusUnauthorized},
		{"unknown user", loginBody("eve", testPassword), jsonHdr, http.StatusUnauthorized},
		{"form body", "user=admin&password=x", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"bad json", "{", jsonHdr, http.StatusBadRequest},
	} {
		if rec := do(h, http.MethodPost, "/api/ui/login", tc.body, tc.hdr); rec.Code != tc.want || len(rec.Result().Cookies()) != 0 {
			t.Errorf("%s: %d %s, cookies %v", tc.name, rec.Code, rec.Body, rec.Result().Cookies())
		}
	}
	if got := testutil.ToFloat64(f.ui.m.failures); got != 2 {
		t.Errorf("nxwatcher_ui_login_failures_total = %v, want 2", got)
	}
}

func TestCookieSecure(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	req := func(tls bool) *http.Cookie {
		rq := newReq(http.MethodPost, "/api/ui/login", loginBody("admin", testPassword))
		if tls {
			rq.TLS = tlsState()
		}
		rec := serve(f.mux(), rq)
		return rec.Result().Cookies()[0]
	}
	if c := req(false); c.Secure {
		t.Error("plain HTTP: cookie Secure")
	}
	if c := req(true); !c.Secure {
		t.Error("TLS: cookie not Secure")
	}
	cfg := DefaultConfig()
	cfg.CookieSecure = true
	f = newFixture(t, cfg, t.TempDir(), nil, nil)
	if c := req(false); !c.Secure {
		t.Error("cookie_secure: cookie not Secure")
	}
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.mux()
	for i := range maxFailuresPerUser {
		if rec := do(h, http.MethodPost, "/api/ui/login", loginBody("admin", "guess"), jsonHdr); rec.Code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, rec.Code)
		}
	}
	// Blocked now, even with the right password.
	rec := do(h, http.MethodPost, "/api/ui/login", loginBody("admin", testPassword), jsonHdr)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "300" {
		t.Fatalf("6th attempt: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := testutil.ToFloat64(f.ui.m.rateLimited); got != 1 {
		t.Errorf("rate limited counter %v", got)
	}
	if got := testutil.ToFloat64(f.ui.m.failures); got != maxFailuresPerUser {
		t.Errorf("failures counter %v", got)
	}
	// Another client is not blocked.
	rq := newReq(http.MethodPost, "/api/ui/login", loginBody("admin", testPassword))
	rq.RemoteAddr = "198.51.100.1:1234"
	if rec := serve(h, rq); rec.Code != http.StatusOK {
		t.Errorf("other IP: %d", rec.Code)
	}
	// The window ends.
	f.clock.Add(loginWindow)
	if rec := do(h, http.MethodPost, "/api/ui/login", loginBody("admin", testPassword), jsonHdr); rec.Code != http.StatusOK {
		t.Errorf("after the window: %d", rec.Code)
	}
}

func TestLoginRateLimitPerIP(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.mux()
	for i := range maxFailuresPerIP {
		user := "user" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if rec := do(h, http.MethodPost, "/api/ui/login", loginBody(user, "guess"), jsonHdr); rec.Code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, rec.Code)
		}
	}
	if rec := do(h, http.MethodPost, "/api/ui/login", loginBody("admin", testPassword), jsonHdr); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("spraying IP not blocked: %d", rec.Code)
	}
}

func TestLimiterMemoryBounded(t *testing.T) {
	l := newLoginLimiter()
	now := time.Now()
	for i := range maxLimiterKeys * 2 {
		l.fail("203.0.113.1", strings.Repeat("u", i%50)+string(rune(i)), now)
	}
	if n := len(l.m); n > maxLimiterKeys {
		t.Fatalf("%d keys held", n)
	}
	// A 4 KiB user name keeps at most 256 bytes of it.
	l = newLoginLimiter()
	l.fail("203.0.113.1", strings.Repeat("u", 4096), now)
	for k := range l.m {
		if len(k) > len("203.0.113.1")+1+256 {
			t.Fatalf("key of %d bytes", len(k))
		}
	}
}

func TestLogoutInvalidatesServerSide(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.protected()
	c := login(t, h, "admin", testPassword)
	if rec := do(h, http.MethodGet, "/api/v1/labels", "", nil, c); rec.Code != http.StatusOK {
		t.Fatalf("with session: %d", rec.Code)
	}
	rec := do(h, http.MethodPost, "/api/ui/logout", "", nil, c)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("logout: %d", rec.Code)
	}
	if cl := rec.Result().Cookies(); len(cl) != 1 || cl[0].MaxAge >= 0 {
		t.Errorf("logout cookie %v", cl)
	}
	// The old cookie, replayed, no longer works.
	if rec := do(h, http.MethodGet, "/api/v1/labels", "", nil, c); rec.Code != http.StatusUnauthorized {
		t.Errorf("after logout: %d", rec.Code)
	}
	// Not after a restart either.
	f2 := newFixture(t, DefaultConfig(), f.dir, nil, f.clock)
	if rec := do(f2.protected(), http.MethodGet, "/api/v1/labels", "", nil, c); rec.Code != http.StatusUnauthorized {
		t.Errorf("after logout and restart: %d", rec.Code)
	}
}

func TestSessionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, DefaultConfig(), dir, nil, nil)
	c := login(t, f.protected(), "admin", testPassword)
	if err := f.ui.Close(); err != nil {
		t.Fatal(err)
	}
	f2 := newFixture(t, DefaultConfig(), dir, nil, f.clock)
	rec := do(f2.protected(), http.MethodGet, "/api/ui/session", "", nil, c)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"user":"admin"`) {
		t.Fatalf("after restart: %d %s", rec.Code, rec.Body)
	}
	want := "# HELP nxwatcher_ui_sessions UI sessions held (persisted under the data directory).\n# TYPE nxwatcher_ui_sessions gauge\nnxwatcher_ui_sessions 1\n"
	if err := testutil.GatherAndCompare(f2.reg, strings.NewReader(want), "nxwatcher_ui_sessions"); err != nil {
		t.Error(err)
	}
}

func TestSessionExpiry(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SessionTTL = model.Duration(10 * time.Hour)
	cfg.SessionIdleTimeout = model.Duration(time.Hour)
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	h := f.protected()
	ok := func(c *http.Cookie) bool {
		return do(h, http.MethodGet, "/api/ui/session", "", nil, c).Code == http.StatusOK
	}

	// Idle: unused for the idle timeout ends it.
	c := login(t, h, "admin", testPassword)
	f.clock.Add(time.Hour - time.Minute)
	if !ok(c) {
		t.Fatal("ended before the idle timeout")
	}
	f.clock.Add(time.Hour - time.Minute) // used a moment ago: still alive
	if !ok(c) {
		t.Fatal("use did not extend the session")
	}
	f.clock.Add(time.Hour)
	if ok(c) {
		t.Fatal("alive after the idle timeout")
	}

	// Lifetime: active all along, it still ends at session_ttl.
	c = login(t, h, "admin", testPassword)
	for range 19 {
		f.clock.Add(30 * time.Minute)
		if !ok(c) {
			t.Fatal("ended before session_ttl")
		}
	}
	f.clock.Add(30 * time.Minute)
	if ok(c) {
		t.Fatal("alive after session_ttl")
	}
}

func TestPasswordChangeEndsSessions(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, DefaultConfig(), dir, nil, nil)
	c := login(t, f.protected(), "admin", testPassword)
	f2 := newFixture(t, DefaultConfig(), dir, env{envAdminPassword: "a new password"}, f.clock)
	if rec := do(f2.protected(), http.MethodGet, "/api/ui/session", "", nil, c); rec.Code != http.StatusUnauthorized {
		t.Fatalf("session of the old password: %d", rec.Code)
	}
	login(t, f2.protected(), "admin", "a new password")
}

func TestGeneratedPasswordShownOnceAndOnlyHashStored(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, DefaultConfig(), dir, env{}, nil)
	logs := f.logs.String()
	i := strings.Index(logs, "password=")
	if i < 0 || !strings.Contains(logs, "shown only this once") {
		t.Fatalf("no generated password logged:\n%s", logs)
	}
	pw := strings.Fields(logs[i+len("password="):])[0]
	if len(pw) < 20 {
		t.Fatalf("generated password %q too short", pw)
	}
	c := login(t, f.protected(), "admin", pw)

	// On disk: a bcrypt hash of it, never the password; sessions hold token
	// digests, never the token.
	stored, err := os.ReadFile(filepath.Join(dir, "ui", adminHashFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), pw) || bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(string(stored))), []byte(pw)) != nil {
		t.Fatalf("stored %q is not a bcrypt hash of the password", stored)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), pw) || strings.Contains(string(b), c.Value) {
			t.Errorf("%s holds the password or the session token", p)
		}
		if st, _ := os.Stat(p); st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v", p, st.Mode())
		}
		return nil
	})

	// A second start reuses the hash and prints nothing.
	f2 := newFixture(t, DefaultConfig(), dir, env{}, f.clock)
	if strings.Contains(f2.logs.String(), pw) || strings.Contains(f2.logs.String(), "shown only this once") {
		t.Fatalf("second start printed the password:\n%s", f2.logs)
	}
	if !strings.Contains(f2.logs.String(), "password_from=\"stored hash\"") {
		t.Errorf("second start: %s", f2.logs)
	}
	login(t, f2.protected(), "admin", pw)
}

func TestEnvWinsOverConfig(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.AdminUser = "cfgadmin"
	cfg.AdminPasswordFile = pwFile

	// Config alone: the file's password (trailing newline trimmed).
	f := newFixture(t, cfg, t.TempDir(), env{}, nil)
	login(t, f.mux(), "cfgadmin", "from-the-file")

	// Env set: user and password from env, the file's password refused.
	f = newFixture(t, cfg, t.TempDir(), env{envAdminUser: "root", envAdminPassword: "from-env"}, nil)
	login(t, f.mux(), "root", "from-env")
	for _, bad := range []string{loginBody("cfgadmin", "from-the-file"), loginBody("root", "from-the-file"), loginBody("cfgadmin", "from-env")} {
		if rec := do(f.mux(), http.MethodPost, "/api/ui/login", bad, jsonHdr); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d", bad, rec.Code)
		}
	}

	// GF_SECURITY_ADMIN_PASSWORD__FILE, Grafana's file variant.
	f = newFixture(t, cfg, t.TempDir(), env{envAdminPasswordFile: pwFile}, nil)
	login(t, f.mux(), "cfgadmin", "from-the-file")

	// A missing file is an error at start, not a silently generated password.
	cfg.AdminPasswordFile = filepath.Join(dir, "missing")
	if _, err := New(cfg, t.TempDir(), Deps{Getenv: env{}.get}); err == nil || !strings.Contains(err.Error(), "admin_password_file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestExtraUsersAndRoles(t *testing.T) {
	dir := t.TempDir()
	hashFile := filepath.Join(dir, "ed.hash")
	if err := os.WriteFile(hashFile, []byte(hashOf(t, "ed-pw")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Users = []UserConfig{
		{Name: "vic", PasswordHash: secret(hashOf(t, "vic-pw")), Role: RoleViewer},
		{Name: "ed", PasswordHashFile: hashFile, Role: RoleEditor},
	}
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	h := f.protected()
	vic := login(t, h, "vic", "vic-pw")
	ed := login(t, h, "ed", "ed-pw")
	admin := login(t, h, "admin", testPassword)

	for _, tc := range []struct {
		method, path          string
		viewer, editor, admin int
	}{
		{"GET", "/api/v1/query?query=up", 200, 200, 200},
		{"POST", "/api/v1/query", 200, 200, 200},
		{"POST", "/api/v1/query_range", 200, 200, 200},
		{"POST", "/loki/api/v1/query_range", 200, 200, 200},
		{"POST", "/loki/api/v1/label/job/values", 200, 200, 200},
		{"GET", "/api/search?q={}", 200, 200, 200},
		{"POST", "/api/v2/silences", 403, 200, 200},
		{"DELETE", "/api/v2/silence/abc", 403, 200, 200},
		{"POST", "/loki/api/v1/push", 403, 200, 200},
		{"POST", "/api/v1/write", 403, 200, 200},
		{"POST", "/api/v1/admin/tsdb/delete_series", 403, 403, 200},
		{"POST", "/-/reload", 403, 403, 200},
	} {
		for _, who := range []struct {
			c    *http.Cookie
			want int
		}{{vic, tc.viewer}, {ed, tc.editor}, {admin, tc.admin}} {
			if rec := do(h, tc.method, tc.path, "", nil, who.c); rec.Code != who.want {
				t.Errorf("%s %s as %s: %d, want %d", tc.method, tc.path, who.c.Value[:4], rec.Code, who.want)
			}
		}
	}
}

func TestAnonymousViewer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Anonymous.Enabled = true
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	h := f.protected()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", 200},
		{"GET", "/explore/metrics", 200},
		{"GET", "/api/v1/labels", 200},
		{"POST", "/api/v1/query", 200},
		{"POST", "/api/v2/silences", 403},
		{"DELETE", "/api/v2/silence/x", 403},
		{"POST", "/-/reload", 403},
	} {
		if rec := do(h, tc.method, tc.path, "", nil); rec.Code != tc.want {
			t.Errorf("anonymous %s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
	rec := do(h, http.MethodGet, "/api/ui/session", "", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"anonymous":true`) {
		t.Errorf("anonymous session: %d %s", rec.Code, rec.Body)
	}
	// Logging in still works and lifts the role.
	c := login(t, h, "admin", testPassword)
	if rec := do(h, http.MethodPost, "/api/v2/silences", "", nil, c); rec.Code != 200 {
		t.Errorf("admin after anonymous: %d", rec.Code)
	}
}

// TestFailedStartGeneratesNothing: a start that fails (here on a corrupt
// sessions file) neither stores nor prints a generated password, so the
// next good start still shows one.
func TestFailedStartGeneratesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ui"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ui", sessionsFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	if _, err := New(DefaultConfig(), dir, Deps{Logger: slog.New(slog.NewTextHandler(logs, nil)), Getenv: env{}.get}); err == nil || !strings.Contains(err.Error(), "sessions") {
		t.Fatalf("corrupt sessions file: %v", err)
	}
	if strings.Contains(logs.String(), "password=") {
		t.Errorf("failed start printed a password: %s", logs)
	}
	if _, err := os.Stat(filepath.Join(dir, "ui", adminHashFile)); err == nil {
		t.Error("failed start stored a hash")
	}
	os.Remove(filepath.Join(dir, "ui", sessionsFile))
	f := newFixture(t, DefaultConfig(), dir, env{}, nil)
	if !strings.Contains(f.logs.String(), "shown only this once") {
		t.Errorf("next start: %s", f.logs)
	}
}
