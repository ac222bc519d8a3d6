// Command image builds the nxwatcher container image without a daemon and
// without downloading a base image: one layer on scratch holding the static
// binary, the build machine's CA certificates and tz database, and
// /etc/passwd naming the nonroot user (65532) the image runs as. It writes
// one tarball that is both an OCI image layout and a `docker save` archive.
//
//	CGO_ENABLED=0 go build -trimpath -o bin/nxwatcher ./cmd/nxwatcher
//	go run ./deploy/image -binary=bin/nxwatcher -out=bin/nxwatcher-image.tar
//	docker load -i bin/nxwatcher-image.tar   # or podman load, skopeo copy oci-archive:…
//
// With -sbom it also writes an SPDX 2.3 JSON SBOM (sbom.go).
//
// The same inputs give the same image digest (every time is
// SOURCE_DATE_EPOCH, or the Unix epoch without it).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	opts := Options{}
	out := fs.String("out", "bin/nxwatcher-image.tar", "tarball to write")
	fs.StringVar(&opts.Binary, "binary", "bin/nxwatcher", "static nxwatcher binary (CGO_ENABLED=0)")
	fs.StringVar(&opts.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle of the build machine")
	fs.StringVar(&opts.ZoneInfo, "zoneinfo", "/usr/share/zoneinfo", "tz database of the build machine (\"\" leaves it out)")
	fs.StringVar(&opts.Tag, "tag", "nxwatcher:latest", "image name in the tarball")
	fs.StringVar(&opts.Version, "version", "", "org.opencontainers.image.version label")
	fs.StringVar(&opts.Revision, "revision", "", "org.opencontainers.image.revision label")
	fs.StringVar(&opts.Arch, "arch", runtime.GOARCH, "GOARCH the binary was built for")
	sbom := fs.String("sbom", "", "also write an SPDX 2.3 JSON SBOM of the binary (Go modules, toolchain) and the UI's npm packages here")
	lock := fs.String("package-lock", "web/ui/package-lock.json", "the UI's npm lockfile, for the SBOM (\"\" leaves npm out)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	created, err := createdTime(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	opts.Created = created
	img, err := Build(opts)
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := WriteArchive(w, img, opts.Tag); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fi, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s %s, %.1f MiB\n", *out, opts.Tag, digest, float64(fi.Size())/(1<<20))
	if *sbom != "" {
		f, err := os.Create(*sbom)
		if err != nil {
			return err
		}
		err = WriteSBOM(f, SBOMOptions{Binary: opts.Binary, PackageLock: *lock, Version: opts.Version, Created: created})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s: SPDX SBOM\n", *sbom)
	}
	return nil
}
