package tracestore

import (
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

type postingCall struct {
	key, value string
	indexed    bool
}

// TestPostingScannerMatchesPdata checks the wire-level walk against
// forEachPosting (pdata) call for call.
func TestPostingScannerMatchesPdata(t *testing.T) {
	g := storetest.NewGen(7, testclock.Now().UnixNano())
	var tds []ptrace.Traces
	for i := 0; i < 50; i++ {
		_, td := g.Trace(1 + i%8)
		tds = append(tds, td)
	}
	// Every value type, empty values, long values, odd kinds and statuses.
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "")
	rs.Resource().Attributes().PutEmpty("empty")
	ss := rs.ScopeSpans().AppendEmpty()
	sp := ss.Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetName(strings.Repeat("n", maxIndexedValueLen+1))
	sp.SetKind(ptrace.SpanKindConsumer)
	sp.Status().SetCode(ptrace.StatusCodeOk)
	a := sp.Attributes()
	a.PutBool("t", true)
	a.PutBool("f", false)
	a.PutInt("neg", -42)
	a.PutInt("zero", 0)
	a.PutDouble("pi", 3.25)
	a.PutDouble("big", 1e300)
	a.PutDouble("nzero", 0)
	a.PutStr("long", strings.Repeat("x", maxIndexedValueLen+1))
	a.PutStr("edge", strings.Repeat("x", maxIndexedValueLen))
	a.PutStr("", "empty key")
	a.PutEmptyBytes("bytes").FromRaw([]byte{1, 2})
	a.PutEmptySlice("slice").AppendEmpty().SetStr("x")
	a.PutEmptyMap("map").PutStr("k", "v")
	sp2 := ss.Spans().AppendEmpty()
	sp2.SetTraceID(pcommon.TraceID{1})
	sp2.SetKind(ptrace.SpanKind(42))
	sp2.Status().SetCode(ptrace.StatusCodeError)
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	tds = append(tds, td)

	var m ptrace.ProtoMarshaler
	for i, td := range tds {
		var want, got []postingCall
		forEachPosting(td, func(k, v string, ok bool) { want = append(want, postingCall{k, v, ok}) })
		raw, err := m.MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		s := postingScanner{fn: func(k, v []byte, ok bool) { got = append(got, postingCall{string(k), string(v), ok}) }}
		if err := s.scan(raw); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("trace %d: %d calls, want %d\ngot  %+v\nwant %+v", i, len(got), len(want), got, want)
		}
		for j := range want {
			if got[j] != want[j] {
				t.Fatalf("trace %d call %d: got %+v, want %+v", i, j, got[j], want[j])
			}
		}
	}
	s := postingScanner{fn: func([]byte, []byte, bool) {}}
	if err := s.scan([]byte{0x0a, 0x05, 0x01}); err == nil {
		t.Fatal("truncated protobuf accepted")
	}
}

// checkFromWalk fails unless the postings fromWalk makes from the column
// walk of raw are scan's, in order; it reports whether fromWalk took
// the trace (false: the cut falls back to scan).
func checkFromWalk(t *testing.T, raw []byte) bool {
	t.Helper()
	var want, got []postingCall
	s := postingScanner{fn: func(k, v []byte, ok bool) { want = append(want, postingCall{string(k), string(v), ok}) }}
	if err := s.scan(raw); err != nil {
		return false
	}
	w := colWalker{attrs: true}
	if err := w.walk(raw); err != nil {
		return false
	}
	s.fn = func(k, v []byte, ok bool) { got = append(got, postingCall{string(k), string(v), ok}) }
	ok, err := s.fromWalk(&w)
	if err != nil {
		t.Fatalf("fromWalk: %v (scan took it)", err)
	}
	if !ok {
		if len(got) != 0 {
			t.Fatalf("fromWalk declined after %d calls", len(got))
		}
		return false
	}
	if !slices.Equal(got, want) {
		t.Fatalf("fromWalk calls differ from scan's (or their order)\ngot  %+v\nwant %+v", got, want)
	}
	return true
}

// TestPostingsFromWalkMatchScan: the cut's postings from the column walk
// are the scanner's (events and links included); traces with values the
// columns refuse fall back to the scanner.
func TestPostingsFromWalkMatchScan(t *testing.T) {
	g := storetest.NewGen(11, testclock.Now().UnixNano())
	var m ptrace.ProtoMarshaler
	events, links := 0, 0
	for i := 0; i < 300; i++ {
		_, td := g.Trace(1 + i%8)
		spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		for j := 0; j < spans.Len(); j++ {
			events += spans.At(j).Events().Len()
			links += spans.At(j).Links().Len()
		}
		raw, err := m.MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		if !checkFromWalk(t, raw) {
			t.Fatalf("trace %d: fromWalk declined a generated trace", i)
		}
	}
	if events == 0 || links == 0 {
		t.Fatalf("generator made %d events, %d links: the test proves nothing for them", events, links)
	}
	// Scalars of every kind take the walk; a map value falls back.
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	rs.Resource().Attributes().PutEmpty("empty")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetName(strings.Repeat("n", maxIndexedValueLen+1))
	sp.SetKind(ptrace.SpanKindConsumer)
	sp.Status().SetCode(ptrace.StatusCodeOk)
	a := sp.Attributes()
	a.PutBool("t", true)
	a.PutBool("f", false)
	a.PutInt("neg", -42)
	a.PutDouble("pi", 3.25)
	a.PutDouble("big", 1e300)
	a.PutStr("edge", strings.Repeat("x", maxIndexedValueLen))
	a.PutStr("", "empty key")
	ev := sp.Events().AppendEmpty()
	ev.Attributes().PutStr("exception.type", "E")
	ev.Attributes().PutInt("n", 3)
	sp.Links().AppendEmpty().Attributes().PutStr("l", "v")
	raw, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	if !checkFromWalk(t, raw) {
		t.Fatal("fromWalk declined scalar attributes")
	}
	// Several ResourceSpans, one without spans: resource attributes come
	// before their own spans, as scan makes them.
	rs2 := td.ResourceSpans().AppendEmpty()
	rs2.Resource().Attributes().PutStr("service.name", "other")
	rs2.Resource().Attributes().PutInt("r", 2)
	rs2.ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("second")
	td.ResourceSpans().AppendEmpty().Resource().Attributes().PutStr("lonely", "x")
	if raw, err = m.MarshalTraces(td); err != nil {
		t.Fatal(err)
	}
	if !checkFromWalk(t, raw) {
		t.Fatal("fromWalk declined several resources")
	}
	a.PutEmptyMap("map").PutStr("k", "v")
	if raw, err = m.MarshalTraces(td); err != nil {
		t.Fatal(err)
	}
	if checkFromWalk(t, raw) {
		t.Fatal("fromWalk took a map value the columns refuse")
	}
}
