package ui

import (
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
