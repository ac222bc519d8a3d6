package ui

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestApplyConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Users = []UserConfig{
		{Name: "vic", PasswordHash: secret(hashOf(t, "vic-pw")), Role: RoleViewer},
		{Name: "gone", PasswordHash: secret(hashOf(t, "gone-pw")), Role: RoleEditor},
	}
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	h := f.protected()
	vic := login(t, h, "vic", "vic-pw")
	gone := login(t, h, "gone", "gone-pw")
	admin := login(t, h, "admin", testPassword)

	// A bad config changes nothing.
	bad := cfg
	bad.SessionTTL = 0
	if err := f.ui.ApplyConfig(bad); err == nil {
		t.Fatal("invalid config applied")
	}
	if rec := do(h, "GET", "/api/ui/session", "", nil, gone); rec.Code != 200 {
		t.Fatalf("after refused reload: %d", rec.Code)
	}

	next := DefaultConfig()
	next.ListenAddress = ":3001"
	next.Users = []UserConfig{{Name: "vic", PasswordHash: cfg.Users[0].PasswordHash, Role: RoleEditor}}
	next.Anonymous.Enabled = true
	next.SessionIdleTimeout = model.Duration(time.Hour)
	next.CSRFTrustedOrigins = []string{"https://grafana.example.com"}
	if err := f.ui.ApplyConfig(next); err != nil {
		t.Fatal(err)
	}
	// A removed user's session ends; a changed role applies at once; the
	// admin's session (same password) survives.
	if rec := do(h, "GET", "/api/v1/labels", "", nil, gone); rec.Code != 200 || !strings.Contains(rec.Body.String(), "api") {
		t.Fatalf("removed user, anonymous on: %d", rec.Code) // anonymous viewer now
	}
	if rec := do(h, "POST", "/api/v2/silences", "", nil, gone); rec.Code != http.StatusForbidden {
		t.Errorf("removed user's session still edits: %d", rec.Code)
	}
	if rec := do(h, "POST", "/api/v2/silences", "", nil, vic); rec.Code != 200 {
		t.Errorf("vic promoted to editor: %d", rec.Code)
	}
	if rec := do(h, "POST", "/-/reload", "", nil, admin); rec.Code != 200 {
		t.Errorf("admin after reload: %d", rec.Code)
	}
	// Trusted origin applies.
	if rec := do(h, "POST", "/api/v2/silences", "", map[string]string{"Origin": "https://grafana.example.com"}, admin); rec.Code != 200 {
		t.Errorf("trusted origin after reload: %d", rec.Code)
	}
	// The idle timeout applies to existing sessions.
	f.clock.Add(time.Hour)
	if rec := do(h, "POST", "/api/v2/silences", "", nil, admin); rec.Code != http.StatusForbidden {
		t.Errorf("idle session after the new idle timeout: %d", rec.Code)
	}
	if !strings.Contains(f.logs.String(), "ui.listen_address changed") {
		t.Error("listen_address change not logged")
	}
	if f.ui.ListenAddress() != "" {
		t.Errorf("ListenAddress %q moved by a reload", f.ui.ListenAddress())
	}
}

// TestConcurrentRequestsAndReload: session checks, logins and reloads at
// once (run with -race).
func TestConcurrentRequestsAndReload(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.protected()
	c := login(t, h, "admin", testPassword)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				if rec := do(h, "GET", "/api/v1/labels", "", nil, c); rec.Code != 200 {
					t.Errorf("during reload: %d", rec.Code)
					return
				}
				f.clock.Add(2 * time.Minute) // touches and, now and then, persists
			}
		}()
	}
	go func() {
		defer func() { done <- struct{}{} }()
		for range 20 {
			if rec := do(f.mux(), "POST", "/api/ui/login", loginBody("admin", testPassword), jsonHdr); rec.Code != 200 {
				t.Errorf("login during reload: %d", rec.Code)
				return
			}
			if err := f.ui.ApplyConfig(DefaultConfig()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 5 {
		<-done
	}
}
