package ui

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testclock.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env map[string]string

func (e env) get(k string) string { return e[k] }

const testPassword = "correct horse battery staple"

// fixture is one UI on a data directory.
type fixture struct {
	ui    *UI
	dir   string
	clock *clock
	logs  *syncBuffer
	reg   *prometheus.Registry
}

func newFixture(t testing.TB, cfg Config, dir string, e env, c *clock) *fixture {
	t.Helper()
	if c == nil {
		c = newClock()
	}
	if e == nil {
		e = env{envAdminPassword: testPassword}
	}
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	u, err := New(cfg, dir, Deps{
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Registerer: reg,
		Now:        c.Now,
		Getenv:     e.get,
		Version:    "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ui: u, dir: dir, clock: c, logs: logs, reg: reg}
}

// mux is the main listener as the server builds it: the UI's routes plus
// stand-ins for the APIs.
func (f *fixture) mux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range f.ui.Routes() {
		pattern := r.Path
		if r.Method != "" {
			pattern = r.Method + " " + r.Path
		}
		mux.Handle(pattern, r.Handler)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","data":"api"}`)
	})
	for _, p := range []string{"/api/v1/", "/api/v2/", "/loki/api/v1/", "/api/traces/", "/api/search", "/api/echo",
		"/-/healthy", "/-/ready", "/-/reload", "/metrics", "/v1/traces", "/otlp/v1/logs"} {
		mux.Handle(p, api)
	}
	return mux
}

// protected is the UI listener: the main mux behind Protect.
func (f *fixture) protected() http.Handler { return f.ui.Protect(f.mux()) }

// do sends one request to h and returns the recorded answer.
func do(h http.Handler, method, target, body string, hdr map[string]string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.RemoteAddr = "192.0.2.7:40000"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var jsonHdr = map[string]string{"Content-Type": "application/json"}

func loginBody(user, pw string) string {
	b, _ := json.Marshal(loginRequest{User: user, Password: pw})
	return string(b)
}

// login logs in through h and returns the session cookie.
func login(t testing.TB, h http.Handler, user, pw string) *http.Cookie {
	t.Helper()
	rec := do(h, http.MethodPost, "/api/ui/login", loginBody(user, pw), jsonHdr)
	if rec.Code != http.StatusOK {
		t.Fatalf("login %s: %d %s", user, rec.Code, rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == CookieName {
			return c
		}
	}
	t.Fatalf("login %s: no %s cookie", user, CookieName)
	return nil
}

func secret(s string) commoncfg.Secret { return commoncfg.Secret(s) }

// newReq is a JSON request from the test client's address.
func newReq(method, target, body string) *http.Request {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.7:40000"
	req.Header.Set("Content-Type", "application/json")
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func tlsState() *tls.ConnectionState { return &tls.ConnectionState{HandshakeComplete: true} }
