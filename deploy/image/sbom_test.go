package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// The SBOM lists every Go module the binary links (read from the binary
// itself), the toolchain as stdlib, and the UI's production npm packages but
// not its build tools, in SPDX 2.3's required shape.
func TestSBOM(t *testing.T) {
	self, err := os.Executable() // a Go binary with build info, like nxwatcher
	if err != nil {
		t.Fatal(err)
	}
	bi, err := buildinfo.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteSBOM(&buf, SBOMOptions{Binary: self, PackageLock: "../../web/ui/package-lock.json", Version: "0.1.0-test", Created: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	var doc spdxDoc
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" ||
		doc.DocumentNamespace == "" || doc.CreationInfo.Created != "2023-11-14T22:13:20Z" {
		t.Fatalf("document header: %+v", doc)
	}
	byName := map[string]spdxPackage{}
	ids := map[string]bool{}
	for _, p := range doc.Packages {
		if ids[p.SPDXID] {
			t.Errorf("SPDXID %s twice", p.SPDXID)
		}
		ids[p.SPDXID] = true
		if p.DownloadLocation == "" {
			t.Errorf("%s has no downloadLocation (required)", p.Name)
		}
		byName[p.Name] = p
	}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		if p, ok := byName[m.Path]; !ok || p.VersionInfo != m.Version {
			t.Errorf("Go module %s %s: SBOM has %+v", m.Path, m.Version, p)
		}
	}
	if p := byName["stdlib"]; "go"+p.VersionInfo != bi.GoVersion {
		t.Errorf("stdlib %q, binary built with %s", p.VersionInfo, bi.GoVersion)
	}
	if p, ok := byName["react"]; !ok || p.VersionInfo == "" || !strings.HasPrefix(p.ExternalRefs[0].ReferenceLocator, "pkg:npm/react@") {
		t.Errorf("react missing or malformed: %+v", p)
	}
	if p, ok := byName["@codemirror/view"]; !ok || !strings.HasPrefix(p.ExternalRefs[0].ReferenceLocator, "pkg:npm/%40codemirror/view@") {
		t.Errorf("@codemirror/view missing or malformed: %+v", p)
	}
	for _, dev := range []string{"vite", "typescript", "eslint", "vitest"} {
		if _, ok := byName[dev]; ok {
			t.Errorf("build tool %s listed as shipped", dev)
		}
	}
	if len(doc.Relationships) != len(doc.Packages) {
		t.Errorf("%d relationships for %d packages (one DESCRIBES, one CONTAINS each)", len(doc.Relationships), len(doc.Packages))
	}
}
