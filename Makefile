GO      ?= go
PKGS    ?= ./...
# Whole-suite budget: CI allows 90 minutes in all, builds included.
TEST_TIMEOUT ?= 45m

.PHONY: build test test-clock-shift fuzz lint bench clean

build:
	$(GO) build -o bin/nxwatcher ./cmd/nxwatcher

test:
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

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
