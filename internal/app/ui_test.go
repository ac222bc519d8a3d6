package app

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The UI is at "/" of the main listener (APIs stay open there, as
// Prometheus's), and on ui.listen_address every request, API included,
// needs a session from /api/ui/login.
func TestUIServedAndItsListenerNeedsASession(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte("c0rrect horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "ui:\n  listen_address: 127.0.0.1:0\n  admin_password_file: "+pwFile+"\n")

	code, body := ts.get(t, "/")
	if code != http.StatusOK || !strings.Contains(strings.ToLower(body), "<html") {
		t.Fatalf("GET / on the main listener = %d %.80q, want the UI's index.html", code, body)
	}
	if code, _ := ts.get(t, "/api/ui/session"); code != http.StatusUnauthorized {
		t.Errorf("GET /api/ui/session without a cookie = %d, want 401", code)
	}
	if code, _ := ts.get(t, "/api/v1/query?query=1"); code != http.StatusOK {
		t.Errorf("main listener's Prometheus API = %d, want 200 without a session", code)
	}
	if code, body := ts.get(t, "/api/ui/config"); code != http.StatusOK || !strings.Contains(body, `"logstore"`) {
		t.Errorf("GET /api/ui/config = %d %s, want the logstore status source listed", code, body)
	}

	addr := ts.app.UIAddr()
	if addr == nil {
		t.Fatal("ui.listen_address set but no UI listener")
	}
	uiURL := "http://" + addr.String()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, uiURL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("GET", "/api/v1/query?query=1", ""); code != http.StatusUnauthorized {
		t.Errorf("UI listener's Prometheus API without a session = %d, want 401", code)
	}
	if code, _ := do("POST", "/api/ui/login", `{"user":"admin","password":"wrong"}`); code != http.StatusUnauthorized {
		t.Errorf("login with a wrong password = %d, want 401", code)
	}
	if code, body := do("POST", "/api/ui/login", `{"user":"admin","password":"c0rrect horse"}`); code != http.StatusOK {
		t.Fatalf("login = %d %s", code, body)
	}
	if code, body := do("GET", "/api/v1/query?query=1", ""); code != http.StatusOK || !strings.Contains(body, `"success"`) {
		t.Errorf("UI listener's Prometheus API with a session = %d %.80s", code, body)
	}
	if code, body := do("GET", "/api/ui/status/logstore", ""); code != http.StatusOK || !strings.Contains(body, `"activeStreams"`) {
		t.Errorf("log store status = %d %.120s", code, body)
	}
	if code, body := do("GET", "/api/ui/status/tracestore", ""); code != http.StatusOK || !strings.Contains(body, `"headSpans"`) {
		t.Errorf("trace store status = %d %.120s", code, body)
	}
	if code, _ := do("POST", "/api/ui/logout", ""); code/100 != 2 {
		t.Errorf("logout = %d", code)
	}
	if code, _ := do("GET", "/api/v1/query?query=1", ""); code != http.StatusUnauthorized {
		t.Errorf("after logout = %d, want 401", code)
	}

	// A reload puts ui.anonymous in force without a restart.
	writeConfig(t, ts.configFile, "ui:\n  listen_address: 127.0.0.1:0\n  admin_password_file: "+pwFile+"\n  anonymous: {enabled: true}\n")
	if code, body := ts.post(t, "/-/reload", "", nil, nil); code != http.StatusOK {
		t.Fatalf("reload = %d %s", code, body)
	}
	if code, _ := do("GET", "/api/v1/query?query=1", ""); code != http.StatusOK {
		t.Errorf("anonymous viewer after reload = %d, want 200", code)
	}
}

// The main listener refuses state-changing requests a browser makes for a
// page of another site; the same request from a non-browser client passes.
func TestMainListenerRefusesCrossSiteBrowserWrites(t *testing.T) {
	ts := startServer(t, "")
	silence := `{"matchers":[{"name":"alertname","value":"x","isRegex":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"t","comment":"c"}`
	code, body := ts.post(t, "/api/v2/silences", "application/json", strings.NewReader(silence),
		map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	if code != http.StatusForbidden {
		t.Errorf("cross-site browser POST /api/v2/silences = %d %s, want 403", code, body)
	}
	if code, body := ts.post(t, "/api/v2/silences", "application/json", strings.NewReader(silence), nil); code != http.StatusOK {
		t.Errorf("POST /api/v2/silences without browser headers = %d %s, want 200", code, body)
	}
	if code, _ := ts.get(t, "/api/v2/silences"); code != http.StatusOK {
		t.Errorf("GET /api/v2/silences = %d", code)
	}
}
