GO      ?= go
PKGS    ?= ./...
# Whole-suite budget: CI allows 90 minutes in all, builds included.
TEST_TIMEOUT ?= 45m

.PHONY: build test lint bench clean

build:
	$(GO) build -o bin/nxwatcher ./cmd/nxwatcher

test:
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Micro-benchmarks of every engine; the load benchmarks with targets are in bench/README.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(PKGS)

clean:
	rm -rf bin
