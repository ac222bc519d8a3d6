package tracestore

import (
	"context"
	"encoding/binary"
	"errors"
	"math/bits"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
)

// TraceID is a 16-byte trace ID.
type TraceID = pcommon.TraceID

// validate rejects the request if any span has an all-zero trace or span ID.
// A zero parent ID is valid: it marks a root span.
func validate(td ptrace.Traces) (spans int, err error) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				s := sp.At(k)
				if s.TraceID().IsEmpty() {
					return 0, &InvalidIDError{i, j, k, "trace_id", "all zero"}
				}
				if s.SpanID().IsEmpty() {
					return 0, &InvalidIDError{i, j, k, "span_id", "all zero"}
				}
				spans++
			}
		}
	}
	return spans, nil
}

// tracePiece is the part of one request that belongs to one trace, kept as a
// protobuf TracesData. Concatenated pieces are again a valid TracesData, which
// is how the head, blocks and compaction merge a trace without re-encoding.
type tracePiece struct {
	id       TraceID
	data     []byte
	spans    int
	minStart uint64
	maxEnd   uint64
	// spanIDs lists the piece's span IDs (ingest and replay fill it; the
	// head keeps them to drop retried spans). Not written to disk.
	spanIDs []pcommon.SpanID
	// off is where data starts in the WAL record (encodeRecord and
	// decodeRecord set it); ref is where the head finds data (headWAL.locate).
	off int
	ref pieceRef
}

// split groups the spans of td (n spans, as validate counted them) by trace
// ID, in first-seen order. A span whose (trace ID, span ID) already came
// earlier in td is left out and counted in dups.
//
// It encodes td once and regroups the encoded spans (ADR 0112): each piece
// is the TracesData that encoding the trace's spans under copies of their
// resource and scope would give, byte for byte, without copying pdata. The
// pieces share one buffer.
func split(td ptrace.Traces, n int) (pieces []tracePiece, dups int, err error) {
	pieces, dups, _, err = splitRequest(context.Background(), td, n)
	return pieces, dups, err
}

// splitRequest is split, on the request's own bytes when the OTLP receiver
// passed them along for this td (otlp.RawTraces): no re-encoding at all.
// The pieces' data lives in sc's buffers: call sc.release once done with
// them (their span-ID lists are the caller's to keep).
func splitRequest(ctx context.Context, td ptrace.Traces, n int) (pieces []tracePiece, dups int, sc *splitScratch, err error) {
	raw, _ := otlp.RawTraces(ctx, td)
	pieces, dups, sc, _, err = splitWith(td, raw, n)
	return pieces, dups, sc, err
}

// splitWith is splitRequest with td's request bytes, or nil. The bytes are
// kept only when the cut can read every message it reads from them
// (cutReads) and they hold exactly td's n spans; otherwise td is encoded
// again (reencoded reports it, with raw given).
func splitWith(td ptrace.Traces, raw []byte, n int) (pieces []tracePiece, dups int, sc *splitScratch, reencoded bool, err error) {
	sc = splitPool.Get().(*splitScratch)
	if raw != nil {
		if cutReads(raw) {
			if pieces, dups, err := sc.split(raw, n); err == nil {
				return pieces, dups, sc, false, nil
			}
		}
		reencoded = true
	}
	var m ptrace.ProtoMarshaler
	enc, err := m.MarshalTraces(td)
	if err != nil {
		sc.release()
		return nil, 0, nil, reencoded, err
	}
	pieces, dups, err = sc.split(enc, n)
	if err != nil {
		sc.release()
		return nil, 0, nil, reencoded, err
	}
	return pieces, dups, sc, reencoded, nil
}

// splitEncoded is splitRequest's split of an encoding, with scratch of its own.
func splitEncoded(raw []byte, n int) (pieces []tracePiece, dups int, err error) {
	return newSplitScratch().split(raw, n)
}

// rawSpan is one encoded span of a request and where it came from.
type rawSpan struct {
	rs, ss int32
	b      []byte // the Span message
}

// rawGroup is a ResourceSpans' or ScopeSpans' fields other than its list
// (resource or scope, schema_url), with their tags, as they came before
// (head) and after (tail) the list: pdata writes fields in descending
// number order.
type rawGroup struct {
	head, tail []byte
}

// addField appends field to the group's head until the list has begun.
func (g *rawGroup) addField(field []byte, listSeen bool) {
	if listSeen {
		g.tail = appendField(g.tail, field)
	} else {
		g.head = appendField(g.head, field)
	}
}

// appendField returns field itself when dst is empty (no copy: the common
// case of one field on either side).
func appendField(dst, field []byte) []byte {
	if len(dst) == 0 {
		return field
	}
	return append(dst[:len(dst):len(dst)], field...)
}

// rawTrace is one trace of a request: its spans are idx[first:first+n].
type rawTrace struct {
	id       TraceID
	first, n int32
	minStart uint64
	maxEnd   uint64
	ids      spanSet
}

var errSplitEncoding = errors.New("unexpected encoding")

// splitScratch holds a split's working memory, pooled across requests
// (ADR 0112): only the pieces' span-ID lists, which the head keeps, are
// allocated per request.
type splitScratch struct {
	spans  []rawSpan
	rss    []rawGroup
	sss    []rawGroup
	traces []rawTrace
	states map[TraceID]int32
	of     []int32
	sids   []pcommon.SpanID
	times  [][2]uint64
	idx    []int32
	sizes  []int
	buf    []byte
	out    []tracePiece
}

var splitPool = sync.Pool{New: func() any { return newSplitScratch() }}

func newSplitScratch() *splitScratch { return &splitScratch{states: map[TraceID]int32{}} }

// release drops every reference into the request and returns sc to the pool.
func (sc *splitScratch) release() {
	clear(sc.spans)
	clear(sc.rss)
	clear(sc.sss)
	clear(sc.traces)
	clear(sc.out)
	clear(sc.states)
	sc.spans, sc.rss, sc.sss, sc.traces, sc.out = sc.spans[:0], sc.rss[:0], sc.sss[:0], sc.traces[:0], sc.out[:0]
	splitPool.Put(sc)
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// split is split on an encoding of td: pdata's, or the request as the
// sender wrote it. Fields other than the lists keep their place before or
// after the list, so on pdata's encoding the pieces equal pdata's own
// encoding of each trace; any other field order gives pieces that decode to
// the same spans.
func (sc *splitScratch) split(raw []byte, n int) (pieces []tracePiece, dups int, err error) {
	spans, rss, sss := sc.spans[:0], sc.rss[:0], sc.sss[:0]
	defer func() { sc.spans, sc.rss, sc.sss = spans, rss, sss }()
	for b := raw; len(b) > 0; {
		rs, rest, err := nextField(b, 1)
		if err != nil {
			return nil, 0, err
		}
		b = rest
		ri := int32(len(rss))
		var g rawGroup
		listSeen := false
		for len(rs) > 0 {
			num, field, msg, rest, err := consumeField(rs)
			if err != nil {
				return nil, 0, err
			}
			rs = rest
			switch num {
			case 2:
				listSeen = true
				si := int32(len(sss))
				var sg rawGroup
				ssList := false
				for len(msg) > 0 {
					num, field, sp, rest, err := consumeField(msg)
					if err != nil {
						return nil, 0, err
					}
					msg = rest
					if num == 2 {
						ssList = true
						spans = append(spans, rawSpan{rs: ri, ss: si, b: sp})
					} else {
						sg.addField(field, ssList)
					}
				}
				sss = append(sss, sg)
			default:
				g.addField(field, listSeen)
			}
		}
		rss = append(rss, g)
	}
	if len(spans) != n {
		return nil, 0, errSplitEncoding
	}
	// Group by trace: count each trace's spans, then lay their indexes and
	// span IDs out contiguously (the ID lists share one allocation).
	clear(sc.states)
	traces := sc.traces[:0]
	of := grow(sc.of, len(spans))
	sids := grow(sc.sids, len(spans))
	times := grow(sc.times, len(spans))
	idx := grow(sc.idx, len(spans))
	sc.of, sc.sids, sc.times, sc.idx = of, sids, times, idx
	for i := range spans {
		id, sid, start, end, err := spanKey(spans[i].b)
		if err != nil {
			sc.traces = traces
			return nil, 0, err
		}
		ti, ok := sc.states[id]
		if !ok {
			ti = int32(len(traces))
			traces = append(traces, rawTrace{id: id, minStart: ^uint64(0)})
			sc.states[id] = ti
		}
		traces[ti].n++
		of[i], sids[i] = ti, sid
		times[i] = [2]uint64{start, max(start, end)}
	}
	sc.traces = traces
	arena := make([]pcommon.SpanID, len(spans))
	off := int32(0)
	for t := range traces {
		st := &traces[t]
		st.first = off
		st.ids.list = arena[off : off : off+st.n]
		off += st.n
		st.n = 0
	}
	for i := range spans {
		st := &traces[of[i]]
		if st.ids.has(sids[i]) {
			dups++
			continue
		}
		st.ids.add(sids[i])
		idx[st.first+st.n] = int32(i)
		st.n++
		st.minStart = min(st.minStart, times[i][0])
		st.maxEnd = max(st.maxEnd, times[i][1])
	}
	// Sizes first (lengths prefix their messages), then one buffer.
	sizes := sc.sizes[:0]
	total := 0
	for t := range traces {
		total += pieceLayout(idx[traces[t].first:traces[t].first+traces[t].n], spans, rss, sss, &sizes)
	}
	sc.sizes = sizes
	buf := sc.buf[:0]
	if cap(buf) < total {
		buf = make([]byte, 0, total)
	}
	out := sc.out[:0]
	k := 0
	for t := range traces {
		st := &traces[t]
		start := len(buf)
		buf, k = appendPiece(buf, idx[st.first:st.first+st.n], spans, rss, sss, sizes, k)
		out = append(out, tracePiece{id: st.id, data: buf[start:len(buf):len(buf)], spans: int(st.n), minStart: st.minStart, maxEnd: st.maxEnd, spanIDs: st.ids.list})
	}
	sc.buf, sc.out = buf, out
	return out, dups, nil
}

// pieceLayout appends the body sizes of st's ResourceSpans and ScopeSpans
// messages to sizes, in writing order, and returns the piece's size.
func pieceLayout(L []int32, spans []rawSpan, rss, sss []rawGroup, sizes *[]int) int {
	total := 0
	for i := 0; i < len(L); {
		rs := spans[L[i]].rs
		at := len(*sizes)
		*sizes = append(*sizes, 0)
		rsBody := len(rss[rs].head) + len(rss[rs].tail)
		for i < len(L) && spans[L[i]].rs == rs {
			ss := spans[L[i]].ss
			ssBody := len(sss[ss].head) + len(sss[ss].tail)
			for i < len(L) && spans[L[i]].ss == ss {
				ssBody += fieldSize(len(spans[L[i]].b))
				i++
			}
			*sizes = append(*sizes, ssBody)
			rsBody += fieldSize(ssBody)
		}
		(*sizes)[at] = rsBody
		total += fieldSize(rsBody)
	}
	return total
}

func appendPiece(buf []byte, L []int32, spans []rawSpan, rss, sss []rawGroup, sizes []int, k int) ([]byte, int) {
	for i := 0; i < len(L); {
		rs := spans[L[i]].rs
		buf = appendMsgField(buf, 1, sizes[k])
		k++
		buf = append(buf, rss[rs].head...)
		for i < len(L) && spans[L[i]].rs == rs {
			ss := spans[L[i]].ss
			buf = appendMsgField(buf, 2, sizes[k])
			k++
			buf = append(buf, sss[ss].head...)
			for i < len(L) && spans[L[i]].ss == ss {
				b := spans[L[i]].b
				buf = appendMsgField(buf, 2, len(b))
				buf = append(buf, b...)
				i++
			}
			buf = append(buf, sss[ss].tail...)
		}
		buf = append(buf, rss[rs].tail...)
	}
	return buf, k
}

func fieldSize(n int) int { return 1 + uvarintSize(uint64(n)) + n }

func uvarintSize(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func appendMsgField(buf []byte, num byte, n int) []byte {
	return binary.AppendUvarint(append(buf, num<<3|2), uint64(n))
}

// nextField reads a length-delimited field num (the only field of a
// TracesData) and returns its value.
func nextField(b []byte, num uint64) (val, rest []byte, err error) {
	got, _, val, rest, err := consumeField(b)
	if err != nil {
		return nil, nil, err
	}
	if got != num || val == nil {
		return nil, nil, errSplitEncoding
	}
	return val, rest, nil
}

// consumeField reads one field: its number, the whole field with tag, and
// for a length-delimited field its value (nil otherwise).
func consumeField(b []byte) (num uint64, field, val, rest []byte, err error) {
	tag, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, nil, nil, errSplitEncoding
	}
	p := n
	switch tag & 7 {
	case 0:
		_, m := binary.Uvarint(b[p:])
		if m <= 0 {
			return 0, nil, nil, nil, errSplitEncoding
		}
		p += m
	case 1:
		p += 8
	case 5:
		p += 4
	case 2:
		l, m := binary.Uvarint(b[p:])
		if m <= 0 || l > uint64(len(b)-p-m) {
			return 0, nil, nil, nil, errSplitEncoding
		}
		p += m
		val = b[p : p+int(l) : p+int(l)]
		if val == nil {
			val = []byte{}
		}
		p += int(l)
	default:
		return 0, nil, nil, nil, errSplitEncoding
	}
	if p > len(b) {
		return 0, nil, nil, nil, errSplitEncoding
	}
	return tag >> 3, b[:p:p], val, b[p:], nil
}

// spanKey reads a Span's trace ID (1), span ID (2), start (7) and end (8).
func spanKey(b []byte) (id TraceID, sid pcommon.SpanID, start, end uint64, err error) {
	for len(b) > 0 {
		num, field, val, rest, err := consumeField(b)
		if err != nil {
			return id, sid, 0, 0, err
		}
		b = rest
		switch num {
		case 1:
			if len(val) == len(id) {
				copy(id[:], val)
			}
		case 2:
			if len(val) == len(sid) {
				copy(sid[:], val)
			}
		case 7, 8:
			if len(field) != 9 {
				return id, sid, 0, 0, errSplitEncoding
			}
			v := binary.LittleEndian.Uint64(field[1:])
			if num == 7 {
				start = v
			} else {
				end = v
			}
		}
	}
	return id, sid, start, end, nil
}
