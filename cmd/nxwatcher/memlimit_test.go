package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestContainerMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		files  []string
		want   int64
		wantOK bool
	}{
		{"v2 limit", []string{write("v2", "536870912\n")}, 512 << 20, true},
		{"v2 unlimited", []string{write("v2max", "max\n")}, 0, false},
		{"v1 unlimited", []string{filepath.Join(dir, "missing"), write("v1", "9223372036854771712\n")}, 0, false},
		{"v1 limit after missing v2", []string{filepath.Join(dir, "missing"), write("v1b", "1073741824")}, 1 << 30, true},
		{"none", []string{filepath.Join(dir, "missing")}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := containerMemoryLimit(tc.files)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("containerMemoryLimit = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
