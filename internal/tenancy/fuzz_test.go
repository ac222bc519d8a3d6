package tenancy

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidateID: an accepted tenant ID is always one safe path segment, so
// Set.Dir can never leave the tenants directory; Resolve agrees with it.
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"fake", "team-a", ".", "..", "../x", "a/b", "a|b", "", "x!-_.*'()", "@empty", "a\x00b", "..."} {
		f.Add(s)
	}
	s := NewSet[*fakeStore]("/data/logs", nil)
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateID(id)
		got, rerr := Resolve(true, id)
		if (err == nil) != (rerr == nil) || (rerr == nil && got != id) {
			t.Fatalf("Resolve(%q) = %q, %v; ValidateID = %v", id, got, rerr, err)
		}
		if err != nil {
			if Status(err) != 400 && id != "" {
				t.Fatalf("status %d for %v", Status(err), err)
			}
			return
		}
		if len(id) > MaxIDLength || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
			t.Fatalf("accepted %q", id)
		}
		dir := s.Dir(id)
		if id != Default && (filepath.Dir(dir) != TenantsDir("/data/logs") || filepath.Base(dir) != id) {
			t.Fatalf("tenant %q maps to %q, outside %s", id, dir, TenantsDir("/data/logs"))
		}
	})
}
