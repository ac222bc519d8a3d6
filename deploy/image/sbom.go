package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// The SBOM `make image` writes beside the image: SPDX 2.3 JSON listing what
// is inside the binary — the Go toolchain and every Go module linked in (from
// the binary's own build info, so it cannot drift from what was built) —
// and the npm packages bundled into the embedded UI (the non-dev entries of
// web/ui/package-lock.json).

type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreation       `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID           string            `json:"SPDXID"`
	Name             string            `json:"name"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	Checksums        []spdxChecksum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
	Comment          string            `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// SBOMOptions say what the SBOM describes.
type SBOMOptions struct {
	Binary      string    // the static binary put in the image
	PackageLock string    // web/ui/package-lock.json ("" leaves npm out)
	Version     string    // the image's version label
	Created     time.Time // SOURCE_DATE_EPOCH, as the image
}

// WriteSBOM writes the SPDX document for opts to w.
func WriteSBOM(w io.Writer, opts SBOMOptions) error {
	bi, err := buildinfo.ReadFile(opts.Binary)
	if err != nil {
		return fmt.Errorf("sbom: read the binary's build info: %w", err)
	}
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(bin)
	root := spdxPackage{
		SPDXID: "SPDXRef-nxwatcher", Name: bi.Main.Path, VersionInfo: opts.Version,
		DownloadLocation: "NOASSERTION",
		Checksums:        []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: hex.EncodeToString(sum[:])}},
		Comment:          "the nxwatcher binary, built with " + bi.GoVersion,
	}
	doc := spdxDoc{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              "nxwatcher-image",
		DocumentNamespace: "https://github.com/nx-watcher/nxwatcher/sbom/" + hex.EncodeToString(sum[:8]),
		CreationInfo: spdxCreation{
			Created:  opts.Created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: nxwatcher deploy/image"},
		},
		Packages:      []spdxPackage{root},
		Relationships: []spdxRelationship{{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: root.SPDXID}},
	}
	add := func(p spdxPackage) {
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{Element: root.SPDXID, Type: "CONTAINS", Related: p.SPDXID})
	}
	goVersion := strings.TrimPrefix(bi.GoVersion, "go")
	add(spdxPackage{
		SPDXID: "SPDXRef-go-stdlib", Name: "stdlib", VersionInfo: goVersion, DownloadLocation: "https://go.dev/dl/",
		ExternalRefs: []spdxExternalRef{purl("pkg:golang/stdlib@" + goVersion)},
	})
	for i, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		p := spdxPackage{
			SPDXID: fmt.Sprintf("SPDXRef-go-%d", i), Name: m.Path, VersionInfo: m.Version,
			DownloadLocation: "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip",
			ExternalRefs:     []spdxExternalRef{purl("pkg:golang/" + m.Path + "@" + m.Version)},
		}
		if m.Sum != "" {
			p.Comment = "go.sum " + m.Sum
		}
		add(p)
	}
	if opts.PackageLock != "" {
		npm, err := npmPackages(opts.PackageLock)
		if err != nil {
			return err
		}
		for i, p := range npm {
			add(spdxPackage{
				SPDXID: fmt.Sprintf("SPDXRef-npm-%d", i), Name: p.name, VersionInfo: p.version,
				DownloadLocation: orNoAssertion(p.resolved),
				ExternalRefs:     []spdxExternalRef{purl("pkg:npm/" + strings.ReplaceAll(p.name, "@", "%40") + "@" + p.version)},
				Comment:          "bundled into the embedded web UI",
			})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func purl(locator string) spdxExternalRef {
	return spdxExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: locator}
}

func orNoAssertion(s string) string {
	if s == "" {
		return "NOASSERTION"
	}
	return s
}

type npmPackage struct{ name, version, resolved string }

// npmPackages are the production (non-dev) packages of a lockfile v2/v3:
// what the UI's bundle can contain.
func npmPackages(lockfile string) ([]npmPackage, error) {
	raw, err := os.ReadFile(lockfile)
	if err != nil {
		return nil, err
	}
	var lock struct {
		Packages map[string]struct {
			Version  string `json:"version"`
			Resolved string `json:"resolved"`
			Dev      bool   `json:"dev"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(raw, &lock); err != nil {
		return nil, fmt.Errorf("sbom: %s: %w", lockfile, err)
	}
	var out []npmPackage
	for key, p := range lock.Packages {
		name, ok := strings.CutPrefix(key, "node_modules/")
		if !ok || p.Dev {
			continue // the root project, or a build-only tool
		}
		if i := strings.LastIndex(name, "/node_modules/"); i >= 0 {
			name = name[i+len("/node_modules/"):] // a nested copy
		}
		out = append(out, npmPackage{name: name, version: p.Version, resolved: p.Resolved})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return out[i].version < out[j].version
	})
	return out, nil
}
