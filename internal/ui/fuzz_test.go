package ui

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzSessionsFile: whatever is in sessions.json, opening it never panics;
// what opens saves and reopens to the same sessions.
func FuzzSessionsFile(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add([]byte(`{"version":1,"sessions":[]}`))
	f.Add([]byte(`{"version":1,"sessions":[{"token_sha256":"` + strings.Repeat("ab", 32) +
		`","user":"admin","cred":"x","created":"2027-01-15T08:00:00Z","expires":"2027-02-15T08:00:00Z","last_seen":"2027-01-15T08:00:00Z"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"sessions":[{"token_sha256":"zz"}]}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, sessionsFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := openSessions(dir, time.Hour, time.Hour, now)
		if err != nil {
			return
		}
		n := s.count()
		if err := s.save(now); err != nil {
			t.Fatal(err)
		}
		s2, err := openSessions(dir, time.Hour, time.Hour, now)
		if err != nil {
			t.Fatalf("reopen what we wrote: %v", err)
		}
		if s2.count() != n {
			t.Fatalf("%d sessions, %d after save and reopen", n, s2.count())
		}
	})
}

// FuzzRequestPath: for any path, the asset lookup stays inside the embedded
// tree and the policy functions do not panic.
func FuzzRequestPath(f *testing.F) {
	for _, p := range []string{"/", "/assets/x.js", "/a/assets/../../etc/passwd", "/nx/api/v1/query", "//x", "/loki/api/v1/label//values", "/assets/", "x"} {
		f.Add(p)
	}
	a := &assets{fs: fstest.MapFS{"index.html": {Data: []byte("i")}, "assets/x.js": {Data: []byte("x")}}, index: []byte("i")}
	u := &UI{prefix: "/nx", assets: a}
	f.Fuzz(func(t *testing.T, p string) {
		if name, ok := a.name(p); ok {
			if strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../") {
				t.Fatalf("%q maps to %q", p, name)
			}
		}
		_ = a.isStatic(p)
		for _, m := range []string{"GET", "POST", "DELETE"} {
			_ = allowed(RoleViewer, m, p)
			_ = u.publicPath(m, p)
		}
		if rest, ok := u.unprefixed(p); ok && !strings.HasPrefix(rest, "/") {
			t.Fatalf("%q below the prefix is %q", p, rest)
		}
	})
}

// FuzzDashboardImport: whatever the body of POST /api/dashboards/db, the
// answer is a 2xx or 4xx in Grafana's shape, never a 5xx or a panic; a
// saved dashboard answers GET by its UID with its title, and is read back
// the same by a store reopened on the directory.
func FuzzDashboardImport(f *testing.F) {
	for _, s := range []string{
		`{"dashboard":{"title":"a"}}`,
		`{"dashboard":{"title":"a","uid":"x-1","version":3,"panels":[{"id":1,"type":"stat"}],"templating":{"list":[]}},"overwrite":true,"folderUid":"f"}`,
		`{"dashboard":{"dashboard":{"title":"nested"}}}`,
		`{"dashboard":{"title":"a","uid":"../../etc"}}`,
		`{"dashboard":{"title":"a","tags":["t",1]}}`,
		`{"dashboard":null}`,
		`{"dashboard":{"title":"\u0000","uid":""}}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	logger := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		store, err := openDashboards(dir, nil, time.Now, logger)
		if err != nil {
			t.Fatal(err)
		}
		u := &UI{logger: logger, dash: store}
		u.state.Store(&authState{cfg: DefaultConfig(), cop: http.NewCrossOriginProtection()})
		req := httptest.NewRequest(http.MethodPost, "/api/dashboards/db", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		u.ImportDashboard(rec, req)
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("%d answer is not JSON: %q", rec.Code, rec.Body)
		}
		if rec.Code >= 500 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if _, ok := answer["message"].(string); !ok {
				t.Fatalf("%d without a message: %s", rec.Code, rec.Body)
			}
			return
		}
		uid, _ := answer["uid"].(string)
		if !validUID.MatchString(uid) || len(uid) > maxUIDLen {
			t.Fatalf("saved under uid %q", uid)
		}
		d := store.get(uid)
		if d == nil {
			t.Fatalf("uid %s saved but not found", uid)
		}
		reopened, err := openDashboards(dir, nil, time.Now, logger)
		if err != nil {
			t.Fatal(err)
		}
		d2 := reopened.get(uid)
		if d2 == nil || d2.title != d.title || !bytes.Equal(d2.raw, d.raw) || d2.version != d.version {
			t.Fatalf("reopened %+v, saved %+v", d2, d)
		}
	})
}
