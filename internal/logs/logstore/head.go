package logstore

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
)

// ChunkMeta describes a chunk without reading it.
type ChunkMeta struct {
	MinTime, MaxTime int64 // Unix ns, inclusive.
	Entries          int
	RawBytes         int // size of the uncompressed entries
	// JSONObjects: every line of the chunk is a JSON object whose member
	// names are plain and distinct (jsonObjectLine, ADR 0109), so a json
	// query may stop reading a line once it has found what it wants.
	// False claims nothing: the open chunk and chunks of version 1 and 2
	// blocks.
	JSONObjects bool
}

// Chunk flags in the index (format version 3).
const chunkFlagJSONObjects = 1

// memChunk is a cut, compressed, immutable chunk still held by the head.
type memChunk struct {
	meta  ChunkMeta
	data  []byte // nil once spilled
	bloom []byte // encoded, as stored in a block
	// summary: per-second counts, as stored in a block (ADR 0097).
	sum []byte
	// Where the chunk was spilled, if it was.
	spill  *spillFile
	off    int64
	length int
}

// stored returns the chunk's stored bytes, from memory or the spill file.
func (c *memChunk) stored(buf []byte) ([]byte, error) {
	if c.spill == nil {
		return c.data, nil
	}
	return c.spill.read(c.off, c.length, buf)
}

type memStream struct {
	ref  uint64
	lbls labels.Labels

	mu     sync.Mutex
	chunks []*memChunk
	open   rawChunk
	maxT   int64

	// seen holds a key per entry of the stream in this head, so an exact
	// duplicate (same timestamp, same line) is dropped at ingest. Written and
	// read only under the DB's walMu (commits and WAL replay are serialised
	// by it).
	seen dedupIndex
}

// dedupIndex is the set of an in-memory stream's entry keys. Keys arriving
// in timestamp order (the usual case) are appended to sorted fixed-size
// pages, a sequential 16-byte write that never copies; only out-of-order
// keys go to a map. Lookups binary-search the pages and probe the map.
// Pages hold up to dedupPage keys.
type dedupIndex struct {
	pages [][]dedupKey // ascending timestamps across pages; all but the last full
	ooo   map[dedupKey]struct{}
}

const dedupPage = 256

func (d *dedupIndex) has(k dedupKey) bool {
	// The first page whose last key is not older than k.
	p, _ := slices.BinarySearchFunc(d.pages, k.ts, func(pg []dedupKey, ts int64) int { return cmpInt64(pg[len(pg)-1].ts, ts) })
	for ; p < len(d.pages); p++ {
		pg := d.pages[p]
		i, _ := slices.BinarySearchFunc(pg, k.ts, func(e dedupKey, ts int64) int { return cmpInt64(e.ts, ts) })
		for ; i < len(pg) && pg[i].ts == k.ts; i++ {
			if pg[i].line == k.line {
				return true
			}
		}
		if i < len(pg) { // a newer key ends the run of equal timestamps
			break
		}
	}
	_, ok := d.ooo[k]
	return ok
}

func (d *dedupIndex) add(k dedupKey) {
	n := len(d.pages)
	if n > 0 {
		last := d.pages[n-1]
		if last[len(last)-1].ts > k.ts {
			if d.ooo == nil {
				d.ooo = map[dedupKey]struct{}{}
			}
			d.ooo[k] = struct{}{}
			return
		}
		if len(last) < dedupPage {
			// A page grows like any slice (most streams of a head are
			// small; a stream of one entry holds one key) and is never
			// copied again once full.
			d.pages[n-1] = append(last, k)
			return
		}
	}
	if n == 0 {
		d.pages = [][]dedupKey{{k}}
		return
	}
	// A stream that filled a page is a busy one: its next pages are
	// allocated whole.
	pg := make([]dedupKey, 1, dedupPage)
	pg[0] = k
	d.pages = append(d.pages, pg)
}

// dedupKey identifies an entry for exact-duplicate detection: its timestamp
// and a 64-bit hash of its line. Two different lines with the same timestamp
// collide with probability 2^-64 per pair.
type dedupKey struct {
	ts   int64
	line uint64
}

var dedupSeed = maphash.MakeSeed()

func keyOf(e *Entry) dedupKey {
	return dedupKey{e.Timestamp, maphash.String(dedupSeed, e.Line)}
}

// dedup drops the entries of es that repeat an entry already in the stream
// or an earlier entry of es, and says how many it dropped. es is not
// modified; the result aliases it when nothing is dropped. An entry newer
// than everything before it cannot be a duplicate, so in-order ingest costs
// no lookup here (only the insertion in appendEntries). The caller holds
// walMu.
func (s *memStream) dedup(es []Entry) ([]Entry, int) {
	runMax := s.maxT
	var local map[dedupKey]struct{}
	var out []Entry // nil until the first duplicate
	dropped := 0
	for i := range es {
		e := &es[i]
		if local == nil && e.Timestamp > runMax {
			runMax = e.Timestamp
			if out != nil {
				out = append(out, *e)
			}
			continue
		}
		k := keyOf(e)
		dup := false
		if s.seen.has(k) {
			dup = true
		} else {
			if local == nil {
				local = make(map[dedupKey]struct{}, len(es))
				for j := range i {
					local[keyOf(&es[j])] = struct{}{}
				}
			}
			_, dup = local[k]
			local[k] = struct{}{}
		}
		if dup {
			if out == nil {
				out = append(make([]Entry, 0, len(es)-1), es[:i]...)
			}
			dropped++
			continue
		}
		if out != nil {
			out = append(out, *e)
		}
	}
	if out == nil {
		return es, 0
	}
	return out, dropped
}

// head is the in-memory, WAL-backed part of the store. When it is flushed to
// a block, a new head replaces it and the old one stays queryable until the
// block is visible.
type head struct {
	firstSegment int // first WAL segment whose records belong to this head
	lastSegment  int // last one, set when the head is rotated out for flushing

	mu       sync.RWMutex
	byHash   map[uint64][]*memStream
	byRef    map[uint64]*memStream
	postings map[string]map[string][]*memStream

	minT, maxT atomic.Int64
	bytes      atomic.Int64 // open raw bytes + cut compressed bytes (memory or spilled)
	memBytes   atomic.Int64 // the part of bytes held in memory
	spill      *spillFile
	entries    atomic.Int64
	createdAt  atomic.Int64 // Unix ns of the first append; 0 while empty
}

func newHead(firstSegment int) *head {
	h := &head{
		firstSegment: firstSegment,
		byHash:       map[uint64][]*memStream{},
		byRef:        map[uint64]*memStream{},
		postings:     map[string]map[string][]*memStream{},
	}
	h.minT.Store(maxTime)
	h.maxT.Store(minTime)
	return h
}

const (
	minTime = int64(-1 << 63)
	maxTime = int64(1<<63 - 1)
)

func (h *head) get(ls labels.Labels) *memStream {
	hash := ls.Hash()
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.byHash[hash] {
		if labels.Equal(s.lbls, ls) {
			return s
		}
	}
	return nil
}

// create adds a stream; the caller holds the WAL lock so creation is ordered
// with its WAL record.
func (h *head) create(ref uint64, ls labels.Labels) *memStream {
	s := &memStream{ref: ref, lbls: ls, maxT: minTime}
	h.mu.Lock()
	defer h.mu.Unlock()
	hash := ls.Hash()
	h.byHash[hash] = append(h.byHash[hash], s)
	h.byRef[ref] = s
	ls.Range(func(l labels.Label) {
		vals := h.postings[l.Name]
		if vals == nil {
			vals = map[string][]*memStream{}
			h.postings[l.Name] = vals
		}
		vals[l.Value] = append(vals[l.Value], s)
	})
	return s
}

func (h *head) numStreams() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.byRef)
}

// appendEntries adds entries to a stream, cutting chunks at target size.
func (h *head) appendEntries(s *memStream, es []Entry, chunkTarget int) {
	s.mu.Lock()
	var delta, memDelta int64
	prev := s.open.size()
	for i := range es {
		e := &es[i]
		s.seen.add(keyOf(e))
		s.open.append(e.Timestamp, e.Line, e.Metadata)
		s.maxT = max(s.maxT, e.Timestamp)
		delta += int64(s.open.size() - prev)
		prev = s.open.size()
		if prev >= chunkTarget {
			next := s.open.successor()
			c := cutChunk(&s.open)
			delta += int64(len(c.data) - prev)
			if h.spill != nil {
				if off, err := h.spill.write(c.data); err == nil {
					c.spill, c.off, c.length = h.spill, off, len(c.data)
					memDelta -= int64(len(c.data))
					c.data = nil
				}
			}
			s.chunks = append(s.chunks, c)
			s.open = next
			prev = 0
		}
		updateMin(&h.minT, e.Timestamp)
		updateMax(&h.maxT, e.Timestamp)
	}
	s.mu.Unlock()
	h.bytes.Add(delta)
	h.memBytes.Add(delta + memDelta)
	h.entries.Add(int64(len(es)))
}

func updateMin(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v >= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

func updateMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// cutChunk sorts, indexes, summarises and compresses an open chunk (s2:
// head chunks are hot).
func cutChunk(rc *rawChunk) *memChunk { return cutChunkAs(rc, chunkEncodingS2) }

func cutChunkAs(rc *rawChunk, encoding byte) *memChunk {
	if rc.unsorted {
		// Our own bytes: they cannot be corrupt.
		v, _ := rc.view()
		es, _ := v.entries()
		rc = encodeSorted(es)
	}
	v, _ := rc.view()
	raw := rc.encode()
	return &memChunk{
		meta:  ChunkMeta{MinTime: rc.minT, MaxTime: rc.maxT, Entries: rc.entries, RawBytes: len(raw), JSONObjects: jsonObjectChunk(v)},
		data:  compressChunk(raw, encoding),
		bloom: buildBloom(v),
		sum:   buildSummary(v),
	}
}

func (c *rawChunk) view() (*chunkView, error) {
	return parseColumns(c.entries, c.ts, c.lens, c.md, c.lines)
}

// snapshot returns the stream's chunks as query handles. The open chunk is
// captured by slicing: appends never rewrite bytes already written.
func (s *memStream) snapshot() []chunkHandle {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]chunkHandle, 0, len(s.chunks)+1)
	for _, c := range s.chunks {
		out = append(out, c)
	}
	if s.open.entries > 0 {
		out = append(out, &openChunk{raw: s.open.snapshot()})
	}
	return out
}

// streamsMatching evaluates matchers against the head's postings.
func (h *head) streamsMatching(ms []*labels.Matcher) []*memStream {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var cand []*memStream
	narrowed := false
	for _, m := range ms {
		vals := postingValues(m)
		if vals == nil {
			continue
		}
		var p []*memStream
		for _, v := range vals {
			p = append(p, h.postings[m.Name][v]...)
		}
		if !narrowed || len(p) < len(cand) {
			cand, narrowed = p, true
		}
	}
	if !narrowed {
		cand = make([]*memStream, 0, len(h.byRef))
		for _, s := range h.byRef {
			cand = append(cand, s)
		}
	}
	out := make([]*memStream, 0, len(cand))
	for _, s := range cand {
		if matchesAll(s.lbls, ms) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *memStream) int { return labels.Compare(a.lbls, b.lbls) })
	return out
}

// postingValues lists the values whose postings hold every stream a matcher
// can match: the value of a non-empty equality, or the alternatives of a
// regexp such as "a|b|c". nil means the matcher cannot narrow by postings.
func postingValues(m *labels.Matcher) []string {
	switch m.Type {
	case labels.MatchEqual:
		if m.Value != "" {
			return []string{m.Value}
		}
	case labels.MatchRegexp:
		vals := m.SetMatches()
		if len(vals) > 0 && !slices.Contains(vals, "") {
			return vals
		}
	}
	return nil
}

func matchesAll(ls labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// allStreams returns every stream sorted by labels, for flushing.
func (h *head) allStreams() []*memStream {
	return h.streamsMatching(nil)
}

// memChunk and openChunk implement chunkHandle.
func (c *memChunk) Meta() ChunkMeta { return c.meta }
func (c *memChunk) storedSize() int {
	if c.spill != nil {
		return c.length
	}
	return len(c.data)
}
func (c *openChunk) storedSize() int { return 0 }
func (c *memChunk) summary() []byte  { return c.sum }
func (c *memChunk) mayContain(needles []string) bool {
	return bloomMayContain(c.bloom, needles)
}
func (c *memChunk) view(pooled bool, s *searcher) (*chunkView, func(), error) {
	data := c.data
	if c.spill != nil {
		bp := storedBufs.Get().(*[]byte)
		defer storedBufs.Put(bp)
		var err error
		if data, err = c.stored(*bp); err != nil {
			return nil, func() {}, err
		}
		*bp = data[:0]
	}
	raw, release, err := decompressChunk(data, pooled, c.meta.RawBytes)
	if err != nil {
		return nil, release, err
	}
	v, err := parseChunk(raw, s)
	return v, release, err
}

type openChunk struct{ raw rawChunk }

func (c *openChunk) Meta() ChunkMeta {
	return ChunkMeta{MinTime: c.raw.minT, MaxTime: c.raw.maxT, Entries: c.raw.entries, RawBytes: c.raw.size()}
}
func (c *openChunk) mayContain([]string) bool { return true }
func (c *openChunk) summary() []byte          { return nil }
func (c *openChunk) view(bool, *searcher) (*chunkView, func(), error) {
	v, err := c.raw.view()
	return v, func() {}, err
}
