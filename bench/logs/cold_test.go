package logs

import (
	"os"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// coldCompression sets the compression of compacted blocks from
// NXWATCHER_BENCH_COLD_COMPRESSION ("s2" or "zstd"; unset: the default,
// zstd), so the scan benchmarks can be run on either (ADR 0097).
func coldCompression(o *logstore.Options) {
	if c := os.Getenv("NXWATCHER_BENCH_COLD_COMPRESSION"); c != "" {
		o.ColdCompression = logstore.Compression(c)
	}
}
