package tracestore

import (
	"context"
	"fmt"
	"os"
	"slices"
)

// maxCompactSources bounds one compaction's fan-in.
const maxCompactSources = 16

// compact merges blocks whose spans start in the same CompactionWindow.
// The merged block lists its sources; Open deletes sources that a committed
// merged block replaces, so a crash mid-compaction loses and duplicates nothing.
func (db *DB) compact(ctx context.Context) error {
	db.cutMu.Lock()
	defer db.cutMu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil
		}
		group := db.pickCompaction()
		if len(group) < 2 {
			return nil
		}
		if err := db.compactGroup(ctx, group); err != nil {
			return err
		}
	}
}

func (db *DB) pickCompaction() []*block {
	db.mu.RLock()
	defer db.mu.RUnlock()
	window := db.opts.CompactionWindow.Nanoseconds()
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
		if g := buckets[k]; len(g) >= 2 {
			return g[:min(len(g), maxCompactSources)]
		}
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
		for ord, id := range b.ids {
			refs = append(refs, compactRef{id, i, ord})
		}
		level = max(level, b.meta.Level)
		cp = max(cp, b.meta.WALCheckpoint)
		sources[i] = b.meta.ULID
	}
	// Stable: pieces of one trace keep block order (blocks sort by time).
	slices.SortStableFunc(refs, func(a, b compactRef) int { return compareIDs(a.id, b.id) })
	readers := make([]*pageReader, len(group))
	newOrd := make([][]uint32, len(group))
	for i, b := range group {
		readers[i] = b.newPageReader()
		newOrd[i] = make([]uint32, len(b.ids))
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
				d, err := readers[r.src].trace(r.ord)
				if err != nil {
					return fmt.Errorf("read block %s: %w", group[r.src].meta.ULID, err)
				}
				rec.data = append(rec.data, d...)
				newOrd[r.src][r.ord] = next
				e := group[r.src].entries[r.ord]
				rec.spans += int(e.spans)
				rec.minStart = min(rec.minStart, e.start)
				rec.maxEnd = max(rec.maxEnd, e.end)
			}
			if err := yield(rec); err != nil {
				return err
			}
			next++
			i = j
		}
		return nil
	}, level+1, sources, cp, func(bw *blockWriter) {
		for i, b := range group {
			bw.mergePostings(b, newOrd[i])
		}
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
