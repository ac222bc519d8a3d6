package logs

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// BenchmarkCompactionWriteAmp simulates 24 h of steady ingest against a store
// on an injected clock: every simulated 15 s (the default check interval) one
// commit of that interval's lines and one Maintain round (flush an old or big
// head, compact, retention). It reports the block bytes written by flushes and
// compactions against the bytes flushed (how often each stored byte is
// written) and against the raw line bytes ingested. The WAL adds about one
// raw byte per raw byte on top (it is not compressed) and is not counted.
//
// Sizes are the defaults divided by -scale (head 16 MiB, block 1 GiB, chunk
// 256 KiB), so the ratio of head to block size, which decides the write
// amplification, is the default's while a simulated day takes seconds.
// "busy" fills a head every few minutes (flushes by size); "quiet" flushes by
// age every 30 min (48 heads a day).
func BenchmarkCompactionWriteAmp(b *testing.B) {
	const scale = 64
	for _, tc := range []struct {
		name        string
		linesPerSec float64
	}{{"busy", 6}, {"quiet", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var st waStats
			cpu0 := cpuTime()
			for range b.N {
				st = simulateDay(b, scale, tc.linesPerSec)
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(st.flushed+st.compacted)/float64(st.flushed), "written/flushed")
			b.ReportMetric(float64(st.flushed+st.compacted)/float64(st.raw), "written/raw")
			b.ReportMetric(float64(st.flushed)/float64(st.raw), "flushed/raw")
			b.ReportMetric(float64(st.flushes), "flushes")
			b.ReportMetric(float64(st.compactions), "compactions")
			b.ReportMetric(float64(st.blocks), "blocks-end")
			b.ReportMetric(float64(st.final)/float64(st.raw), "disk/raw")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/day")
		})
	}
}

type waStats struct {
	raw, flushed, compacted, final int64
	flushes, compactions, blocks   int
}

func simulateDay(b *testing.B, scale int, linesPerSec float64) waStats {
	b.Helper()
	start := time.Unix(1_700_000_000, 0)
	now := start
	opts := logstore.DefaultOptions()
	opts.HeadMaxBytes /= int64(scale)
	opts.MaxBlockSize /= int64(scale)
	opts.ChunkTargetSize /= scale
	opts.Fsync = logstore.FsyncNever
	opts.MinFreeBytes = 0
	opts.Now = func() time.Time { return now }
	db, err := logstore.Open(b.TempDir(), opts, logstore.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(5, 6))
	var ls []labels.Labels
	for s := range 8 {
		ls = append(ls, labels.FromStrings("app", "bench", "pod", fmt.Sprint("api-", s)))
	}
	var st waStats
	seen := map[string]bool{}
	account := func() {
		for _, m := range db.Blocks() {
			if seen[m.ULID] {
				continue
			}
			seen[m.ULID] = true
			if m.Compaction.Level == 1 {
				st.flushed += m.Stats.SizeBytes
				st.flushes++
			} else {
				st.compacted += m.Stats.SizeBytes
				st.compactions++
			}
		}
	}
	const step = 15 * time.Second
	carry := 0.0
	var headStart time.Time
	k := 0
	for now.Sub(start) < 24*time.Hour {
		carry += linesPerSec * step.Seconds()
		n := int(carry)
		carry -= float64(n)
		app := db.Appender()
		for i := range n {
			l := Line(r, k)
			st.raw += int64(len(l))
			ts := now.Add(time.Duration(i) * step / time.Duration(n))
			app.Append(ls[k%len(ls)], logstore.Entry{Timestamp: ts.UnixNano(), Line: l})
			k++
		}
		if _, err := app.Commit(); err != nil {
			b.Fatal(err)
		}
		if headStart.IsZero() && n > 0 {
			headStart = now
		}
		now = now.Add(step)
		// Maintain's own flush rule, done here first so the flushed block
		// is seen before a compaction in the same round merges it.
		if _, _, hb := db.HeadStats(); hb >= opts.HeadMaxBytes || (!headStart.IsZero() && now.Sub(headStart) >= opts.HeadMaxAge) {
			if err := db.FlushHead(); err != nil {
				b.Fatal(err)
			}
			headStart = time.Time{}
			account()
		}
		db.Maintain()
		account()
	}
	for _, m := range db.Blocks() {
		st.final += m.Stats.SizeBytes
	}
	st.blocks = len(db.Blocks())
	return st
}
