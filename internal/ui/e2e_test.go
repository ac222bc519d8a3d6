package ui

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestUIListenerOverTLS drives the UI port as a browser would, over real
// TCP and TLS with a cookie jar: refused, log in, use the APIs, log out,
// refused again. The cookie comes back Secure because the request was TLS.
func TestUIListenerOverTLS(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	srv := httptest.NewTLSServer(f.protected())
	defer srv.Close()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := srv.Client()
	client.Jar = jar
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	defer client.CloseIdleConnections()

	send := func(method, path, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if path == "/api/ui/login" && resp.StatusCode == 200 {
			for _, c := range resp.Cookies() {
				if c.Name == CookieName && (!c.Secure || !c.HttpOnly) {
					t.Errorf("cookie over TLS: %+v", c)
				}
			}
		}
		return resp.StatusCode, string(b)
	}
	browser := map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}

	if code, _ := send("GET", "/api/v1/labels", "", nil); code != 401 {
		t.Fatalf("before login: %d", code)
	}
	if code, _ := send("GET", "/explore", "", map[string]string{"Accept": "text/html"}); code != 302 {
		t.Fatalf("page before login: %d", code)
	}
	if code, _ := send("POST", "/api/ui/login", loginBody("admin", testPassword), map[string]string{
		"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}); code != 403 {
		t.Fatalf("cross-site login: %d", code)
	}
	if code, body := send("POST", "/api/ui/login", loginBody("admin", testPassword), browser); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	u, _ := url.Parse(srv.URL)
	if len(jar.Cookies(u)) != 1 {
		t.Fatalf("jar %v", jar.Cookies(u))
	}
	if code, body := send("GET", "/api/v1/labels", "", nil); code != 200 || !strings.Contains(body, `"api"`) {
		t.Fatalf("after login: %d %s", code, body)
	}
	if code, _ := send("POST", "/api/v2/silences", "{}", browser); code != 200 {
		t.Fatalf("admin creates a silence: %d", code)
	}
	if code, _ := send("POST", "/api/ui/logout", "", browser); code != 204 {
		t.Fatalf("logout: %d", code)
	}
	if len(jar.Cookies(u)) != 0 {
		t.Errorf("cookie kept after logout: %v", jar.Cookies(u))
	}
	if code, _ := send("GET", "/api/v1/labels", "", nil); code != 401 {
		t.Fatalf("after logout: %d", code)
	}
}
