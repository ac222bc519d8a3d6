package main

import (
	"context"
	"log/slog"

	"github.com/nx-watcher/nxwatcher/internal/procmem"
)

// serveMemoryRelease keeps serve's resident set to what it uses: as soon as
// the first config is applied (start-up's garbage and the executable's
// pages that package init and opening the stores touched: ~60 of the
// ~95 MiB resident at ready, ADR 0088), ten seconds later, and again after
// every minute in which serve used less than 2 % of a core, it returns the
// Go heap's free pages to the system and drops the executable's pages from
// the process (they fault back in when used), no longer mapping 2 MiB of
// them at a time (ADR 0089). It returns when ctx ends.
// ADR 0086 and 0088; it replaces the one-time procmem.ReleaseStartupPages
// of ADR 0051 for serve.
func serveMemoryRelease(ctx context.Context, logger *slog.Logger) {
	procmem.ReleaseWhenQuiet(ctx, logger, procmem.QuietOptions{FreeHeap: true, AtStart: true, NoHugePages: true})
}
