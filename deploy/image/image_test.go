package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// staticBinary builds ./cmd/nxwatcher with CGO_ENABLED=0, as `make image`
// does, unless NXWATCHER_IMAGE_BINARY names one already built.
func staticBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NXWATCHER_IMAGE_BINARY"); p != "" {
		return p
	}
	if testing.Short() {
		t.Skip("builds the nxwatcher binary; skipped with -short")
	}
	out := filepath.Join(t.TempDir(), "nxwatcher")
	goBuild(t, "../../cmd/nxwatcher", out, "CGO_ENABLED=0")
	return out
}

func testOptions(t *testing.T, binary string) Options {
	t.Helper()
	for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/usr/share/zoneinfo/UTC"} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("build machine lacks %s; .ci/run must install the Debian packages ca-certificates and tzdata", f)
			}
			t.Skipf("build machine lacks %s (apt-get install ca-certificates tzdata): %v", f, err)
		}
	}
	return Options{
		Binary: binary, CACerts: "/etc/ssl/certs/ca-certificates.crt", ZoneInfo: "/usr/share/zoneinfo",
		Tag: "nxwatcher:test", Version: "0.1.0-test", Revision: "abc", Created: time.Unix(1700000000, 0).UTC(), Arch: runtime.GOARCH,
	}
}

// goBuild builds a package of this module into dir, without -race (the
// image program compresses ~100 MB; under the race detector that alone
// takes minutes).
func goBuild(t *testing.T, pkg, out string, env ...string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// TestImageRunsVersionAsNonRoot runs the image program as `make image`
// does on the real binary, then reads the tarball back: the docker-save
// manifest and the OCI index point at the same image, whose config runs as
// 65532; the layer, unpacked, runs `/bin/nxwatcher version`.
func TestImageRunsVersionAsNonRoot(t *testing.T) {
	binary := staticBinary(t)
	testOptions(t, binary) // skips without the build machine's CA bundle and tzdata
	dir := t.TempDir()
	tool := filepath.Join(dir, "image")
	goBuild(t, ".", tool)
	archive := filepath.Join(dir, "image.tar")
	cmd := exec.Command(tool, "-binary="+binary, "-out="+archive, "-tag=nxwatcher:test", "-version=0.1.0-test", "-revision=abc")
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("image: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))

	files := readArchive(t, archive)
	var docker []tarball.Descriptor
	if err := json.Unmarshal(files["manifest.json"], &docker); err != nil || len(docker) != 1 {
		t.Fatalf("manifest.json: %v %s", err, files["manifest.json"])
	}
	if !slices.Equal(docker[0].RepoTags, []string{"nxwatcher:test"}) || len(docker[0].Layers) != 1 {
		t.Errorf("manifest.json %+v", docker[0])
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	if files["oci-layout"] == nil {
		t.Error("oci-layout is missing")
	}
	desc := idx.Manifests[0]
	if desc.Annotations["org.opencontainers.image.ref.name"] != "test" || desc.Annotations["io.containerd.image.name"] != "docker.io/library/nxwatcher:test" {
		t.Errorf("index annotations %v", desc.Annotations)
	}
	rawManifest := blobOf(t, files, desc.Digest)
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		t.Fatal(err)
	}
	if "blobs/sha256/"+m.Config.Digest.Hex != docker[0].Config || len(m.Layers) != 1 || "blobs/sha256/"+m.Layers[0].Digest.Hex != docker[0].Layers[0] {
		t.Errorf("manifest.json %+v and the OCI manifest %+v disagree", docker[0], m)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(blobOf(t, files, m.Config.Digest)))
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("User %q, want 65532:65532 (non-root)", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/bin/nxwatcher"}) {
		t.Errorf("Entrypoint %v", c.Entrypoint)
	}
	for _, p := range []string{"9090/tcp", "9093/tcp", "4317/tcp", "4318/tcp", "9080/tcp", "8888/tcp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed", p)
		}
	}
	for k, v := range map[string]string{"org.opencontainers.image.version": "0.1.0-test", "org.opencontainers.image.revision": "abc", "org.opencontainers.image.title": "nxwatcher", "org.opencontainers.image.created": "2023-11-14T22:13:20Z"} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}

	// Unpack the layer with the system's tar, as a container runtime would.
	layer := filepath.Join(dir, "layer.tar.gz")
	if err := os.WriteFile(layer, blobOf(t, files, m.Layers[0].Digest), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-xzf", layer, "-C", root, "--no-same-owner").CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, b)
	}
	list, err := exec.Command("tar", "-tvzf", layer, "--numeric-owner").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^d\S+ 65532/65532 .* data/$`).Match(list) {
		t.Errorf("/data is not owned by 65532:65532:\n%s", list[:min(len(list), 2000)])
	}
	for _, p := range []string{"etc/ssl/certs/ca-certificates.crt", "usr/share/zoneinfo/UTC", "etc/passwd", "bin/nxwatcher", "tmp"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("rootfs: %v", err)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil || !strings.Contains(string(passwd), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user: %q %v", passwd, err)
	}
	entry := filepath.Join(root, c.Entrypoint[0])
	out, err = exec.Command(entry, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", c.Entrypoint[0], err, out)
	}
	if !strings.Contains(string(out), "nxwatcher") {
		t.Errorf("%s version printed %q", c.Entrypoint[0], out)
	}
	t.Logf("%s version: %s", c.Entrypoint[0], bytes.TrimSpace(out))
	// Static: no program interpreter, so it runs on scratch.
	if b, err := os.ReadFile(entry); err == nil && bytes.Contains(b[:min(len(b), 4096)], []byte("ld-linux")) {
		t.Error("the binary is dynamically linked; build it with CGO_ENABLED=0")
	}
}

func readArchive(t *testing.T, archive string) map[string][]byte {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
}

// blobOf returns a blob and checks it has the digest it is named by.
func blobOf(t *testing.T, files map[string][]byte, d v1.Hash) []byte {
	t.Helper()
	b, ok := files[path.Join("blobs", d.Algorithm, d.Hex)]
	if !ok {
		t.Fatalf("blob %s is missing", d)
	}
	got, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil || got != d {
		t.Fatalf("blob %s has digest %s", d, got)
	}
	return b
}

// TestReproducible: the same inputs give the same digest.
func TestReproducible(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "nxwatcher")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho nxwatcher\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, bin)
	// A small tz tree: gzip of the real 4 MB one costs ~10 s under -race.
	opts.ZoneInfo = filepath.Join(t.TempDir(), "zoneinfo")
	if err := os.MkdirAll(filepath.Join(opts.ZoneInfo, "Europe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(opts.ZoneInfo, "Europe", "Paris"), []byte("TZif"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("Europe/Paris", filepath.Join(opts.ZoneInfo, "CET")); err != nil {
		t.Fatal(err)
	}
	var digests []v1.Hash
	for range 2 {
		img, err := Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %v", digests)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ tag, ref, full string }{
		{"nxwatcher", "latest", "docker.io/library/nxwatcher:latest"},
		{"nxwatcher:0.1", "0.1", "docker.io/library/nxwatcher:0.1"},
		{"ghcr.io/nx-watcher/nxwatcher:v1", "v1", "ghcr.io/nx-watcher/nxwatcher:v1"},
		{"localhost:5000/nxwatcher", "latest", "localhost:5000/nxwatcher:latest"},
		{"acme/nxwatcher:2", "2", "docker.io/acme/nxwatcher:2"},
	} {
		if got := refName(tc.tag); got != tc.ref {
			t.Errorf("refName(%q) = %q, want %q", tc.tag, got, tc.ref)
		}
		if got := fullName(tc.tag); got != tc.full {
			t.Errorf("fullName(%q) = %q, want %q", tc.tag, got, tc.full)
		}
	}
	if _, err := createdTime("soon"); err == nil {
		t.Error("SOURCE_DATE_EPOCH=soon accepted")
	}
}
