package tracestore

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
)

// headTrace is one trace's not-yet-cut pieces, as places in the WAL or the
// checkpoint that hold them (ADR 0111). Pieces are immutable; the slice
// only grows (or, at a checkpoint, its head is replaced in a new slice), so
// a snapshot of pieces[:n] stays valid.
type headTrace struct {
	id        TraceID
	pieces    []pieceRef
	size      int
	spans     int
	minStart  uint64
	maxEnd    uint64
	firstSeen int64
	lastSeen  int64
	// ids are the span IDs of pieces, to drop retried spans at ingest.
	ids spanSet
}

func (t *headTrace) add(p tracePiece, now int64) {
	if len(t.pieces) == 0 {
		t.minStart, t.firstSeen = p.minStart, now
	}
	t.pieces = append(t.pieces, p.ref)
	if len(t.ids.list) == 0 && len(p.spanIDs) <= spanSetListMax {
		t.ids.list = p.spanIDs[:len(p.spanIDs):len(p.spanIDs)] // the piece's list is ours; appending copies
	} else {
		for _, id := range p.spanIDs {
			t.ids.add(id)
		}
	}
	t.size += len(p.data)
	t.spans += p.spans
	t.minStart = min(t.minStart, p.minStart)
	t.maxEnd = max(t.maxEnd, p.maxEnd)
	t.lastSeen = now
}

// data reads and concatenates the pieces: a valid TracesData of the whole
// trace, in a fresh slice.
func (t *headTrace) data() ([]byte, error) {
	return t.appendData(make([]byte, 0, t.size))
}

// appendData appends the trace's pieces to dst.
func (t *headTrace) appendData(dst []byte) ([]byte, error) {
	for _, p := range t.pieces {
		var err error
		if dst, err = p.appendTo(dst); err != nil {
			return dst, fmt.Errorf("trace %x: %w", t.id[:], err)
		}
	}
	return dst, nil
}

// snapshot copies the header so later appends do not show through. The
// span-ID set is shared (its list clipped): only restore reads it, under the
// head lock, for a trace that cut removed from the head.
func (t *headTrace) snapshot() *headTrace {
	c := *t
	c.pieces = t.pieces[:len(t.pieces):len(t.pieces)]
	c.ids.list = t.ids.list[:len(t.ids.list):len(t.ids.list)]
	return &c
}

// duplicates returns the span IDs of p that the head already holds for p's
// trace (nil when none, the common case). Callers hold appendMu, so the
// answer stays true until they add p.
func (h *head) duplicates(p *tracePiece) *spanSet {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.traces[p.id]
	if t == nil || t.ids.len() == 0 {
		return nil
	}
	var dup *spanSet
	for _, id := range p.spanIDs {
		if t.ids.has(id) {
			if dup == nil {
				dup = &spanSet{}
			}
			dup.add(id)
		}
	}
	return dup
}

// head holds recent traces in memory, backed by the WAL.
type head struct {
	mu     sync.RWMutex
	traces map[TraceID]*headTrace
	bytes  int64
	spans  int64
	tags   *tagSet
	seen   tagSeen
}

func newHead() *head {
	return &head{traces: map[TraceID]*headTrace{}, tags: newTagSet(headTagValueLimit), seen: tagSeen{seed: maphash.MakeSeed()}}
}

const headTagValueLimit = 1000

// addPieces adds pieces whose ref is set; their data is not kept.
func (h *head) addPieces(pieces []tracePiece, now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range pieces {
		t := h.traces[p.id]
		if t == nil {
			t = &headTrace{id: p.id}
			h.traces[p.id] = t
		}
		t.add(p, now)
		h.bytes += int64(len(p.data))
		h.spans += int64(p.spans)
	}
}

// collectTags adds the attribute names and values of td to the head's tag
// set (what addTraceTags adds), skipping pairs the seen filter knows.
func (h *head) collectTags(td ptrace.Traces) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := tagCollector{set: h.tags, seen: &h.seen}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		c.attrs('r', rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				s := sp.At(k)
				c.add(tagKey{'i', KeyName}, tagValue{typ: 's', s: s.Name()}, len(s.Name()) <= maxIndexedValueLen)
				c.add(tagKey{'i', KeyStatus}, tagValue{typ: 'k', s: StatusKeyword(s.Status().Code())}, true)
				c.add(tagKey{'i', KeyKind}, tagValue{typ: 'k', s: KindKeyword(s.Kind())}, true)
				c.attrs('s', s.Attributes())
				for e := 0; e < s.Events().Len(); e++ {
					c.attrs('e', s.Events().At(e).Attributes())
				}
				for l := 0; l < s.Links().Len(); l++ {
					c.attrs('l', s.Links().At(l).Attributes())
				}
			}
		}
	}
}

// tagSeen remembers, direct-mapped by hash, (key, value) pairs already added
// to the head's tag set: the set never forgets a pair, so a pair found here
// needs no map lookups (ADR 0112). A slot holds the pair's full 64-bit hash.
type tagSeen struct {
	seed  maphash.Seed
	slots [1 << 14]uint64
}

type tagCollector struct {
	set  *tagSet
	seen *tagSeen
}

func (c tagCollector) add(k tagKey, v tagValue, indexed bool) {
	var vh uint64
	if v.typ != 'i' && v.typ != 'f' {
		vh = maphash.String(c.seen.seed, v.s)
	}
	slot, h := c.slot(maphash.String(c.seen.seed, k.name), k.scope, v, vh, indexed)
	if *slot == h {
		return
	}
	c.set.add(k, v, indexed)
	*slot = h
}

// slot is where the seen filter keeps the pair, and the pair's hash; vh is
// the hash of v.s (or of the bytes that will be v.s).
func (c tagCollector) slot(kh uint64, scope byte, v tagValue, vh uint64, indexed bool) (*uint64, uint64) {
	h := kh*0x9e3779b97f4a7c15 ^ uint64(scope)<<48 ^ uint64(v.typ)<<56
	switch v.typ {
	case 'i':
		h ^= uint64(v.n) * 0xff51afd7ed558ccd
	case 'f':
		h ^= math.Float64bits(v.f) * 0xff51afd7ed558ccd
	default:
		h ^= vh
	}
	if indexed {
		h ^= 1 << 40
	}
	h |= 1 // 0 marks an empty slot
	return &c.seen.slots[h&(uint64(len(c.seen.slots))-1)], h
}

// addRaw is add for a key and value still in a request's bytes: the
// strings are made only for a pair the seen filter does not know. A string
// value goes in sv (v.s empty); the hashes equal add's (maphash.Bytes of
// bytes equals maphash.String of the same string).
func (c tagCollector) addRaw(scope byte, key []byte, v tagValue, sv []byte, indexed bool) {
	slot, h := c.slot(maphash.Bytes(c.seen.seed, key), scope, v, c.valueHash(v, sv), indexed)
	if *slot == h {
		return
	}
	*slot = h
	if c.takesNothing(c.set.keys[tagKey{scope, string(key)}], indexed) {
		return // no strings to make (a key at its value cap: unique URLs, IDs)
	}
	if sv != nil {
		v.s = string(sv)
	}
	c.set.add(tagKey{scope, string(key)}, v, indexed)
}

// takesNothing reports that tagSet.add would leave vals, a known key's
// values, as they are.
func (c tagCollector) takesNothing(vals map[tagValue]struct{}, indexed bool) bool {
	return vals != nil && (!indexed || len(vals) >= c.set.limit)
}

// addRawValue is addRaw for a key that is already a string.
func (c tagCollector) addRawValue(k tagKey, v tagValue, sv []byte, indexed bool) {
	slot, h := c.slot(maphash.String(c.seen.seed, k.name), k.scope, v, c.valueHash(v, sv), indexed)
	if *slot == h {
		return
	}
	*slot = h
	if c.takesNothing(c.set.keys[k], indexed) {
		return
	}
	if sv != nil {
		v.s = string(sv)
	}
	c.set.add(k, v, indexed)
}

func (c tagCollector) valueHash(v tagValue, sv []byte) uint64 {
	switch {
	case v.typ == 'i' || v.typ == 'f':
		return 0
	case sv != nil:
		return maphash.Bytes(c.seen.seed, sv)
	}
	return maphash.String(c.seen.seed, v.s)
}

// rawAttrs is attrs for attributes a raw request's walk read.
func (c tagCollector) rawAttrs(scope byte, attrs []otlp.RawAttr) {
	for i := range attrs {
		tv, sv, ok := rawTagValue(attrs[i].Value)
		c.addRaw(scope, attrs[i].Key, tv, sv, ok)
	}
}

// rawTagValue is toTagValue for a raw value; a string comes back as bytes.
func rawTagValue(v otlp.RawValue) (tagValue, []byte, bool) {
	switch v.Type {
	case pcommon.ValueTypeStr:
		if len(v.Str) > maxIndexedValueLen {
			return tagValue{}, nil, false
		}
		if v.Str == nil {
			return tagValue{typ: 's'}, nil, true
		}
		return tagValue{typ: 's'}, v.Str, true
	case pcommon.ValueTypeInt:
		return tagValue{typ: 'i', n: v.Int}, nil, true
	case pcommon.ValueTypeDouble:
		return tagValue{typ: 'f', f: v.Double}, nil, true
	case pcommon.ValueTypeBool:
		if v.Bool {
			return tagValue{typ: 'b', s: "true"}, nil, true
		}
		return tagValue{typ: 'b', s: "false"}, nil, true
	}
	return tagValue{}, nil, false
}

// collectRawTags is collectTags for a raw request: the spans not dropped,
// and every resource, or once pruned (spans dropped by keepOnly) only those
// with a span left, as pdata's removeSpans leaves them.
func (h *head) collectRawTags(req *otlp.RawTracesRequest, pruned bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := tagCollector{set: h.tags, seen: &h.seen}
	spans := req.Spans()
	i := 0
	// Resource by resource, in collectTags' order (the set caps values per key).
	for r := range int32(req.ResourceCount()) {
		if !pruned || resourceKeepsSpan(spans[i:], r) {
			c.rawAttrs('r', req.ResourceAttributes(r))
		}
		for ; i < len(spans) && spans[i].Resource == r; i++ {
			s := &spans[i]
			if s.Dropped {
				continue
			}
			c.addRawValue(tagKey{'i', KeyName}, tagValue{typ: 's'}, s.Name, len(s.Name) <= maxIndexedValueLen)
			c.add(tagKey{'i', KeyStatus}, tagValue{typ: 'k', s: StatusKeyword(s.StatusCode)}, true)
			c.add(tagKey{'i', KeyKind}, tagValue{typ: 'k', s: KindKeyword(s.Kind)}, true)
			c.rawAttrs('s', req.SpanAttributes(i))
			c.rawAttrs('e', req.EventAttributes(i))
			c.rawAttrs('l', req.LinkAttributes(i))
		}
	}
}

// resourceKeepsSpan reports whether spans, which start at resource r's
// first span, hold a span of r not dropped.
func resourceKeepsSpan(spans []otlp.RawSpan, r int32) bool {
	for i := range spans {
		if spans[i].Resource != r {
			return false
		}
		if !spans[i].Dropped {
			return true
		}
	}
	return false
}

func (c tagCollector) attrs(scope byte, m pcommon.Map) {
	for k, v := range m.All() {
		tv, ok := toTagValue(v)
		c.add(tagKey{scope, k}, tv, ok)
	}
}

func (h *head) get(id TraceID) *headTrace {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.traces[id]
	if t == nil {
		return nil
	}
	return t.snapshot()
}

// all returns snapshots of every head trace.
func (h *head) all() []*headTrace {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*headTrace, 0, len(h.traces))
	for _, t := range h.traces {
		out = append(out, t.snapshot())
	}
	return out
}

// remove takes traces out of the head (they are being cut into a block).
func (h *head) remove(ts []*headTrace) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range ts {
		if cur := h.traces[t.id]; cur != nil {
			delete(h.traces, t.id)
			h.bytes -= int64(cur.size)
			h.spans -= int64(cur.spans)
		}
	}
}

// restore puts traces back after a failed cut, ahead of pieces that arrived since.
func (h *head) restore(ts []*headTrace) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range ts {
		cur := h.traces[t.id]
		if cur == nil {
			c := *t // a query may still read t through the flushing set
			h.traces[t.id] = &c
		} else {
			merged := *t
			merged.pieces = append(append([]pieceRef(nil), t.pieces...), cur.pieces...)
			merged.size += cur.size
			merged.spans += cur.spans
			merged.minStart = min(t.minStart, cur.minStart)
			merged.maxEnd = max(t.maxEnd, cur.maxEnd)
			merged.lastSeen = cur.lastSeen
			merged.ids = t.ids.clone()
			for _, id := range cur.ids.list {
				merged.ids.add(id)
			}
			h.traces[t.id] = &merged
			h.bytes -= int64(cur.size)
			h.spans -= int64(cur.spans)
		}
		h.bytes += int64(h.traces[t.id].size)
		h.spans += int64(h.traces[t.id].spans)
	}
}

// relocate points the first len(ts[i].pieces) pieces of each head trace
// ts[i] (snapshots) at refs[i], their concatenation in a checkpoint. Pieces
// added since stay as they are.
func (h *head) relocate(ts []*headTrace, refs []pieceRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, t := range ts {
		cur := h.traces[t.id]
		n := len(t.pieces)
		if cur == nil || len(cur.pieces) < n || n == 0 {
			continue
		}
		np := make([]pieceRef, 0, 1+len(cur.pieces)-n)
		cur.pieces = append(append(np, refs[i]), cur.pieces[n:]...)
	}
}

type headStats struct {
	traces int
	bytes  int64
	spans  int64
}

// bytesNow is the head's size in bytes.
func (h *head) bytesNow() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.bytes
}

func (h *head) stats() headStats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return headStats{traces: len(h.traces), bytes: h.bytes, spans: h.spans}
}
