package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Written from Promtail's documentation of __path__ / __path_exclude__
// (doublestar globs: `**` is any number of directories, `{a,b}` alternatives).
func TestGlobPaths(t *testing.T) {
	dir := t.TempDir()
	files := []string{
		"a.log", "b.txt",
		"x/c.log", "x/y/d.log", "x/y/z/e.log", "x/y/z/e.txt",
		"pods/ns_p1_u1/app/0.log", "pods/ns_p1_u1/sidecar/0.log", "pods/kube-system_p2_u2/app/0.log",
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{"*.log", []string{"a.log"}},
		{"**/*.log", []string{"a.log", "pods/kube-system_p2_u2/app/0.log", "pods/ns_p1_u1/app/0.log", "pods/ns_p1_u1/sidecar/0.log", "x/c.log", "x/y/d.log", "x/y/z/e.log"}},
		{"x/**/*.log", []string{"x/c.log", "x/y/d.log", "x/y/z/e.log"}},
		{"x/**/z/*", []string{"x/y/z/e.log", "x/y/z/e.txt"}},
		{"x/**", []string{"x/c.log", "x/y/d.log", "x/y/z/e.log", "x/y/z/e.txt"}},
		{"x/**/**/e.*", []string{"x/y/z/e.log", "x/y/z/e.txt"}},
		{"pods/*/app/*.log", []string{"pods/kube-system_p2_u2/app/0.log", "pods/ns_p1_u1/app/0.log"}},
		{"pods/**/{app,sidecar}/*.log", []string{"pods/kube-system_p2_u2/app/0.log", "pods/ns_p1_u1/app/0.log", "pods/ns_p1_u1/sidecar/0.log"}},
		{"{a,b}.{log,txt}", []string{"a.log", "b.txt"}},
		{"nothing/**/*.log", nil},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			got, err := globPaths(filepath.Join(dir, tc.pattern))
			if err != nil {
				t.Fatal(err)
			}
			var rel []string
			for _, g := range got {
				r, _ := filepath.Rel(dir, g)
				rel = append(rel, filepath.ToSlash(r))
			}
			if !slices.Equal(rel, tc.want) {
				t.Errorf("got %q, want %q", rel, tc.want)
			}
		})
	}
	if _, err := globPaths(filepath.Join(dir, "**", "[")); err == nil {
		t.Error("a malformed pattern is no error")
	}
}

func TestPathMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/var/log/*.gz", "/var/log/a.gz", true},
		{"/var/log/*.gz", "/var/log/x/a.gz", false},
		{"/var/log/**/*.gz", "/var/log/x/y/a.gz", true},
		{"/var/log/**/*.gz", "/var/log/a.gz", true},
		{"/var/log/pods/kube-system_*/**", "/var/log/pods/kube-system_p_u/app/0.log", true},
		{"/var/log/pods/kube-system_*/**", "/var/log/pods/default_p_u/app/0.log", false},
		{"/var/log/{a,b}.log", "/var/log/b.log", true},
		{"/var/log/{a,b}.log", "/var/log/c.log", false},
	} {
		if got := pathMatches(tc.pattern, tc.path); got != tc.want {
			t.Errorf("pathMatches(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

// A __path__ with ** tails files in every subdirectory; __path_exclude__
// (also a doublestar glob) leaves some out.
func TestDoubleStarPathAndExclude(t *testing.T) {
	dir := t.TempDir()
	srv, pc, _ := fakePush(t, func(int) int { return 0 })
	cfg, err := Parse([]byte(fmt.Sprintf(`
positions: {filename: %[1]s/positions.yaml, sync_period: 20ms}
clients:
  - {url: %[2]s, batchwait: 20ms}
target_config: {sync_period: 20ms}
scrape_configs:
  - job_name: files
    static_configs:
      - targets: [localhost]
        labels: {job: files, __path__: "%[1]s/**/*.log", __path_exclude__: "%[1]s/**/skip/**"}
`, dir, srv.URL)), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"top.log", "a/b/deep.log", "a/skip/no.log", "skip/x/no.log"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f+"\n"), 0o644)
	}
	startAgent(t, cfg, Options{})
	poll(t, 10*time.Second, "deep and top shipped", func() bool {
		return pc.count("top.log") == 1 && pc.count("a/b/deep.log") == 1
	})
	if pc.count("a/skip/no.log") != 0 || pc.count("skip/x/no.log") != 0 {
		t.Fatal("excluded files were shipped")
	}
}
