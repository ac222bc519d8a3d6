package logstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Compact merges runs of small adjacent blocks into one, re-chunking small
// chunks to the target size. It does at most one merge per call.
func (db *DB) Compact() error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.mu.RLock()
	run := db.compactionRun()
	for _, b := range run {
		b.acquire()
	}
	db.mu.RUnlock()
	if len(run) < 2 {
		for _, b := range run {
			b.release()
		}
		return nil
	}
	nb, err := db.mergeBlocks(run)
	for _, b := range run {
		b.release()
	}
	if err != nil {
		return fmt.Errorf("compact %d blocks: %w", len(run), err)
	}
	db.mu.Lock()
	db.blocks = slices.DeleteFunc(db.blocks, func(b *block) bool { return slices.Contains(run, b) })
	db.blocks = append(db.blocks, nb)
	db.sortBlocks()
	db.mu.Unlock()
	db.m.compactions.Inc()
	db.m.blockBytesCompaction.Add(float64(nb.meta.Stats.SizeBytes))
	for _, b := range run {
		if err := db.deleteBlock(b); err != nil {
			return fmt.Errorf("compact: %w", err)
		}
	}
	return nil
}

// compactionRun picks the first run of adjacent blocks of one compaction
// level, at least CompactionFanout long (at most 16), that together stay
// under the size and span limits; the merge makes a block one level up.
// Merging only blocks of equal level (tiered compaction, ADR 0095) writes
// each stored byte once per level instead of once per merge: the previous
// rule merged every new small block into one growing block, rewriting it
// each time (write amplification 20–25 over a simulated day).
func (db *DB) compactionRun() []*block {
	const maxRun = 16
	fanout := max(db.opts.CompactionFanout, 2)
	bs := db.blocks
	for i := 0; i+fanout <= len(bs); i++ {
		level := bs[i].meta.Compaction.Level
		run := []*block{bs[i]}
		size := bs[i].meta.Stats.SizeBytes
		lo, hi := bs[i].meta.MinTime, bs[i].meta.MaxTime
		for j := i + 1; j < len(bs) && len(run) < maxRun; j++ {
			b := bs[j]
			if b.meta.Compaction.Level != level {
				break
			}
			nlo, nhi := min(lo, b.meta.MinTime), max(hi, b.meta.MaxTime)
			if size+b.meta.Stats.SizeBytes > db.opts.MaxBlockSize || time.Duration(nhi-nlo) > db.opts.MaxBlockSpan {
				break
			}
			run = append(run, b)
			size += b.meta.Stats.SizeBytes
			lo, hi = nlo, nhi
		}
		if len(run) >= fanout {
			return run
		}
	}
	return nil
}

func (db *DB) mergeBlocks(run []*block) (*block, error) {
	id := newULID(db.opts.Now())
	w, err := newBlockWriter(filepath.Join(db.dir, "blocks"), id)
	if err != nil {
		return nil, err
	}
	level := 0
	sources := []string{}
	for _, b := range run {
		level = max(level, b.meta.Compaction.Level)
		sources = append(sources, b.meta.ULID)
		sources = append(sources, b.meta.Compaction.Sources...)
		w.meta.WALSegment = max(w.meta.WALSegment, b.meta.WALSegment)
	}
	slices.Sort(sources)
	w.meta.Compaction = BlockCompaction{Level: level + 1, Sources: slices.Compact(sources)}

	// Union of streams, in label order.
	type ref struct {
		b *block
		i int
	}
	byKey := map[string][]ref{}
	var keys []labels.Labels
	for _, b := range run {
		for i := range b.streams {
			k := b.streams[i].lbls.String()
			if _, ok := byKey[k]; !ok {
				keys = append(keys, b.streams[i].lbls)
			}
			byKey[k] = append(byKey[k], ref{b, i})
		}
	}
	slices.SortFunc(keys, labels.Compare)
	for _, ls := range keys {
		var cs []chunkHandle
		for _, r := range byKey[ls.String()] {
			st := &r.b.streams[r.i]
			for j := range st.chunks {
				cs = append(cs, blockChunkHandle{b: r.b, c: &st.chunks[j]})
			}
		}
		sc, err := db.rechunk(cs)
		if err == nil {
			err = w.addStream(ls, sc)
		}
		if err != nil {
			w.abort()
			return nil, fmt.Errorf("stream %s: %w", ls, err)
		}
	}
	if _, err := w.finish(); err != nil {
		return nil, err
	}
	return openBlock(w.final)
}

// rechunk merges a stream's chunks: full chunks that overlap nothing are
// copied as stored (recompressed in the cold encoding if they are not in
// it yet); the rest are merged in time order and cut again. Compacted
// chunks' bloom filters are folded down to coldBloomMaxFill.
func (db *DB) rechunk(cs []chunkHandle) ([]storedChunk, error) {
	slices.SortStableFunc(cs, func(a, b chunkHandle) int { return cmpInt64(a.Meta().MinTime, b.Meta().MinTime) })
	enc := db.opts.ColdCompression.encoding()
	var out []storedChunk
	var pending []chunkHandle
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		it := newMergeIter(context.Background(), pending, SelectHints{Start: minTime, End: maxTime}, nil, make(chan struct{}, 1), labels.EmptyLabels())
		defer it.Close()
		var rc rawChunk
		for it.Next() {
			e := it.At()
			rc.append(e.Timestamp, e.Line, e.Metadata)
			if rc.size() >= db.opts.ChunkTargetSize {
				out = append(out, storedFromRaw(&rc, enc))
				rc = rawChunk{}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		if rc.entries > 0 {
			out = append(out, storedFromRaw(&rc, enc))
		}
		pending = pending[:0]
		return nil
	}
	for i, c := range cs {
		m := c.Meta()
		overlaps := (i > 0 && m.MinTime <= cs[i-1].Meta().MaxTime) || (i+1 < len(cs) && cs[i+1].Meta().MinTime <= m.MaxTime)
		bc, isBlock := c.(blockChunkHandle)
		if isBlock && !overlaps && m.RawBytes >= db.opts.ChunkTargetSize/2 {
			if err := flush(); err != nil {
				return nil, err
			}
			sc, err := bc.readRaw()
			if err != nil {
				return nil, err
			}
			// A chunk is kept byte for byte when it is already in the cold
			// encoding and has a summary; otherwise (an s2 chunk of a
			// flushed block, a version 1 chunk) it is recompressed and
			// summarised, its bloom kept.
			if len(sc.data) == 0 || sc.data[0] != enc || sc.summary == nil {
				if sc, err = recode(sc, enc); err != nil {
					return nil, err
				}
				sc.bloom = foldBloom(sc.bloom)
			}
			out = append(out, sc)
			continue
		}
		pending = append(pending, c)
	}
	return out, flush()
}

// recode decompresses a stored chunk and stores it again in encoding, with
// a summary.
func recode(sc storedChunk, encoding byte) (storedChunk, error) {
	raw, release, err := decompressChunk(sc.data, false, sc.meta.RawBytes)
	release()
	if err != nil {
		return sc, err
	}
	v, err := parseChunk(raw, nil)
	if err != nil {
		return sc, err
	}
	sc.data = compressChunk(raw, encoding)
	sc.summary = buildSummary(v)
	sc.meta.JSONObjects = jsonObjectChunk(v)
	return sc, nil
}

func storedFromRaw(rc *rawChunk, encoding byte) storedChunk {
	c := cutChunkAs(rc, encoding)
	return storedChunk{meta: c.meta, data: c.data, bloom: foldBloom(c.bloom), summary: c.sum}
}

// ApplyRetention deletes blocks past the age limit, then the oldest blocks
// while the total exceeds the size cap.
func (db *DB) ApplyRetention() error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.mu.Lock()
	var drop []*block
	reasons := map[*block]string{}
	if db.opts.Retention > 0 {
		cutoff := db.opts.Now().Add(-db.opts.Retention).UnixNano()
		for _, b := range db.blocks {
			if b.meta.MaxTime < cutoff {
				drop = append(drop, b)
				reasons[b] = "retention_age"
			}
		}
	}
	if db.opts.RetentionSize > 0 {
		var total int64
		keep := slices.DeleteFunc(slices.Clone(db.blocks), func(b *block) bool { return reasons[b] != "" })
		for _, b := range keep {
			total += b.meta.Stats.SizeBytes
		}
		slices.SortFunc(keep, func(a, b *block) int { return cmpInt64(a.meta.MaxTime, b.meta.MaxTime) })
		for _, b := range keep {
			if total <= db.opts.RetentionSize {
				break
			}
			drop = append(drop, b)
			reasons[b] = "retention_size"
			total -= b.meta.Stats.SizeBytes
		}
	}
	db.blocks = slices.DeleteFunc(db.blocks, func(b *block) bool { return reasons[b] != "" })
	db.mu.Unlock()
	for _, b := range drop {
		if err := db.deleteBlock(b); err != nil {
			return fmt.Errorf("apply retention: %w", err)
		}
		db.m.blocksDeleted.WithLabelValues(reasons[b]).Inc()
	}
	return nil
}

// deleteBlock renames the block out of sight first, so a crash never leaves
// half a block that Open would load, then removes it once queries let go.
func (db *DB) deleteBlock(b *block) error {
	gone := b.dir + ".deleted"
	if err := os.Rename(b.dir, gone); err != nil {
		return fmt.Errorf("delete block %s: %w", b.meta.ULID, err)
	}
	<-b.markDeleted()
	b.close()
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("delete block %s: %w", b.meta.ULID, err)
	}
	return nil
}
