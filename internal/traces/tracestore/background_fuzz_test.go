package tracestore

import (
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzCompactFromColumns feeds corrupt columns files to what compaction
// reads of a source's columns (colSource: seek, fill, then the column
// writer's addWalked): errors, never a panic.
func FuzzCompactFromColumns(f *testing.F) {
	src := seedColumnsFile(f, 3)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = enc.Close() })
	name := filepath.Join(f.TempDir(), columnsFile)
	out := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		b := withColumnsFile(t, src, name, data)
		cs := newColSource(b)
		if cs == nil {
			return
		}
		cw, err := newColWriter(out, enc)
		if err != nil {
			t.Fatal(err)
		}
		defer cw.abort()
		for ord := 0; ord < b.n; ord++ {
			ok, err := cs.seek(ord)
			if err != nil {
				return
			}
			if ok {
				cs.fill(&cw.walk)
				cw.addWalked(0, 0)
				cs.markDead(cw)
			}
		}
	})
}
