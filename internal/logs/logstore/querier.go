package logstore

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// chunkHandle is a chunk from the head or a block.
type chunkHandle interface {
	Meta() ChunkMeta
	mayContain(needles []string) bool
	// view decodes the chunk; with pooled the buffer is recycled by release,
	// so nothing may alias it afterwards. With a searcher, a chunk whose lines
	// cannot hold its needle may come back empty, undecoded.
	view(pooled bool, s *searcher) (v *chunkView, release func(), err error)
	// storedSize is the chunk's compressed size; 0 for the head's open
	// chunk, which is not compressed.
	storedSize() int
	// summary is the chunk's per-second counts (summary.go); nil if it has
	// none (the head's open chunk, chunks of version 1 blocks).
	summary() []byte
}

// SelectHints narrow a Select. Start is inclusive, End exclusive (Unix ns).
type SelectHints struct {
	Start, End int64
	// Contains are substrings every returned line contains (from `|=`
	// filters). Chunks whose bloom filter rules one out are never read; in the
	// others one bytes.Index runs over all lines of the chunk at once.
	Contains []string
	// Metadata keeps entries whose label of that name, taken from the entry's
	// structured metadata or else from the stream labels, equals the value
	// (`| trace_id="…"` before any parser). Chunks whose bloom lacks
	// "name=value" are skipped unless the stream label itself matches.
	Metadata []labels.Label
	// IgnoreBlooms reads every chunk even when its bloom rules it out, to
	// measure brute-force scans.
	IgnoreBlooms bool
	// Filter, if set, is applied to every line in the chunk workers, in parallel.
	Filter func(line string) bool
	// Backward yields newest entries first.
	Backward bool
	// ReuseBuffers lets the iterator recycle a chunk's decompression
	// buffer once every entry of the chunk has been yielded. An entry's
	// Line (and any substring of it) is then valid only until the next
	// call to Next or Close: for callers that keep no line, such as
	// metric queries (labels.Labels copy their strings).
	ReuseBuffers bool
	// Charge, if set, is called for every stream as Select adds it, with
	// its labels, the number of its chunks kept and their uncompressed
	// bytes, so a query can account the memory of its selection and the
	// bytes it is about to read before reading any; an error ends the
	// Select with it.
	Charge func(ls labels.Labels, chunks int, rawBytes int64) error
}

// EntryIterator is a pull iterator over one stream's entries.
type EntryIterator interface {
	Next() bool
	At() Entry
	Err() error
	Close() error
}

// Stream is one selected stream.
type Stream struct {
	Labels labels.Labels
	chunks []chunkHandle
	q      *Querier
	hints  SelectHints
	search *searcher // for hints.Contains, shared by the Select's streams
}

// Iterator returns the stream's entries in hint order, merged across head and
// blocks, loading at most a few chunks ahead in parallel.
func (s *Stream) Iterator(ctx context.Context) EntryIterator {
	it := newMergeIter(ctx, s.chunks, s.hints, s.search, s.q.sem, s.Labels)
	if s.q.stats != nil {
		it.dupCounter = s.q.stats.duplicates
		it.corruptCounter = s.q.stats.corruptChunks
	}
	return it
}

// ChunkStats sums the metadata of the stream's chunks (no chunk is read).
func (s *Stream) ChunkStats() (chunks, entries int, bytes int64) {
	for _, c := range s.chunks {
		m := c.Meta()
		chunks++
		entries += m.Entries
		bytes += int64(m.RawBytes)
	}
	return
}

// StoredBytes is the compressed size of the stream's chunks (the head's
// open chunk, kept uncompressed, counts 0), for query stats.
func (s *Stream) StoredBytes() int64 {
	var n int64
	for _, c := range s.chunks {
		n += int64(c.storedSize())
	}
	return n
}

// ChunkMetas lists the stream's chunks (no chunk is read).
func (s *Stream) ChunkMetas() []ChunkMeta {
	out := make([]ChunkMeta, len(s.chunks))
	for i, c := range s.chunks {
		out[i] = c.Meta()
	}
	return out
}

// StreamSet iterates over selected streams, sorted by labels.
type StreamSet interface {
	Next() bool
	At() *Stream
	Err() error
}

type sliceStreamSet struct {
	s   []*Stream
	i   int
	err error
}

func (s *sliceStreamSet) Next() bool {
	if s.err != nil || s.i >= len(s.s) {
		return false
	}
	s.i++
	return true
}
func (s *sliceStreamSet) At() *Stream { return s.s[s.i-1] }
func (s *sliceStreamSet) Err() error  { return s.err }

// Querier reads a consistent view of heads and blocks over a time range.
// Close releases the blocks it pinned.
type Querier struct {
	mint, maxt int64
	heads      []*head
	blocks     []*block
	sem        chan struct{}
	stats      *queryMetrics
	closeOnce  sync.Once
}

// Close unpins the querier's blocks.
func (q *Querier) Close() error {
	q.closeOnce.Do(func() {
		for _, b := range q.blocks {
			b.release()
		}
	})
	return nil
}

type streamKey struct {
	hash uint64
}

// Select returns the streams matching all matchers with at least one chunk
// in the hint range whose bloom admits the needles.
func (q *Querier) Select(ctx context.Context, hints SelectHints, ms ...*labels.Matcher) StreamSet {
	if hints.End == 0 {
		hints.End = maxTime
	}
	hints.Start = max(hints.Start, q.mint)
	hints.End = min(hints.End, q.maxt)
	search := searcherFor(hints.Contains)
	byHash := map[uint64][]*Stream{}
	var out []*Stream
	var chargeErr error
	add := func(ls labels.Labels, cs []chunkHandle) {
		if chargeErr != nil {
			return
		}
		needles := hints.Contains
		if len(hints.Metadata) > 0 {
			needles = slices.Clone(needles)
			for _, l := range hints.Metadata {
				if ls.Get(l.Name) != l.Value { // else entries without metadata match
					needles = append(needles, l.Name+"="+l.Value)
				}
			}
		}
		var keep []chunkHandle
		for _, c := range cs {
			m := c.Meta()
			if m.MaxTime < hints.Start || m.MinTime >= hints.End {
				continue
			}
			if q.stats != nil {
				q.stats.chunksConsidered.Inc()
			}
			if len(needles) > 0 && !hints.IgnoreBlooms && !c.mayContain(needles) {
				if q.stats != nil {
					q.stats.chunksSkipped.Inc()
				}
				continue
			}
			keep = append(keep, c)
		}
		if len(keep) == 0 {
			return
		}
		if hints.Charge != nil {
			var raw int64
			for _, c := range keep {
				raw += int64(c.Meta().RawBytes)
			}
			if chargeErr = hints.Charge(ls, len(keep), raw); chargeErr != nil {
				return
			}
		}
		h := ls.Hash()
		for _, s := range byHash[h] {
			if labels.Equal(s.Labels, ls) {
				s.chunks = append(s.chunks, keep...)
				return
			}
		}
		s := &Stream{Labels: ls, chunks: keep, q: q, hints: hints, search: search}
		byHash[h] = append(byHash[h], s)
		out = append(out, s)
	}
	for _, b := range q.blocks {
		if ctx.Err() != nil {
			return &sliceStreamSet{err: ctx.Err()}
		}
		if b.meta.MaxTime < hints.Start || b.meta.MinTime >= hints.End {
			continue
		}
		for _, i := range b.streamsMatching(ms) {
			if chargeErr != nil {
				return &sliceStreamSet{err: chargeErr}
			}
			st := &b.streams[i]
			cs := make([]chunkHandle, len(st.chunks))
			for j := range st.chunks {
				cs[j] = blockChunkHandle{b: b, c: &st.chunks[j]}
			}
			add(st.lbls, cs)
		}
	}
	for _, h := range q.heads {
		if h.maxT.Load() < hints.Start || h.minT.Load() >= hints.End {
			continue
		}
		for _, s := range h.streamsMatching(ms) {
			if chargeErr != nil {
				return &sliceStreamSet{err: chargeErr}
			}
			add(s.lbls, s.snapshot())
		}
	}
	if chargeErr != nil {
		return &sliceStreamSet{err: chargeErr}
	}
	slices.SortFunc(out, func(a, b *Stream) int { return labels.Compare(a.Labels, b.Labels) })
	return &sliceStreamSet{s: out}
}

// LabelNames returns the sorted label names of streams matching ms with data
// in the querier's range.
func (q *Querier) LabelNames(ctx context.Context, ms ...*labels.Matcher) ([]string, error) {
	set := map[string]struct{}{}
	err := q.eachSeries(ctx, ms, func(ls labels.Labels) {
		ls.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
	})
	return sortedKeys(set), err
}

// LabelValues returns the sorted values of name among matching streams.
func (q *Querier) LabelValues(ctx context.Context, name string, ms ...*labels.Matcher) ([]string, error) {
	set := map[string]struct{}{}
	err := q.eachSeries(ctx, ms, func(ls labels.Labels) {
		if v := ls.Get(name); v != "" {
			set[v] = struct{}{}
		}
	})
	return sortedKeys(set), err
}

// Series returns the distinct label sets of matching streams, sorted.
func (q *Querier) Series(ctx context.Context, ms ...*labels.Matcher) ([]labels.Labels, error) {
	set := map[string]labels.Labels{}
	err := q.eachSeries(ctx, ms, func(ls labels.Labels) { set[ls.String()] = ls })
	out := make([]labels.Labels, 0, len(set))
	for _, k := range sortedKeys(set) {
		out = append(out, set[k])
	}
	return out, err
}

func (q *Querier) eachSeries(ctx context.Context, ms []*labels.Matcher, fn func(labels.Labels)) error {
	ss := q.Select(ctx, SelectHints{Start: q.mint, End: q.maxt}, ms...)
	for ss.Next() {
		fn(ss.At().Labels)
	}
	return ss.Err()
}

// mergeIter merges the sorted entries of possibly overlapping chunks.
type mergeIter struct {
	ctx     context.Context
	chunks  []chunkHandle
	metas   []ChunkMeta // chunks[i].Meta(), asked once (next1 looks per entry)
	futures []*chunkFuture
	next    int
	hints   SelectHints
	search  *searcher
	sem     chan struct{}
	stream  labels.Labels
	h       cursorHeap
	cur     Entry
	err     error
	wg      sync.WaitGroup
	// curJSON: cur comes from a chunk whose meta says JSONObjects;
	// lastJSON is next1's.
	curJSON, lastJSON bool

	// Exact duplicates (same timestamp and line) from overlapping chunks,
	// e.g. a retry stored in the head after the original was flushed to a
	// block, are yielded once: the lines already yielded at the current
	// timestamp are remembered until the timestamp changes.
	atTs      int64
	linesAtTs []string
	dups      int
	// Buffers of chunks whose entries were all yielded, returned at the
	// next call to Next (ReuseBuffers): the last entry may still be in use
	// until then.
	pending    []func()
	dupCounter interface{ Add(float64) }
	// Counts chunks that fail with ErrCorruptChunk.
	corruptCounter interface{ Inc() }
}

type chunkFuture struct {
	done    chan struct{}
	es      []Entry
	release func() // with ReuseBuffers: returns the buffer es aliases
	err     error
}

type cursor struct {
	es      []Entry
	i       int
	release func()
	json    bool // the chunk's meta says JSONObjects
}

type cursorHeap struct {
	c        []*cursor
	backward bool
}

func (h cursorHeap) Len() int { return len(h.c) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h.c[i].es[h.c[i].i].Timestamp, h.c[j].es[h.c[j].i].Timestamp
	if h.backward {
		return a > b
	}
	return a < b
}
func (h cursorHeap) Swap(i, j int) { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *cursorHeap) Push(x any)   { h.c = append(h.c, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	x := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return x
}

const prefetchChunks = 4

func newMergeIter(ctx context.Context, cs []chunkHandle, hints SelectHints, search *searcher, sem chan struct{}, stream labels.Labels) *mergeIter {
	cs = slices.Clone(cs)
	if hints.Backward {
		slices.SortStableFunc(cs, func(a, b chunkHandle) int { return cmpInt64(b.Meta().MaxTime, a.Meta().MaxTime) })
	} else {
		slices.SortStableFunc(cs, func(a, b chunkHandle) int { return cmpInt64(a.Meta().MinTime, b.Meta().MinTime) })
	}
	metas := make([]ChunkMeta, len(cs))
	for i, c := range cs {
		metas[i] = c.Meta()
	}
	return &mergeIter{ctx: ctx, chunks: cs, metas: metas, futures: make([]*chunkFuture, len(cs)), hints: hints, search: search, sem: sem, stream: stream, h: cursorHeap{backward: hints.Backward}}
}

func (it *mergeIter) start(i int) {
	if i >= len(it.chunks) || it.futures[i] != nil {
		return
	}
	f := &chunkFuture{done: make(chan struct{})}
	it.futures[i] = f
	c := it.chunks[i]
	it.wg.Add(1)
	go func() {
		defer it.wg.Done()
		defer close(f.done)
		select {
		case it.sem <- struct{}{}:
		case <-it.ctx.Done():
			f.err = it.ctx.Err()
			return
		}
		defer func() { <-it.sem }()
		f.es, f.release, f.err = filterChunk(c, it.hints, it.search, it.stream)
	}()
}

// filterChunk loads a chunk and keeps the entries in range that pass the
// filters, in iteration order. With h.ReuseBuffers the entries alias a
// pooled buffer that keep returns to the pool (nil if nothing is held).
func filterChunk(c chunkHandle, h SelectHints, s *searcher, stream labels.Labels) (_ []Entry, keep func(), _ error) {
	if s == nil && len(h.Contains) > 0 {
		s = searcherFor(h.Contains)
	}
	search := s != nil // keep checks every needle; the searcher finds the longest
	reuse := h.ReuseBuffers && !search
	v, release, err := c.view(search || reuse, s)
	if err != nil {
		return nil, nil, err
	}
	held := false
	var outp *[]Entry // with reuse: the pooled entry slice
	defer func() {
		v.free() // entries keep nothing of the view itself
		if !held {
			release()
			if outp != nil {
				entryBufs.Put(outp)
			}
		}
	}()
	var out []Entry
	var ferr error
	add := func(i int, alias bool) {
		ts := v.ts[i]
		if ts < h.Start || ts >= h.End || ferr != nil {
			return
		}
		l := v.line(i)
		for _, n := range h.Contains {
			if !bytes.Contains(l, []byte(n)) {
				return
			}
		}
		if h.Filter != nil && !h.Filter(unsafe.String(unsafe.SliceData(l), len(l))) {
			return
		}
		e, err := v.entry(i, alias)
		if err != nil {
			ferr = err
			return
		}
		for _, l := range h.Metadata {
			val, ok := "", false
			e.Metadata.Range(func(m labels.Label) {
				if m.Name == l.Name {
					val, ok = m.Value, true
				}
			})
			if !ok {
				val = stream.Get(l.Name)
			}
			if val != l.Value {
				return
			}
		}
		out = append(out, e)
	}
	order := v.sortedOrder()
	if search {
		// Lines are copied: the pooled buffer is reused after release.
		v.search(s, func(i int) { add(i, false) })
		if order != nil {
			slices.SortStableFunc(out, func(a, b Entry) int { return cmpInt64(a.Timestamp, b.Timestamp) })
		}
	} else if order == nil {
		lo, _ := slices.BinarySearch(v.ts, h.Start)
		hi, _ := slices.BinarySearch(v.ts, h.End)
		if reuse {
			outp = entryBufs.Get().(*[]Entry)
			out = (*outp)[:0]
		} else {
			out = make([]Entry, 0, hi-lo)
		}
		for i := lo; i < hi; i++ {
			add(i, true)
		}
	} else {
		for _, i := range order {
			add(i, true)
		}
	}
	if ferr != nil {
		return nil, nil, ferr
	}
	if h.Backward {
		slices.Reverse(out)
	}
	if reuse && len(out) > 0 {
		held = true
		if outp == nil {
			return out, release, nil
		}
		*outp = out // keeps the grown array
		return out, func() {
			release()
			entryBufs.Put(outp) // its stale entries point into pooled buffers only (and copied metadata)

		}, nil
	}
	return out, nil, nil
}

// entryBufs recycles the entry slices of chunks read with ReuseBuffers.
var entryBufs = sync.Pool{New: func() any { return new([]Entry) }}

func (it *mergeIter) chunkBefore(i int) bool {
	if it.h.Len() == 0 {
		return true
	}
	top := it.h.c[0]
	ts := top.es[top.i].Timestamp
	m := &it.metas[i]
	if it.hints.Backward {
		return m.MaxTime >= ts
	}
	return m.MinTime <= ts
}

func (it *mergeIter) Next() bool {
	if len(it.pending) > 0 {
		// The lines remembered for duplicate checks may live in the
		// buffers about to be reused.
		for i, l := range it.linesAtTs {
			it.linesAtTs[i] = strings.Clone(l)
		}
		it.releasePending()
	}
	for {
		e, ok := it.next1()
		if !ok {
			return false
		}
		if len(it.linesAtTs) > 0 && e.Timestamp == it.atTs {
			if slices.Contains(it.linesAtTs, e.Line) {
				it.dups++
				continue
			}
		} else {
			it.atTs = e.Timestamp
			it.linesAtTs = it.linesAtTs[:0]
		}
		it.linesAtTs = append(it.linesAtTs, e.Line)
		it.cur, it.curJSON = e, it.lastJSON
		return true
	}
}

// next1 yields the next entry of the merge, duplicates included.
func (it *mergeIter) next1() (Entry, bool) {
	if it.err != nil {
		return Entry{}, false
	}
	for it.next < len(it.chunks) && it.chunkBefore(it.next) {
		for k := it.next; k < it.next+prefetchChunks; k++ {
			it.start(k)
		}
		f := it.futures[it.next]
		jsonObjects := it.metas[it.next].JSONObjects
		select {
		case <-f.done:
		case <-it.ctx.Done():
			it.err = it.ctx.Err()
			return Entry{}, false
		}
		it.futures[it.next] = nil
		it.next++
		if f.err != nil {
			if it.corruptCounter != nil && errors.Is(f.err, ErrCorruptChunk) {
				it.corruptCounter.Inc()
			}
			it.err = f.err
			return Entry{}, false
		}
		if len(f.es) > 0 {
			heap.Push(&it.h, &cursor{es: f.es, release: f.release, json: jsonObjects})
		} else if f.release != nil {
			f.release()
		}
	}
	if it.h.Len() == 0 {
		return Entry{}, false
	}
	top := it.h.c[0]
	e := top.es[top.i]
	it.lastJSON = top.json
	top.i++
	if top.i == len(top.es) {
		heap.Pop(&it.h)
		if top.release != nil {
			it.pending = append(it.pending, top.release)
		}
	} else if it.h.Len() > 1 { // one cursor (chunks that do not overlap): always in order
		heap.Fix(&it.h, 0)
	}
	return e, true
}

func (it *mergeIter) At() Entry { return it.cur }

// JSONObjects says whether the entry At returns comes from a chunk whose
// every line is a JSON object with plain, distinct member names
// (ChunkMeta.JSONObjects, ADR 0109); false claims nothing.
func (it *mergeIter) JSONObjects() bool { return it.curJSON }
func (it *mergeIter) Err() error        { return it.err }

// Duplicates is how many exact duplicates the iterator has skipped so far.
func (it *mergeIter) Duplicates() int { return it.dups }

func (it *mergeIter) releasePending() {
	for _, r := range it.pending {
		r()
	}
	it.pending = it.pending[:0]
}

// Close waits for prefetching workers so none outlives the query, and
// returns the buffers it holds.
func (it *mergeIter) Close() error {
	it.wg.Wait()
	it.releasePending()
	for _, c := range it.h.c {
		if c.release != nil {
			c.release()
			c.release = nil
		}
	}
	for i, f := range it.futures {
		if f != nil && f.release != nil {
			f.release()
			it.futures[i] = nil
		}
	}
	if it.dupCounter != nil && it.dups > 0 {
		it.dupCounter.Add(float64(it.dups))
		it.dups = 0
	}
	return nil
}

func defaultQueryConcurrency() int { return max(1, runtime.GOMAXPROCS(0)) }
