package tracestore

import (
	"bytes"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestSplitEncodedMatchesCopy: regrouping the encoded request gives the
// same pieces, byte for byte, as copying pdata per trace and encoding it,
// for requests with several resources and scopes, traces spread across
// them, duplicates and empty resources.
func TestSplitEncodedMatchesCopy(t *testing.T) {
	g := storetest.NewGen(21, testBase.UnixNano())
	var reqs []ptrace.Traces
	big := ptrace.NewTraces()
	for i := range 40 {
		_, td := g.Trace(1 + i%7)
		td.ResourceSpans().MoveAndAppendTo(big.ResourceSpans())
	}
	reqs = append(reqs, big)
	// Two traces spread over several resources, then a resource with two
	// scopes holding a retried span of A, a new span of B and one whose end
	// comes before its start.
	mixed := ptrace.NewTraces()
	_, tdA := g.Trace(4)
	_, tdB := g.Trace(3)
	tdA.ResourceSpans().MoveAndAppendTo(mixed.ResourceSpans())
	tdB.ResourceSpans().MoveAndAppendTo(mixed.ResourceSpans())
	var all []ptrace.Span
	for i := 0; i < mixed.ResourceSpans().Len(); i++ {
		sss := mixed.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				all = append(all, sss.At(j).Spans().At(k))
			}
		}
	}
	rs := mixed.ResourceSpans().AppendEmpty() // empty resource, two scopes
	ss1 := rs.ScopeSpans().AppendEmpty()
	ss1.Scope().SetName("s1")
	ss1.SetSchemaUrl("https://x")
	all[1].CopyTo(ss1.Spans().AppendEmpty()) // a retry of A's second span
	all[len(all)-1].CopyTo(ss1.Spans().AppendEmpty())
	ss1.Spans().At(1).SetSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, 9})
	ss2 := rs.ScopeSpans().AppendEmpty()
	all[0].CopyTo(ss2.Spans().AppendEmpty())
	ss2.Spans().At(0).SetSpanID(pcommon.SpanID{8, 8, 8, 8, 8, 8, 8, 8})
	ss2.Spans().At(0).SetEndTimestamp(1) // end before start
	rs.SetSchemaUrl("https://r")
	reqs = append(reqs, mixed)
	for ri, td := range reqs {
		n, err := validate(td)
		if err != nil {
			t.Fatal(err)
		}
		want, wantDups, err := splitCopy(td, n)
		if err != nil {
			t.Fatal(err)
		}
		got, gotDups, err := split(td, n)
		if err != nil {
			t.Fatal(err)
		}
		if gotDups != wantDups || len(got) != len(want) {
			t.Fatalf("request %d: %d pieces, %d dups; want %d, %d", ri, len(got), gotDups, len(want), wantDups)
		}
		for i := range want {
			w, g := want[i], got[i]
			if g.id != w.id || g.spans != w.spans || g.minStart != w.minStart || g.maxEnd != w.maxEnd || !bytes.Equal(g.data, w.data) {
				t.Fatalf("request %d piece %d differs: got %x %d %d-%d (%d bytes), want %x %d %d-%d (%d bytes)", ri, i,
					g.id, g.spans, g.minStart, g.maxEnd, len(g.data), w.id, w.spans, w.minStart, w.maxEnd, len(w.data))
			}
			if len(g.spanIDs) != len(w.spanIDs) {
				t.Fatalf("request %d piece %d: %d span IDs, want %d", ri, i, len(g.spanIDs), len(w.spanIDs))
			}
		}
	}
}

// reverseFields re-encodes a TracesData with the fields of each
// ResourceSpans and ScopeSpans in the opposite order (ascending, as most
// senders write them, where pdata writes descending).
func reverseFields(t *testing.T, b []byte, depth int) []byte {
	t.Helper()
	var fields [][]byte
	for len(b) > 0 {
		num, field, val, rest, err := consumeField(b)
		if err != nil {
			t.Fatal(err)
		}
		b = rest
		if depth < 2 && (depth == 0 && num == 1 || depth == 1 && num == 2) {
			inner := reverseFields(t, val, depth+1)
			field = appendMsgField(nil, byte(num), len(inner))
			field = append(field, inner...)
		}
		fields = append(fields, field)
	}
	var out []byte
	if depth == 0 { // keep the order of resource spans
		for _, f := range fields {
			out = append(out, f...)
		}
		return out
	}
	for i := len(fields) - 1; i >= 0; i-- {
		out = append(out, fields[i]...)
	}
	return out
}

// TestSplitEncodedAnyFieldOrder: a request encoded in another field order
// (the sender's bytes, otlp.RawTraces) splits into pieces that decode to
// the same spans.
func TestSplitEncodedAnyFieldOrder(t *testing.T) {
	g := storetest.NewGen(23, testBase.UnixNano())
	td := ptrace.NewTraces()
	for i := range 30 {
		_, one := g.Trace(1 + i%6)
		one.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	n, err := validate(td)
	if err != nil {
		t.Fatal(err)
	}
	var m ptrace.ProtoMarshaler
	raw, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	asc := reverseFields(t, raw, 0)
	if bytes.Equal(asc, raw) || len(asc) != len(raw) {
		t.Fatalf("re-encoding did not reorder (%d vs %d bytes)", len(asc), len(raw))
	}
	want, _, err := splitCopy(td, n)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := splitEncoded(asc, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := splitEncoded(asc, n+1); err == nil {
		t.Fatal("a span count that does not match td must be refused")
	}
	if len(got) != len(want) {
		t.Fatalf("%d pieces, want %d", len(got), len(want))
	}
	var u ptrace.ProtoUnmarshaler
	for i := range want {
		a, err := u.UnmarshalTraces(got[i].data)
		if err != nil {
			t.Fatal(err)
		}
		b, err := u.UnmarshalTraces(want[i].data)
		if err != nil {
			t.Fatal(err)
		}
		if d := storetest.Diff(b, a); d != "" || got[i].id != want[i].id || got[i].minStart != want[i].minStart || got[i].maxEnd != want[i].maxEnd {
			t.Fatalf("piece %d differs: %s", i, d)
		}
	}
}

func BenchmarkSplit(b *testing.B) {
	g := storetest.NewGen(22, testBase.UnixNano())
	td := ptrace.NewTraces()
	for range 100 {
		_, one := g.Trace(5)
		one.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	n := td.SpanCount()
	for _, c := range []struct {
		name string
		fn   func(ptrace.Traces, int) ([]tracePiece, int, error)
	}{{"copy", splitCopy}, {"encoded", split}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.fn(td, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/span")
		})
	}
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

// splitCopy (the split of 2026-11-30, kept as the reference) groups the spans of td (n spans, as validate counted them) by trace
// ID, in first-seen order. A span whose (trace ID, span ID) already came
// earlier in td is left out and counted in dups.
func splitCopy(td ptrace.Traces, n int) (pieces []tracePiece, dups int, err error) {
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

// FuzzSplitEncoded: any bytes are refused or split without panicking; bytes
// pdata decodes split into pieces that decode to the same spans, per trace.
func FuzzSplitEncoded(f *testing.F) {
	g := storetest.NewGen(24, testBase.UnixNano())
	for i := range 4 {
		_, td := g.Trace(1 + i)
		var m ptrace.ProtoMarshaler
		b, err := m.MarshalTraces(td)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, td.SpanCount())
	}
	f.Fuzz(func(t *testing.T, raw []byte, n int) {
		pieces, dups, err := splitEncoded(raw, n)
		var u ptrace.ProtoUnmarshaler
		td, uerr := u.UnmarshalTraces(raw)
		if uerr != nil || td.SpanCount() != n || n == 0 {
			return
		}
		if _, verr := validate(td); verr != nil {
			return
		}
		if err != nil {
			// A sender's encoding split refuses goes through pdata's own
			// encoding of td instead (splitRequest); that one must split.
			var m ptrace.ProtoMarshaler
			own, merr := m.MarshalTraces(td)
			if merr != nil {
				t.Fatal(merr)
			}
			if pieces, dups, err = splitEncoded(own, n); err != nil {
				t.Fatalf("pdata decodes %d spans, split refused its own encoding: %v", n, err)
			}
		}
		total := dups
		for _, p := range pieces {
			got, err := u.UnmarshalTraces(p.data)
			if err != nil {
				t.Fatalf("piece does not decode: %v", err)
			}
			if got.SpanCount() != p.spans {
				t.Fatalf("piece holds %d spans, says %d", got.SpanCount(), p.spans)
			}
			total += p.spans
		}
		if total != n {
			t.Fatalf("pieces hold %d spans (+dups), request %d", total, n)
		}
	})
}
