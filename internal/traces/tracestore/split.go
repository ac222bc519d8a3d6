package tracestore

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
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

type splitState struct {
	td       ptrace.Traces
	rsIdx    int
	ssIdx    int
	rs       ptrace.ResourceSpans
	ss       ptrace.ScopeSpans
	spans    int
	minStart uint64
	maxEnd   uint64
	ids      spanSet
}

// split groups the spans of td (n spans, as validate counted them) by trace
// ID, in first-seen order. A span whose (trace ID, span ID) already came
// earlier in td is left out and counted in dups.
func split(td ptrace.Traces, n int) (pieces []tracePiece, dups int, err error) {
	states := map[TraceID]*splitState{}
	var order []TraceID
	rss := td.ResourceSpans()
	// First pass: each span's trace state and the spans per trace, so the
	// span-ID lists of all pieces share one allocation.
	stateOf := make([]*splitState, 0, n)
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				id := sp.At(k).TraceID()
				st := states[id]
				if st == nil {
					st = &splitState{td: ptrace.NewTraces(), rsIdx: -1, ssIdx: -1, minStart: ^uint64(0)}
					states[id] = st
					order = append(order, id)
				}
				st.spans++ // a capacity here; recounted below
				stateOf = append(stateOf, st)
			}
		}
	}
	arena := make([]pcommon.SpanID, len(stateOf))
	off := 0
	for _, id := range order {
		st := states[id]
		st.ids.list = arena[off : off : off+st.spans]
		off += st.spans
		st.spans = 0
	}
	pos := 0
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			sp := ss.Spans()
			for k := 0; k < sp.Len(); k++ {
				s := sp.At(k)
				st := stateOf[pos]
				pos++
				if sid := s.SpanID(); st.ids.has(sid) {
					dups++
					continue
				} else {
					st.ids.add(sid)
				}
				if st.rsIdx != i {
					st.rs = st.td.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(st.rs.Resource())
					st.rs.SetSchemaUrl(rs.SchemaUrl())
					st.rsIdx, st.ssIdx = i, -1
				}
				if st.ssIdx != j {
					st.ss = st.rs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(st.ss.Scope())
					st.ss.SetSchemaUrl(ss.SchemaUrl())
					st.ssIdx = j
				}
				s.CopyTo(st.ss.Spans().AppendEmpty())
				st.spans++
				start, end := uint64(s.StartTimestamp()), uint64(s.EndTimestamp())
				if end < start {
					end = start
				}
				st.minStart = min(st.minStart, start)
				st.maxEnd = max(st.maxEnd, end)
			}
		}
	}
	var m ptrace.ProtoMarshaler
	out := make([]tracePiece, 0, len(order))
	for _, id := range order {
		st := states[id]
		b, err := m.MarshalTraces(st.td)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, tracePiece{id: id, data: b, spans: st.spans, minStart: st.minStart, maxEnd: st.maxEnd, spanIDs: st.ids.list})
	}
	return out, dups, nil
}
