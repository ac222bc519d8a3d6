package tracestore

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// zstd levels of cut (level 0) and compacted blocks. Every span is
// compressed at both: cuts favour speed (level-0 blocks are ~2 bytes/span
// larger and live until their window closes). Compacted data pages use
// "default" since format 10 (ADR 0110: "better" cost 0.7 µs/span more for
// 1.4 bytes/span less); their columns too since format 12 (ADR 0123:
// "better" cost 0.27 against 0.14 CPU-s per 1M spans for 1.4 bytes/span,
// which format 12's stripped records left room for under 60).
const (
	cutLevel            = zstd.SpeedDefault
	compactLevel        = zstd.SpeedDefault
	compactColumnsLevel = zstd.SpeedDefault
)

// encWindow is the zstd window of the block encoders: larger than a page
// (so pages lose nothing), far below the 8 MiB default, since an encoder
// keeps two windows of history while it lives (one block write).
const encWindow = 2 << 20

// maxCompactSources bounds one compaction's fan-in (each source holds a
// page buffer of up to PageSize while merging).
const maxCompactSources = 32

// maxCopiedRuns bounds the runs of pages a compacted block keeps from its
// sources (ADR 0125): a reader walking it in ID order keeps one decoded
// page per run (maxReaderPages). Sources beyond it are rewritten.
const maxCopiedRuns = 8

// maxUnreferencedShare is the share of a source's page bytes that may be
// unreferenced (pieces merged elsewhere) for its pages to be kept; above
// it the source is rewritten, which drops them.
const maxUnreferencedShare = 0.25

// compactKeepPages makes compaction keep its sources' pages (ADR 0125);
// false only in tests comparing both.
var compactKeepPages = true

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
	maxSpans := db.opts.MaxCompactionSpans
	for _, k := range keys {
		// A block of maxSpans or more is done: merging it again would only
		// grow a compaction's memory (ADR 0122).
		g := slices.DeleteFunc(slices.Clone(buckets[k]), func(b *block) bool { return int64(b.meta.Spans) >= maxSpans })
		if len(g) < 2 {
			continue
		}
		closed := (k+1)*window+grace <= now
		if !all && !closed {
			g = slices.DeleteFunc(g, func(b *block) bool { return b.meta.Level > 0 })
			if len(g) < maxCompactSources {
				continue
			}
		}
		if g = smallestWithin(g, maxCompactSources, maxSpans); len(g) >= 2 {
			return g
		}
	}
	return nil
}

// smallestWithin returns the smallest blocks of g, at most n of them and
// their spans summing to at most maxSpans, in g's order.
func smallestWithin(g []*block, n int, maxSpans int64) []*block {
	var total int64
	for _, b := range g {
		total += int64(b.meta.Spans)
	}
	if len(g) <= n && total <= maxSpans {
		return g
	}
	pos := make(map[*block]int, len(g))
	for i, b := range g {
		pos[b] = i
	}
	bySize := slices.Clone(g)
	slices.SortStableFunc(bySize, func(a, b *block) int { return cmpInt(a.size, b.size) })
	var take []*block
	total = 0
	for _, b := range bySize {
		if len(take) == n || total+int64(b.meta.Spans) > maxSpans {
			break
		}
		take = append(take, b)
		total += int64(b.meta.Spans)
	}
	slices.SortFunc(take, func(a, b *block) int { return pos[a] - pos[b] })
	return take
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
	total := 0
	for _, b := range group {
		total += b.n
	}
	refs := make([]compactRef, 0, total)
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
	colSrcs := make([]*colSource, len(group))
	for i, b := range group {
		readers[i], cursors[i] = b.newPageReader(), b.cursor()
		newOrd[i] = make([]uint32, b.n)
		if compactFromColumns {
			colSrcs[i] = newColSource(b)
		}
	}
	keep, err := keptSources(group, colSrcs, refs)
	if err != nil {
		return err
	}
	base := make([]uint32, len(group))
	var unreferenced int64 // bytes of pieces left behind in kept pages
	var kr keptRecord
	next := uint32(0)
	var buf []byte // one for every trace: the block writer copies what it keeps
	nb, err := db.writeBlockWith(func(yield func(traceRecord) error) error {
		for i := 0; i < len(refs); {
			if err := ctx.Err(); err != nil {
				return err
			}
			j := i + 1
			for j < len(refs) && refs[j].id == refs[i].id {
				j++
			}
			rec := traceRecord{id: refs[i].id, minStart: ^uint64(0), data: buf[:0]}
			if cs := colSrcs[refs[i].src]; j == i+1 && cs != nil {
				// One piece whose source holds its columns: its stored
				// bytes and columns go over as they are (not walked).
				ok, err := cs.seek(refs[i].ord)
				if err != nil {
					return fmt.Errorf("read block %s: %w", cs.b.meta.ULID, err)
				}
				if ok {
					rec.cols = cs
					colSourceTraces.Add(1)
				}
			}
			for k := i; k < j; k++ {
				r := refs[k]
				_, e, err := cursors[r.src].at(r.ord)
				if err != nil {
					return fmt.Errorf("read block %s: %w", group[r.src].meta.ULID, err)
				}
				switch {
				case rec.cols != nil && keep[r.src]:
					// The record stays in its page, copied as it is.
					kr = keptRecord{page: base[r.src] + e.page, off: e.off, len: e.len}
					rec.kept = &kr
				default:
					if keep[r.src] {
						unreferenced += int64(e.len) // this piece's page is kept
					}
					var d []byte
					if rec.cols != nil {
						d, err = readers[r.src].storedTrace(e)
					} else {
						d, err = readers[r.src].trace(r.id, e)
					}
					if err != nil {
						return fmt.Errorf("read block %s: %w", group[r.src].meta.ULID, err)
					}
					rec.data = append(rec.data, d...)
				}
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
			buf = rec.data
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
		bw.finishMerge()
		bw.meta.UnreferencedBytes += unreferenced
		return nil
	}, func(bw *blockWriter) error {
		for i, b := range group {
			if keep[i] {
				at, err := bw.copyPages(b)
				if err != nil {
					return err
				}
				base[i] = at
			}
		}
		return nil
	}, total)
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

// keptSources says which of group's blocks keep their data pages in the
// compacted block (ADR 0125): those whose traces compaction takes from
// their columns (colSrcs), whose pages are zstd frames (s2 level-0 pages of
// formats 11 and 12 are rewritten), and whose unreferenced bytes, with the
// pieces this compaction merges into new records (refs, sorted by ID),
// stay within maxUnreferencedShare of their pages; the largest first, up
// to maxCopiedRuns runs of pages.
func keptSources(group []*block, colSrcs []*colSource, refs []compactRef) ([]bool, error) {
	keep := make([]bool, len(group))
	if !compactKeepPages {
		return keep, nil
	}
	merged := make([]int64, len(group))
	cursors := make([]*idxCursor, len(group))
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].id == refs[i].id {
			j++
		}
		for k := i; j-i > 1 && k < j; k++ {
			r := refs[k]
			if cursors[r.src] == nil {
				cursors[r.src] = group[r.src].cursor()
			}
			_, e, err := cursors[r.src].at(r.ord)
			if err != nil {
				return nil, fmt.Errorf("read block %s: %w", group[r.src].meta.ULID, err)
			}
			merged[r.src] += int64(e.len)
		}
		i = j
	}
	var cands []int
	for i, b := range group {
		var pageBytes int64
		for _, p := range b.pages {
			pageBytes += int64(p.ulen)
		}
		if colSrcs[i] != nil && b.meta.PageCodec == "" && len(b.pages) > 0 &&
			float64(b.meta.UnreferencedBytes+merged[i]) <= maxUnreferencedShare*float64(pageBytes) {
			cands = append(cands, i)
		}
	}
	slices.SortStableFunc(cands, func(a, b int) int { return cmp.Compare(group[b].meta.Spans, group[a].meta.Spans) })
	runs := 0
	for _, i := range cands {
		if r := len(group[i].runStarts()); runs+r <= maxCopiedRuns {
			keep[i], runs = true, runs+r
		}
	}
	return keep, nil
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

// compactFromColumns makes compaction take a single-piece trace's columns
// from its source block (colSource) instead of walking its bytes again
// (ADR 0117); false only in tests comparing both.
var compactFromColumns = true

// colSourceTraces counts traces compaction took from their sources'
// columns, process-wide (tests).
var colSourceTraces atomic.Int64

// colSource reads one compaction source's columns (format 10 and later)
// group by group and fills the column writer's walker from them: the
// span fields, span IDs and attribute values the walk would have read
// from the trace's bytes.
type colSource struct {
	b        *block
	t        *colTable
	g        colGroup
	ids, ibf []byte
	keys     []colSourceKey
	// dead lists the keys (indexes into keys) without a column in the
	// current group: the merged group gets none either (markDead).
	dead []int
	// the trace seek found: its span range in g
	from, to int
	nbuf     []byte
	nend     []int
	// translate: attribute values go into the merged group's columns by
	// code (putAttrs) instead of through the walker (addAttrs). xl maps
	// each key's source codes to the merged group's, for source group
	// xlGroup and merged group xlEpoch (colWriter.n).
	translate        bool
	xl               []colXlat
	xlGroup, xlEpoch int
	vb               []byte
}

// colXlat is one key's translation: col is its column in the merged
// group, codes[d] the merged code of source dictionary value d (0: not
// looked up yet).
type colXlat struct {
	col   *attrCol
	codes []uint64
}

// compactTranslateCodes makes compaction translate a single-source
// trace's attribute codes (colSource.putAttrs, ADR 0121); false only in
// tests comparing both.
var compactTranslateCodes = true

type colSourceKey struct {
	scoped      string
	scopedBytes []byte
	name        []byte // without the scope prefix, as colKV.key
	resource    bool
}

// newColSource returns b's column reader, or nil when b's columns cannot
// stand for its traces' bytes (older formats, or a table that does not
// read: the walk then meets the problem as before).
func newColSource(b *block) *colSource {
	if b.meta.Version < 10 || b.cols == nil {
		return nil
	}
	shared, err := b.timeTable()
	if err != nil {
		return nil
	}
	t, err := b.queryColTable(shared.keys)
	if err != nil {
		return nil
	}
	cs := &colSource{b: b, t: t, g: colGroup{index: -1, keepCodes: true}, translate: compactTranslateCodes, xlGroup: -1}
	for _, k := range t.keys {
		var key colSourceKey
		switch {
		case strings.HasPrefix(k, "span."):
			key = colSourceKey{scoped: k, name: []byte(k[len("span."):])}
		case strings.HasPrefix(k, "resource."):
			key = colSourceKey{scoped: k, name: []byte(k[len("resource."):]), resource: true}
		default:
			return nil
		}
		key.scopedBytes = []byte(k)
		cs.keys = append(cs.keys, key)
	}
	cs.xl = make([]colXlat, len(cs.keys))
	return cs
}

// seek makes trace ord current; false when its columns do not hold it
// (an irregular trace: its bytes are walked instead).
func (cs *colSource) seek(ord int) (bool, error) {
	gi := ord / cs.t.groupTraces
	if gi >= len(cs.t.groups) {
		return false, fmt.Errorf("%w: ordinal %d beyond the column groups", errCorruptColumns, ord)
	}
	if cs.g.index != gi {
		if err := cs.b.readColGroup(cs.t, gi, &cs.g); err != nil {
			return false, err
		}
		var err error
		if cs.ids, cs.ibf, err = cs.b.readSpanIDs(&cs.t.groups[gi], gi, cs.ids, cs.ibf); err != nil {
			cs.g.index = -1
			return false, err
		}
		cs.dead = cs.dead[:0]
		for _, ref := range cs.g.refs {
			if ref.clen == 0 {
				cs.dead = append(cs.dead, ref.key)
			}
		}
	}
	j := ord - gi*cs.t.groupTraces
	if cs.g.irregular[j] {
		return false, nil
	}
	cs.from, cs.to = int(cs.g.first[j]), int(cs.g.first[j+1])
	return true, nil
}

// fill sets w as a walk of the current trace's bytes would have.
func (cs *colSource) fill(w *colWalker) {
	w.spans, w.svcs, w.irregular = w.spans[:0], w.svcs[:0], false
	w.kvs, w.vbuf, w.res, w.nested = w.kvs[:0], w.vbuf[:0], w.res[:0], w.nested[:0]
	g := &cs.g
	// Names and services as bytes, in one buffer sliced once it is built.
	cs.nbuf, cs.nend = cs.nbuf[:0], cs.nend[:0]
	for k := cs.from; k < cs.to; k++ {
		cs.nbuf = append(cs.nbuf, g.spans[k].Name...)
		cs.nend = append(cs.nend, len(cs.nbuf))
		cs.nbuf = append(cs.nbuf, g.spans[k].Service...)
		cs.nend = append(cs.nend, len(cs.nbuf))
	}
	at := 0
	for k := cs.from; k < cs.to; k++ {
		s := &g.spans[k]
		nameEnd, svcEnd := cs.nend[2*(k-cs.from)], cs.nend[2*(k-cs.from)+1]
		cs2 := colSpan{start: s.Start, end: s.End, status: uint64(s.Status), kind: uint64(s.Kind),
			name: cs.nbuf[at:nameEnd], svc: -1, root: s.Root, idOff: -1, startOff: -1, endOff: -1}
		if s.HasService {
			w.svcs = append(w.svcs, cs.nbuf[nameEnd:svcEnd])
			cs2.svc = len(w.svcs) - 1
		}
		at = svcEnd
		copy(cs2.spanID[:], cs.ids[8*k:])
		if cs.translate {
			// putAttrs codes the attributes; the walker needs none.
			cs2.res = -1
			w.spans = append(w.spans, cs2)
			continue
		}
		cs2.kvFrom = int32(len(w.kvs))
		for ki := range cs.keys {
			if !cs.keys[ki].resource {
				cs.appendKV(w, ki, k)
			}
		}
		cs2.kvTo = int32(len(w.kvs))
		// Spans of one resource lie together; a new resource starts where
		// a resource attribute's value changes.
		cs2.res = len(w.res) - 1
		if k == cs.from || !cs.sameResource(k-1, k) {
			from := int32(len(w.kvs))
			for ki := range cs.keys {
				if cs.keys[ki].resource {
					cs.appendKV(w, ki, k)
				}
			}
			w.res = append(w.res, [2]int32{from, int32(len(w.kvs))})
			cs2.res = len(w.res) - 1
		}
		cs2.nFrom, cs2.nTo = int32(len(w.nested)), int32(len(w.nested))
		w.spans = append(w.spans, cs2)
	}
}

// appendKV adds key ki's value of group span k to w, if the span has one.
func (cs *colSource) appendKV(w *colWalker, ki, k int) {
	v := cs.g.attrs[ki][k]
	if v.Kind == ColumnAbsent {
		return
	}
	kv := colKV{key: cs.keys[ki].name, voff: int32(len(w.vbuf)), bad: v.Kind == colValueBad}
	if !kv.bad {
		w.vbuf = appendColumnValue(w.vbuf, v)
	}
	kv.vlen = int32(len(w.vbuf)) - kv.voff
	w.kvs = append(w.kvs, kv)
}

// appendColumnValue appends v's dictionary form (encodeAnyValue's).
func appendColumnValue(dst []byte, v ColumnValue) []byte {
	switch v.Kind {
	case ColumnString:
		return append(append(dst, 's'), v.S...)
	case ColumnInt:
		return binary.LittleEndian.AppendUint64(append(dst, 'i'), v.N)
	case ColumnFloat:
		return binary.LittleEndian.AppendUint64(append(dst, 'f'), v.N)
	case ColumnBool:
		return append(dst, 'b', byte(v.N))
	}
	return append(dst, 'e') // ColumnEmpty
}

// putAttrs codes the current trace's attribute values into cw's columns,
// its first span being span first of the merged group: each source code
// is translated to the merged group's once per source group and merged
// group (a lookup by value only the first time), instead of walking every
// value into cw.walk and looking it up again (addAttrs). Per span, span
// keys go first and then resource keys, each in key order, as fill and
// addAttrs register them, so keys and dictionaries come out the same.
func (cs *colSource) putAttrs(cw *colWriter, first int) {
	if cs.xlGroup != cs.g.index || cs.xlEpoch != cw.n {
		for i := range cs.xl {
			cs.xl[i].col, cs.xl[i].codes = nil, cs.xl[i].codes[:0]
		}
		cs.xlGroup, cs.xlEpoch = cs.g.index, cw.n
	}
	g := &cs.g
	for k := cs.from; k < cs.to; k++ {
		idx := first + k - cs.from
		for _, resource := range [2]bool{false, true} {
			for ki := range cs.keys {
				if cs.keys[ki].resource != resource {
					continue
				}
				code := g.attrCodes[ki][k]
				if code == attrCodeAbsent {
					continue
				}
				x := &cs.xl[ki]
				if code == attrCodeBad {
					c, mc := cw.lookupAttr(cs.keys[ki].scopedBytes, nil, true)
					x.col = c
					c.put(idx, mc)
					continue
				}
				d := int(code - attrCodeFirst)
				if d >= len(x.codes) {
					x.codes = append(x.codes, make([]uint64, d+1-len(x.codes))...)
				}
				mc := x.codes[d]
				if mc == 0 {
					cs.vb = appendColumnValue(cs.vb[:0], g.attrs[ki][k])
					var c *attrCol
					c, mc = cw.lookupAttr(cs.keys[ki].scopedBytes, cs.vb, false)
					x.col = c
					if mc >= attrCodeFirst {
						x.codes[d] = mc
					}
				}
				x.col.put(idx, mc)
			}
		}
	}
}

// sameResource reports whether group spans a and b carry the same
// resource attributes.
func (cs *colSource) sameResource(a, b int) bool {
	for ki := range cs.keys {
		if cs.keys[ki].resource && cs.g.attrs[ki][a] != cs.g.attrs[ki][b] {
			return false
		}
	}
	return true
}

// markDead gives the keys without a column in the current source group
// none in the group being written either: their values are not known.
func (cs *colSource) markDead(cw *colWriter) {
	for _, ki := range cs.dead {
		c, _ := cw.lookupAttr(cs.keys[ki].scopedBytes, nil, true)
		c.kill()
	}
}
