package tracestore

import (
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
