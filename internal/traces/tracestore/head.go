package tracestore

import (
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// headTrace is one trace's not-yet-cut pieces. Pieces are immutable; the
// slice only grows, so a snapshot of pieces[:n] stays valid.
type headTrace struct {
	id        TraceID
	pieces    [][]byte
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
	t.pieces = append(t.pieces, p.data)
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

// data concatenates the pieces: a valid TracesData of the whole trace.
func (t *headTrace) data() []byte {
	if len(t.pieces) == 1 {
		return t.pieces[0]
	}
	out := make([]byte, 0, t.size)
	for _, p := range t.pieces {
		out = append(out, p...)
	}
	return out
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
}

func newHead() *head {
	return &head{traces: map[TraceID]*headTrace{}, tags: newTagSet(headTagValueLimit)}
}

const headTagValueLimit = 1000

func (h *head) addPieces(pieces []tracePiece, now int64, copyData bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range pieces {
		if copyData {
			p.data = append([]byte(nil), p.data...)
		}
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

// collectTags adds the attribute names and values of td to the head's tag set.
func (h *head) collectTags(td ptrace.Traces) {
	h.mu.Lock()
	defer h.mu.Unlock()
	addTraceTags(h.tags, td)
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
			h.traces[t.id] = t
		} else {
			merged := *t
			merged.pieces = append(append([][]byte(nil), t.pieces...), cur.pieces...)
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
