package main

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/nx-watcher/nxwatcher/internal/procmem"
)

// releasedBeforeReady is set once serveReleaseBeforeReady has run.
var releasedBeforeReady atomic.Bool

// serveReleaseBeforeReady returns start-up's garbage and the executable's
// pages that package init and opening the stores touched (~60 of the
// ~90 MiB resident once the first config is applied, ADR 0088) at once. It
// is meant to run after the first config is in force and before /-/ready
// answers 200 (an app.Options.BeforeReady hook, the foundation's to wire),
// so that what a client sees at ready is already released; then
// serveMemoryRelease does not release again at once (a second release a
// few milliseconds later measured 6–9 MiB more executable pages in the
// seconds after ready, not less).
func serveReleaseBeforeReady(logger *slog.Logger) {
	procmem.Release(logger)
	releasedBeforeReady.Store(true)
}

// serveMemoryRelease keeps serve's resident set to what it uses: as soon as
// the first config is applied (unless serveReleaseBeforeReady just did),
// ten seconds later, and again after every minute in which serve used less
// than 2 % of a core, it returns the Go heap's free pages to the system
// and drops the executable's pages from the process (they fault back in
// when used), no longer mapping 2 MiB of them at a time (ADR 0089). It
// returns when ctx ends. ADR 0086 and 0088; it replaces the one-time
// procmem.ReleaseStartupPages of ADR 0051 for serve.
func serveMemoryRelease(ctx context.Context, logger *slog.Logger) {
	procmem.ReleaseWhenQuiet(ctx, logger, serveQuietOptions())
}

func serveQuietOptions() procmem.QuietOptions {
	return procmem.QuietOptions{FreeHeap: true, AtStart: !releasedBeforeReady.Load(), NoHugePages: true}
}
