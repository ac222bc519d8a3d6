package ruler

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadRuleFile feeds rule files to the loader Prepare and CheckConfig
// use: it must never panic, and an error must name the file.
func FuzzLoadRuleFile(f *testing.F) {
	f.Add("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: vector(1)\n        for: 1m\n")
	f.Add("groups:\n  - name: g\n    interval: 10s\n    rules:\n      - record: job:x:sum\n        expr: sum by (job) (x)\n        labels: {a: b}\n")
	f.Add("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: sum(\n")
	f.Add("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations: {s: '{{ $labels.x '}\n")
	dir := f.TempDir()
	path := filepath.Join(dir, "rules.yml")
	f.Fuzz(func(t *testing.T, body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		files, parsed, err := loadRuleFiles([]string{path})
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(files) != 1 || parsed[path] == nil {
			t.Fatalf("loaded %v, %v", files, parsed)
		}
		_ = duplicateRules(parsed[path])
	})
}
