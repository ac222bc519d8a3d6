GO      ?= go
PKGS    ?= ./...
# Whole-suite budget: CI allows 90 minutes in all, builds included.
TEST_TIMEOUT ?= 45m

.PHONY: build image vulncheck test test-go ui ui-deps ui-test test-clock-shift fuzz lint bench clean

# Release builds (the image) use a Go with every known standard-library fix:
# govulncheck finds 14 vulnerabilities of go1.26.8's standard library reachable
# from our code, all fixed in go1.27.3 (docs/security.md). The go command takes
# it from the module proxy; development and tests keep the machine's Go.
RELEASE_GOTOOLCHAIN ?= go1.27.3
# The Go vulnerability database as the golang.org/x/vulndb module carries it
# (vuln.go.dev itself cannot be reached from CI), indexed by its own tool.
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
GOVULNCHECK_VERSION ?= v1.9.0

build:
	$(GO) build -o bin/nxwatcher ./cmd/nxwatcher

# A container image without a Docker daemon: an OCI/docker-save tarball of a
# scratch image with the static binary, CA certificates and tzdata (ADR 0081).
# It writes an SPDX SBOM beside it (bin/nxwatcher-image.spdx.json).
image:
	GOTOOLCHAIN=$(RELEASE_GOTOOLCHAIN) CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/nxwatcher-static ./cmd/nxwatcher
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) $(GO) run ./deploy/image -binary=bin/nxwatcher-static -out=bin/nxwatcher-image.tar -tag=nxwatcher:latest -revision=$$(git rev-parse HEAD) -sbom=bin/nxwatcher-image.spdx.json

# govulncheck over every package, as the release toolchain builds them: fails
# on a known vulnerability in code we call (exit 3).
vulncheck:
	rm -rf bin/vulndb
	$(GO) mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out bin/vulndb
	GOTOOLCHAIN=$(RELEASE_GOTOOLCHAIN) $(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db "file://$$(pwd)/bin/vulndb" ./...

# The whole suite: the UI's checks (needs Node and npm), then every Go test
# (the browser tests in internal/ui/browsertest need Debian's chromium).
test: ui-test test-go

test-go:
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

# The web UI (web/ui) builds into internal/ui/dist, which is committed so
# running nxwatcher needs no Node. ui-test type-checks, lints, runs Vitest,
# rebuilds, and fails when the committed build differs from the sources.
UI_DIR = web/ui
ui-deps:
	cd $(UI_DIR) && npm ci --no-audit --no-fund

ui: ui-deps
	cd $(UI_DIR) && npm run build

ui-test: ui-deps
	cd $(UI_DIR) && npm run typecheck && npm run lint && npm test
	cd $(UI_DIR) && npm run build
	@if ! git diff --quiet -- internal/ui/dist || [ -n "$$(git status --porcelain -- internal/ui/dist)" ]; then \
		git status --short -- internal/ui/dist; \
		echo "internal/ui/dist is stale: run 'make ui' and commit internal/ui/dist"; exit 1; fi

# The packages whose tests take "now" from internal/testclock run again with
# the clock a year ahead and a year behind: a test that pins a calendar date,
# or code that mixes an injected clock with time.Now, fails here on any day.
CLOCK_PKGS = $(shell grep -rl --include='*_test.go' 'nxwatcher/internal/testclock' . | xargs -r -n1 dirname | sort -u)
test-clock-shift:
	NXWATCHER_TEST_CLOCK_SHIFT=8760h $(GO) test -count=1 -timeout 15m $(CLOCK_PKGS)
	NXWATCHER_TEST_CLOCK_SHIFT=-8760h $(GO) test -count=1 -timeout 15m $(CLOCK_PKGS)

# Every fuzz target for FUZZTIME each (see .ci/fuzz).
FUZZTIME ?= 15s
fuzz:
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Micro-benchmarks of every engine; the load benchmarks with targets are in bench/README.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(PKGS)

clean:
	rm -rf bin
