package tracestore

import (
	"context"
	"encoding/binary"
	"errors"
	"math/bits"

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
	return splitRequest(context.Background(), td, n)
}

// splitRequest is split, on the request's own bytes when the OTLP receiver
// passed them along for this td (otlp.RawTraces): no re-encoding at all.
func splitRequest(ctx context.Context, td ptrace.Traces, n int) (pieces []tracePiece, dups int, err error) {
	if raw, ok := otlp.RawTraces(ctx, td); ok {
		if pieces, dups, err := splitEncoded(raw, n); err == nil {
			return pieces, dups, nil
		}
		// Not what td says (n spans): encode td itself.
	}
	var m ptrace.ProtoMarshaler
	raw, err := m.MarshalTraces(td)
	if err != nil {
		return nil, 0, err
	}
	return splitEncoded(raw, n)
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

type rawTrace struct {
	id       TraceID
	spans    []int32 // indexes into the request's spans, in order
	minStart uint64
	maxEnd   uint64
	ids      spanSet
}

var errSplitEncoding = errors.New("unexpected encoding")

// splitEncoded is split on an encoding of td: pdata's, or the request as
// the sender wrote it. Fields other than the lists keep their place before
// or after the list, so on pdata's encoding the pieces equal pdata's own
// encoding of each trace; any other field order gives pieces that decode
// to the same spans.
func splitEncoded(raw []byte, n int) (pieces []tracePiece, dups int, err error) {
	spans := make([]rawSpan, 0, n)
	var rss, sss []rawGroup
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
	// Group by trace; the span-ID lists of all pieces share one allocation.
	states := map[TraceID]*rawTrace{}
	var order []*rawTrace
	of := make([]*rawTrace, len(spans))
	sids := make([]pcommon.SpanID, len(spans))
	times := make([][2]uint64, len(spans))
	for i := range spans {
		id, sid, start, end, err := spanKey(spans[i].b)
		if err != nil {
			return nil, 0, err
		}
		st := states[id]
		if st == nil {
			st = &rawTrace{id: id, minStart: ^uint64(0)}
			states[id] = st
			order = append(order, st)
		}
		st.spans = append(st.spans, int32(i))
		of[i], sids[i] = st, sid
		times[i] = [2]uint64{start, max(start, end)}
	}
	arena := make([]pcommon.SpanID, len(spans))
	off := 0
	for _, st := range order {
		st.ids.list = arena[off : off : off+len(st.spans)]
		off += len(st.spans)
		st.spans = st.spans[:0]
	}
	for i := range spans {
		st := of[i]
		if st.ids.has(sids[i]) {
			dups++
			continue
		}
		st.ids.add(sids[i])
		st.spans = append(st.spans, int32(i))
		st.minStart = min(st.minStart, times[i][0])
		st.maxEnd = max(st.maxEnd, times[i][1])
	}
	// Sizes first (lengths prefix their messages), then one buffer.
	var sizes []int
	total := 0
	for _, st := range order {
		total += pieceLayout(st, spans, rss, sss, &sizes)
	}
	buf := make([]byte, 0, total)
	out := make([]tracePiece, 0, len(order))
	k := 0
	for _, st := range order {
		start := len(buf)
		buf, k = appendPiece(buf, st, spans, rss, sss, sizes, k)
		out = append(out, tracePiece{id: st.id, data: buf[start:len(buf):len(buf)], spans: len(st.spans), minStart: st.minStart, maxEnd: st.maxEnd, spanIDs: st.ids.list})
	}
	return out, dups, nil
}

// pieceLayout appends the body sizes of st's ResourceSpans and ScopeSpans
// messages to sizes, in writing order, and returns the piece's size.
func pieceLayout(st *rawTrace, spans []rawSpan, rss, sss []rawGroup, sizes *[]int) int {
	total := 0
	L := st.spans
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

func appendPiece(buf []byte, st *rawTrace, spans []rawSpan, rss, sss []rawGroup, sizes []int, k int) ([]byte, int) {
	L := st.spans
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
