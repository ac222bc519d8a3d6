package tracestore

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// zstd levels of cut (level 0) and compacted blocks. Every span is
// compressed at both: cuts favour speed (level-0 blocks are ~2 bytes/span
// larger and live until their window closes). Compacted data pages use
// "default" since format 10 (ADR 0110: "better" cost 0.7 µs/span more for
// 1.4 bytes/span less); their columns keep "better" (compactColumnsLevel),
// which is cheap on their ~30 raw bytes per span and keeps 1.4 bytes/span.
const (
	cutLevel            = zstd.SpeedDefault
	compactLevel        = zstd.SpeedDefault
	compactColumnsLevel = zstd.SpeedBetterCompression
)

// encWindow is the zstd window of the block encoders: larger than a page
// (so pages lose nothing), far below the 8 MiB default, since an encoder
// keeps two windows of history while it lives (one block write).
const encWindow = 2 << 20

// maxCompactSources bounds one compaction's fan-in (each source holds a
// page buffer of up to PageSize while merging).
const maxCompactSources = 32

// Compact merges the blocks of every CompactionWindow now, closed or not.
// Run does this by itself once a window has closed; benchmarks and tools call
// Compact to see the compacted layout without waiting.
func (db *DB) Compact(ctx context.Context) error { return db.compactWith(ctx, true) }

// compact is Compact (tests).
func (db *DB) compact(ctx context.Context) error { return db.compactWith(ctx, true) }

// compactWith merges blocks whose spans start in the same CompactionWindow.
// The merged block lists its sources; Open deletes sources that a committed
// merged block replaces, so a crash mid-compaction loses and duplicates nothing.
//
// Unless all is set, a window is merged only once it has closed (no cut can
// add to it any more, see pickCompaction): rewriting a still-filling window at
// every cut cost each span several compressions.
func (db *DB) compactWith(ctx context.Context, all bool) error {
	db.cutMu.Lock()
	defer db.cutMu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil
		}
		group := db.pickCompaction(all)
		if len(group) < 2 {
			return nil
		}
		if err := db.compactGroup(ctx, group); err != nil {
			return err
		}
	}
}

// pickCompaction returns blocks to merge, in db.blocks order (so a trace's
// pieces keep their order). A window qualifies once it is closed: its end is
// older than TraceIdle+MaxTraceLive+MaxBlockDuration, after which only late
// spans can land in it. An open window is merged only when it has
// maxCompactSources level-0 blocks (high ingest rates cut often), to bound
// the number of blocks a query visits. The smallest blocks go first, so a
// big window is built in tiers instead of rewriting its largest block for
// every small one.
func (db *DB) pickCompaction(all bool) []*block {
	db.mu.RLock()
	defer db.mu.RUnlock()
	window := db.opts.CompactionWindow.Nanoseconds()
	grace := (db.opts.TraceIdle + db.opts.MaxTraceLive + db.opts.MaxBlockDuration).Nanoseconds()
	now := db.opts.Now().UnixNano()
	buckets := map[int64][]*block{}
	var keys []int64
	for _, b := range db.blocks {
		k := b.meta.MinTime / window
		if _, ok := buckets[k]; !ok {
			keys = append(keys, k)
		}
		buckets[k] = append(buckets[k], b)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g := buckets[k]
		if len(g) < 2 {
			continue
		}
		closed := (k+1)*window+grace <= now
		if !all && !closed {
			g = slices.DeleteFunc(slices.Clone(g), func(b *block) bool { return b.meta.Level > 0 })
			if len(g) < maxCompactSources {
				continue
			}
		}
		if len(g) > maxCompactSources {
			pos := make(map[*block]int, len(g))
			for i, b := range g {
				pos[b] = i
			}
			g = slices.Clone(g)
			slices.SortStableFunc(g, func(a, b *block) int { return cmpInt(a.size, b.size) })
			g = g[:maxCompactSources]
			slices.SortFunc(g, func(a, b *block) int { return pos[a] - pos[b] })
		}
		return g
	}
	return nil
}

type compactRef struct {
	id  TraceID
	src int
	ord int
}

func (db *DB) compactGroup(ctx context.Context, group []*block) error {
	for _, b := range group {
		b.refs.Add(1)
	}
	defer func() {
		for _, b := range group {
			b.release()
		}
	}()
	var refs []compactRef
	level, cp := 0, 0
	sources := make([]string, len(group))
	for i, b := range group {
		cur := b.cursor()
		for ord := 0; ord < b.n; ord++ {
			id, _, err := cur.at(ord)
			if err != nil {
				return fmt.Errorf("read block %s: %w", b.meta.ULID, err)
			}
			refs = append(refs, compactRef{id, i, ord})
		}
		level = max(level, b.meta.Level)
		cp = max(cp, b.meta.WALCheckpoint)
		sources[i] = b.meta.ULID
	}
	// Stable: pieces of one trace keep block order (blocks sort by time).
	slices.SortStableFunc(refs, func(a, b compactRef) int { return compareIDs(a.id, b.id) })
	readers := make([]*pageReader, len(group))
	cursors := make([]*idxCursor, len(group))
	newOrd := make([][]uint32, len(group))
	for i, b := range group {
		readers[i], cursors[i] = b.newPageReader(), b.cursor()
		newOrd[i] = make([]uint32, b.n)
	}
	next := uint32(0)
	nb, err := db.writeBlockWith(func(yield func(traceRecord) error) error {
		for i := 0; i < len(refs); {
			if err := ctx.Err(); err != nil {
				return err
			}
			j := i
			rec := traceRecord{id: refs[i].id, minStart: ^uint64(0)}
			for ; j < len(refs) && refs[j].id == refs[i].id; j++ {
				r := refs[j]
				_, e, err := cursors[r.src].at(r.ord)
				if err != nil {
					return fmt.Errorf("read block %s: %w", group[r.src].meta.ULID, err)
				}
				d, err := readers[r.src].trace(e)
				if err != nil {
					return fmt.Errorf("read block %s: %w", group[r.src].meta.ULID, err)
				}
				rec.data = append(rec.data, d...)
				newOrd[r.src][r.ord] = next
				rec.spans += int(e.spans)
				rec.minStart = min(rec.minStart, e.start)
				rec.maxEnd = max(rec.maxEnd, e.end)
			}
			if j-i > 1 {
				// Pieces from several blocks: a retried span may be in two.
				d, dups, err := dedupTraceData(rec.data)
				if err != nil {
					return fmt.Errorf("trace %x: %w", rec.id[:], err)
				}
				if dups > 0 {
					rec.data, rec.spans = d, rec.spans-dups
					db.m.duplicateSpans.WithLabelValues("compaction").Add(float64(dups))
				}
			}
			if err := yield(rec); err != nil {
				return err
			}
			next++
			i = j
		}
		return nil
	}, level+1, sources, cp, func(bw *blockWriter) error {
		for i, b := range group {
			if err := bw.mergePostings(b, newOrd[i]); err != nil {
				return fmt.Errorf("block %s: %w", b.meta.ULID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write compacted block: %w", err)
	}
	db.mu.Lock()
	db.blocks = slices.DeleteFunc(db.blocks, func(b *block) bool { return slices.Contains(group, b) })
	db.blocks = append(db.blocks, nb)
	sortBlocks(db.blocks)
	db.mu.Unlock()
	for _, b := range group {
		_ = b.retire()
		if err := removeBlockDir(b.dir); err != nil {
			db.logger.Warn("remove compacted source", "block", b.meta.ULID, "err", err)
		}
	}
	db.m.compactions.Inc()
	return nil
}

// applyRetention deletes blocks older than Retention, then the oldest blocks
// while the total exceeds RetentionSize.
func (db *DB) applyRetention() error {
	db.cutMu.Lock()
	defer db.cutMu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	cutoff := db.opts.Now().Add(-db.opts.Retention).UnixNano()
	db.mu.Lock()
	bs := slices.Clone(db.blocks)
	slices.SortFunc(bs, func(a, b *block) int { return cmpInt(a.meta.MaxTime, b.meta.MaxTime) })
	var total int64
	for _, b := range bs {
		total += b.size
	}
	drop := map[*block]string{}
	for _, b := range bs {
		if b.meta.MaxTime < cutoff {
			drop[b] = "time"
			total -= b.size
		}
	}
	if limit := db.opts.RetentionSize; limit > 0 {
		for _, b := range bs {
			if total <= limit {
				break
			}
			if _, ok := drop[b]; !ok {
				drop[b] = "size"
				total -= b.size
			}
		}
	}
	db.blocks = slices.DeleteFunc(db.blocks, func(b *block) bool { _, ok := drop[b]; return ok })
	db.mu.Unlock()
	var firstErr error
	for b, reason := range drop {
		_ = b.retire()
		if err := removeBlockDir(b.dir); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("remove block %s: %w", b.meta.ULID, err)
		}
		db.m.retentionDrops.WithLabelValues(reason).Inc()
	}
	return firstErr
}

// removeBlockDir renames first so a crash mid-delete leaves a ".tmp"
// directory that Open discards, never a half-deleted block.
func removeBlockDir(dir string) error {
	tmp := dir + ".deleted.tmp"
	if err := os.Rename(dir, tmp); err != nil {
		return err
	}
	return os.RemoveAll(tmp)
}
