package logs

import (
	"io/fs"
	"path/filepath"
	"testing"
)

// BenchmarkDiskFootprint reports the bytes on disk per raw log byte of the
// 1M-line store of BenchmarkHTTPMetricQuery once compacted (block files
// only; the WAL is truncated by the flushes), split by file: chunks, blooms
// (per-chunk side data: bloom filters and summaries) and index. One op
// builds the whole store, so run it with -benchtime 1x.
func BenchmarkDiskFootprint(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		// Fanout 2: every head ends in a compacted block, the state all
		// data reaches once eight heads have been flushed (default fanout).
		db, _, raw, _, _ := millionLines(b, 2, false)
		sizes := map[string]int64{}
		var total int64
		for _, m := range db.Blocks() {
			total += m.Stats.SizeBytes
			b.Logf("block level %d: %d entries, %d bytes raw, %d bytes stored", m.Compaction.Level, m.Stats.Entries, m.Stats.RawBytes, m.Stats.SizeBytes)
		}
		filepath.WalkDir(db.Dir(), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Base(filepath.Dir(filepath.Dir(p))) != "blocks" {
				return nil
			}
			if fi, err := d.Info(); err == nil {
				sizes[d.Name()] += fi.Size()
			}
			return nil
		})
		b.ReportMetric(float64(total)/float64(raw), "disk/raw")
		for _, f := range []string{"chunks", "blooms", "index"} {
			b.ReportMetric(float64(sizes[f])/float64(raw), f+"/raw")
		}
	}
}
