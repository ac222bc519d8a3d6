package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image layout and identity.
const (
	// BinaryPath is where the binary lives in the image (the entrypoint).
	BinaryPath = "/bin/nxwatcher"
	// DataDir is the default --storage.path of serve, owned by the user.
	DataDir = "/data"
	// UID and GID of the user the image runs as: distroless's "nonroot".
	UID = 65532
	GID = 65532
	// User is the image config's User field.
	User = "65532:65532"
)

// ExposedPorts are the ports the roles listen on by default: serve's HTTP
// listener, its optional Alertmanager port, OTLP gRPC and HTTP, the agent's
// HTTP port, the collector's own metrics.
var ExposedPorts = []string{"9090/tcp", "9093/tcp", "4317/tcp", "4318/tcp", "9080/tcp", "8888/tcp"}

// Options says what goes into the image.
type Options struct {
	// Binary is the static nxwatcher binary (CGO_ENABLED=0).
	Binary string
	// CACerts is the build machine's CA bundle, installed as
	// /etc/ssl/certs/ca-certificates.crt (where Go looks first).
	CACerts string
	// ZoneInfo is the build machine's tz database directory, installed as
	// /usr/share/zoneinfo; "" leaves it out.
	ZoneInfo string
	// Tag names the image in the tarball (docker load / podman load).
	Tag string
	// Version and Revision go into the OCI labels.
	Version, Revision string
	// Created is the image's and every file's time (SOURCE_DATE_EPOCH for
	// reproducible builds).
	Created time.Time
	// Arch is the GOARCH the binary was built for.
	Arch string
}

// Build assembles the image: one layer on scratch, no base image download.
func Build(opts Options) (v1.Image, error) {
	layerTar, err := rootfs(opts)
	if err != nil {
		return nil, err
	}
	// Compress once: given gzip bytes, the layer hashes and copies them
	// instead of compressing the ~100 MB tar again for every digest, size
	// and write.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(layerTar); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: opts.Created}, CreatedBy: "nxwatcher deploy/image: " + BinaryPath + ", CA certificates, tzdata"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = opts.Arch
	cf.OS = "linux"
	cf.Created = v1.Time{Time: opts.Created}
	ports := map[string]struct{}{}
	for _, p := range ExposedPorts {
		ports[p] = struct{}{}
	}
	cf.Config = v1.Config{
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"serve", "--storage.path=" + DataDir},
		User:         User,
		WorkingDir:   DataDir,
		Env:          []string{"PATH=/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "ZONEINFO=/usr/share/zoneinfo"},
		ExposedPorts: ports,
		Volumes:      map[string]struct{}{DataDir: {}},
		StopSignal:   "SIGTERM",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "nxwatcher",
			"org.opencontainers.image.description": "One binary for metrics, alerting, logs and traces: Prometheus, Alertmanager, Loki, Tempo and OpenTelemetry Collector wire APIs",
			"org.opencontainers.image.source":      "https://github.com/nx-watcher/nxwatcher",
			"org.opencontainers.image.version":     opts.Version,
			"org.opencontainers.image.revision":    opts.Revision,
			"org.opencontainers.image.created":     opts.Created.UTC().Format(time.RFC3339),
			"org.opencontainers.image.licenses":    "Apache-2.0",
		},
	}
	if !opts.Created.IsZero() && opts.Created.Unix() == 0 {
		delete(cf.Config.Labels, "org.opencontainers.image.created")
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs writes the one layer: directories, /etc/passwd and /etc/group
// naming the nonroot user, the CA bundle, the tz database and the binary.
func rootfs(opts Options) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := opts.Created
	dir := func(name string, mode int64, uid, gid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: gid, ModTime: mt, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mt, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "etc", "etc/ssl", "etc/ssl/certs", "usr", "usr/share"} {
		if err := dir(d, 0o755, 0, 0); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp", 0o1777, 0, 0); err != nil {
		return nil, err
	}
	if err := dir(DataDir[1:], 0o755, UID, GID); err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnobody:x:65534:\nnonroot:x:%d:\n", GID)
	if err := file("etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte(group)); err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(opts.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	if err := file("etc/ssl/certs/ca-certificates.crt", 0o644, certs); err != nil {
		return nil, err
	}
	if opts.ZoneInfo != "" {
		if err := addTree(tw, opts.ZoneInfo, "usr/share/zoneinfo", mt); err != nil {
			return nil, fmt.Errorf("tzdata: %w", err)
		}
	}
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	if err := file(BinaryPath[1:], 0o755, bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// addTree copies a directory tree (regular files, directories, symlinks)
// under prefix, in a stable order, owned by root.
func addTree(tw *tar.Writer, src, prefix string, mt time.Time) error {
	var paths []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(prefix, filepath.ToSlash(rel))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: name, ModTime: mt, Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			h.Typeflag, h.Mode, h.Name = tar.TypeDir, 0o755, name+"/"
			err = tw.WriteHeader(h)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, lerr := os.Readlink(p)
			if lerr != nil {
				return lerr
			}
			h.Typeflag, h.Mode, h.Linkname = tar.TypeSymlink, 0o777, target
			err = tw.WriteHeader(h)
		case fi.Mode().IsRegular():
			data, rerr := os.ReadFile(p)
			if rerr != nil {
				return rerr
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(data))
			if err = tw.WriteHeader(h); err == nil {
				_, err = tw.Write(data)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// WriteArchive writes img as one tarball that both loaders read: an OCI
// image layout (oci-layout, index.json, blobs/sha256/…; `podman load`,
// `skopeo copy oci-archive:`, Docker ≥ 25) and, sharing its blobs, the
// manifest.json of `docker save` (`docker load` of any version, `crane`).
func WriteArchive(w io.Writer, img v1.Image, tag string) error {
	tw := tar.NewWriter(w)
	written := map[string]bool{}
	blob := func(h v1.Hash, size int64, r io.Reader) (string, error) {
		name := "blobs/" + h.Algorithm + "/" + h.Hex
		if written[name] {
			return name, nil
		}
		written[name] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, Format: tar.FormatPAX}); err != nil {
			return "", err
		}
		n, err := io.Copy(tw, r)
		if err == nil && n != size {
			err = fmt.Errorf("blob %s: wrote %d bytes, want %d", h, n, size)
		}
		return name, err
	}
	plain := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}

	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgHash, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfgName, err := blob(cfgHash, int64(len(rawCfg)), bytes.NewReader(rawCfg))
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var layerNames []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		name, err := blob(d, size, rc)
		rc.Close()
		if err != nil {
			return err
		}
		layerNames = append(layerNames, name)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if _, err := blob(digest, int64(len(rawManifest)), bytes.NewReader(rawManifest)); err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}

	if err := plain("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt,
			Size:      int64(len(rawManifest)),
			Digest:    digest,
			Annotations: map[string]string{
				// containerd / Docker read the full name, the OCI spec the tag.
				"io.containerd.image.name":          fullName(tag),
				"org.opencontainers.image.ref.name": refName(tag),
			},
		}},
	}
	ib, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := plain("index.json", ib); err != nil {
		return err
	}
	docker := []tarball.Descriptor{{Config: cfgName, RepoTags: []string{tag}, Layers: layerNames}}
	db, err := json.Marshal(docker)
	if err != nil {
		return err
	}
	if err := plain("manifest.json", db); err != nil {
		return err
	}
	return tw.Close()
}

// refName is the tag part of name:tag ("latest" without one).
func refName(tag string) string {
	last := tag[strings.LastIndex(tag, "/")+1:]
	if _, t, ok := strings.Cut(last, ":"); ok {
		return t
	}
	return "latest"
}

// fullName is the reference Docker shows: docker.io/library/ for short
// names, :latest when no tag is given.
func fullName(tag string) string {
	name := tag
	first, _, hasSlash := strings.Cut(name, "/")
	switch {
	case !hasSlash:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		name = "docker.io/" + name
	}
	if !strings.Contains(tag[strings.LastIndex(tag, "/")+1:], ":") {
		name += ":latest"
	}
	return name
}

// createdTime reads SOURCE_DATE_EPOCH; without it the image is dated at
// the Unix epoch, so the same inputs give the same digest.
func createdTime(env string) (time.Time, error) {
	if env == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(env, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("SOURCE_DATE_EPOCH is not a number of seconds")
	}
	return time.Unix(sec, 0).UTC(), nil
}
