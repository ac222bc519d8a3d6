package tracestore

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Spans are identified by (trace ID, span ID): a sender that retries a batch
// (at-least-once delivery: the SDKs, the Collector, our agent) sends the same
// spans again, and the store keeps the first copy only. Within one trace the
// span ID decides; see ADR 0023.

// spanSetListMax is the size up to which a spanSet is only a slice searched
// linearly; most traces in the head hold fewer spans than this.
const spanSetListMax = 24

// spanSet is the set of span IDs of one trace. list holds every ID added, in
// order; m indexes it once the list is long.
type spanSet struct {
	list []pcommon.SpanID
	m    map[pcommon.SpanID]struct{}
}

func (s *spanSet) has(id pcommon.SpanID) bool {
	if s.m != nil {
		_, ok := s.m[id]
		return ok
	}
	for _, x := range s.list {
		if x == id {
			return true
		}
	}
	return false
}

func (s *spanSet) add(id pcommon.SpanID) {
	s.list = append(s.list, id)
	if s.m != nil {
		s.m[id] = struct{}{}
		return
	}
	if len(s.list) > spanSetListMax {
		s.m = make(map[pcommon.SpanID]struct{}, 2*len(s.list))
		for _, x := range s.list {
			s.m[x] = struct{}{}
		}
	}
}

func (s *spanSet) len() int { return len(s.list) }

// clone returns an independent copy (the head shares nothing with snapshots
// that a later add could change).
func (s *spanSet) clone() spanSet {
	var c spanSet
	c.list = append([]pcommon.SpanID(nil), s.list...)
	if s.m != nil {
		c.m = make(map[pcommon.SpanID]struct{}, len(s.m))
		for k := range s.m {
			c.m[k] = struct{}{}
		}
	}
	return c
}

// spanIDsOf lists the span IDs of td in order.
func spanIDsOf(td ptrace.Traces) []pcommon.SpanID {
	var out []pcommon.SpanID
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				out = append(out, sp.At(k).SpanID())
			}
		}
	}
	return out
}

// removeSpans drops the spans for which drop is true, and the scopes and
// resources left empty. It returns how many spans it dropped.
func removeSpans(td ptrace.Traces, drop func(ptrace.Span) bool) int {
	n := 0
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool {
				if drop(s) {
					n++
					return true
				}
				return false
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return n
}

// dedupTraceData drops repeated span IDs from one trace's TracesData (the
// concatenation of pieces from several places), keeping the first copy. It
// returns data itself when nothing repeats, and how many spans it dropped.
func dedupTraceData(data []byte) ([]byte, int, error) {
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(data)
	if err != nil {
		return nil, 0, err
	}
	var seen spanSet
	dups := 0
	for _, id := range spanIDsOf(td) {
		if seen.has(id) {
			dups++
			continue
		}
		seen.add(id)
	}
	if dups == 0 {
		return data, 0, nil
	}
	var kept spanSet
	removeSpans(td, func(s ptrace.Span) bool {
		if kept.has(s.SpanID()) {
			return true
		}
		kept.add(s.SpanID())
		return false
	})
	var m ptrace.ProtoMarshaler
	out, err := m.MarshalTraces(td)
	if err != nil {
		return nil, 0, err
	}
	return out, dups, nil
}

// withoutSpans rebuilds a piece without the spans whose IDs are in drop.
// ok is false when nothing of the piece is left.
func withoutSpans(p tracePiece, drop *spanSet) (tracePiece, bool, error) {
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(p.data)
	if err != nil {
		return p, false, err
	}
	removeSpans(td, func(s ptrace.Span) bool { return drop.has(s.SpanID()) })
	out := tracePiece{id: p.id, minStart: ^uint64(0)}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				s := sp.At(k)
				out.spanIDs = append(out.spanIDs, s.SpanID())
				start, end := uint64(s.StartTimestamp()), uint64(s.EndTimestamp())
				out.minStart = min(out.minStart, start)
				out.maxEnd = max(out.maxEnd, max(start, end))
			}
		}
	}
	out.spans = len(out.spanIDs)
	if out.spans == 0 {
		return out, false, nil
	}
	var m ptrace.ProtoMarshaler
	if out.data, err = m.MarshalTraces(td); err != nil {
		return p, false, err
	}
	return out, true, nil
}
