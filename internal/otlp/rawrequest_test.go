package otlp

import (
	"bytes"
	"math"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// richTraces is a request with every field the walk reads, values of every
// type and a span of each kind.
func richTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://schema")
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", "checkout")
	ra.PutInt("pid", 42)
	ra.PutBool("canary", true)
	rs.Resource().SetDroppedAttributesCount(3)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("lib")
	ss.Scope().SetVersion("1.0")
	ss.Scope().Attributes().PutDouble("scope.f", 0.5)
	for k := range 6 {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1, byte(k % 2), 3})
		sp.SetSpanID(pcommon.SpanID{2, byte(k + 1)})
		if k > 0 {
			sp.SetParentSpanID(pcommon.SpanID{2, byte(k)})
		}
		sp.SetName("op")
		sp.SetKind(ptrace.SpanKind(k))
		sp.SetStartTimestamp(pcommon.Timestamp(1e18 + k))
		sp.SetEndTimestamp(pcommon.Timestamp(1e18 + 1e6*k))
		sp.TraceState().FromRaw("a=b")
		sp.SetFlags(1)
		sp.Attributes().PutStr("http.method", "GET")
		sp.Attributes().PutInt("http.status_code", int64(200+k))
		sp.Attributes().PutBool("ok", k%2 == 0)
		sp.Attributes().PutEmpty("nothing")
		sp.SetDroppedAttributesCount(uint32(k))
		sp.Status().SetCode(ptrace.StatusCode(k % 3))
		sp.Status().SetMessage("m")
		ev := sp.Events().AppendEmpty()
		ev.SetName("e")
		ev.SetTimestamp(5)
		ev.Attributes().PutEmptySlice("list").AppendEmpty().SetStr("x")
		ev.SetDroppedAttributesCount(1)
		ln := sp.Links().AppendEmpty()
		ln.SetTraceID(pcommon.TraceID{7})
		ln.SetSpanID(pcommon.SpanID{7})
		ln.TraceState().FromRaw("c=d")
		ln.Attributes().PutEmptyMap("m").PutStr("k", "v")
		ln.SetFlags(3)
		ln.SetDroppedAttributesCount(2)
		sp.Links().AppendEmpty() // all empty
		sp.SetDroppedEventsCount(1)
		sp.SetDroppedLinksCount(2)
	}
	rs2 := td.ResourceSpans().AppendEmpty() // no resource attributes, one bare span
	sp := rs2.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{9})
	sp.SetSpanID(pcommon.SpanID{9})
	td.ResourceSpans().AppendEmpty() // no spans at all
	return td
}

func marshalTraces(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sdkStyleSpan encodes a span as protobuf-go does for the OTel Go SDK:
// ascending field order, no empty parent ID, no empty status, and here an
// explicit zero kind and a non-minimal length, which pdata leaves out or
// writes shorter.
func sdkStyleSpan(tid, sid byte) []byte {
	var sp []byte
	sp = protowire.AppendTag(sp, 1, protowire.BytesType)
	sp = protowire.AppendBytes(sp, bytes.Repeat([]byte{tid}, 16))
	sp = protowire.AppendTag(sp, 2, protowire.BytesType)
	sp = protowire.AppendBytes(sp, bytes.Repeat([]byte{sid}, 8))
	sp = protowire.AppendTag(sp, 5, protowire.BytesType)
	sp = append(sp, 0x82, 0x00) // length 2, in two bytes
	sp = append(sp, "op"...)
	sp = protowire.AppendTag(sp, 6, protowire.VarintType)
	sp = protowire.AppendVarint(sp, 0)
	sp = protowire.AppendTag(sp, 7, protowire.Fixed64Type)
	sp = protowire.AppendFixed64(sp, 100)
	sp = protowire.AppendTag(sp, 8, protowire.Fixed64Type)
	sp = protowire.AppendFixed64(sp, 0)
	var kv []byte
	kv = protowire.AppendTag(kv, 1, protowire.BytesType)
	kv = protowire.AppendString(kv, "k\xff") // not UTF-8: pdata does not check
	sp = protowire.AppendTag(sp, 9, protowire.BytesType)
	sp = protowire.AppendBytes(sp, kv) // no value at all
	sp = protowire.AppendTag(sp, 10, protowire.VarintType)
	sp = protowire.AppendVarint(sp, 1<<32) // pdata keeps the low 32 bits: 0
	return sp
}

func sdkStyleRequest(spans ...[]byte) []byte {
	var ss []byte
	for _, sp := range spans {
		ss = protowire.AppendTag(ss, 2, protowire.BytesType)
		ss = protowire.AppendBytes(ss, sp)
	}
	var rs []byte
	rs = protowire.AppendTag(rs, 2, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rs)
}

// checkRawMatchesPdata reports whether the walk accepted body and, if it
// did, fails t unless pdata decodes body to what the walk read.
func checkRawMatchesPdata(t testing.TB, body []byte) bool {
	t.Helper()
	var req RawTracesRequest
	if !parseRawTraces(body, &req) {
		return false
	}
	ereq := ptraceotlp.NewExportRequest()
	if err := ereq.UnmarshalProto(body); err != nil {
		t.Fatalf("the walk accepts what pdata refuses: %v", err)
	}
	td := ereq.Traces()
	rss := td.ResourceSpans()
	if rss.Len() != req.ResourceCount() {
		t.Fatalf("%d resources, pdata %d", req.ResourceCount(), rss.Len())
	}
	complexAttrs := false
	var sizer ptrace.ProtoMarshaler
	i := 0
	for r := range rss.Len() {
		rs := rss.At(r)
		complexAttrs = compareAttrs(t, req.ResourceAttributes(int32(r)), rs.Resource().Attributes()) || complexAttrs
		for s := range rs.ScopeSpans().Len() {
			spans := rs.ScopeSpans().At(s).Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				if i >= len(req.spans) {
					t.Fatalf("pdata has more than the walk's %d spans", len(req.spans))
				}
				got := req.spans[i]
				i++
				if got.Resource != int32(r) || got.TraceID != sp.TraceID() || got.SpanID != sp.SpanID() ||
					got.ParentSpanID != sp.ParentSpanID() || got.Kind != sp.Kind() || got.StatusCode != sp.Status().Code() ||
					got.Start != uint64(sp.StartTimestamp()) || got.End != uint64(sp.EndTimestamp()) ||
					string(got.Name) != sp.Name() || string(got.StatusMsg) != sp.Status().Message() {
					t.Fatalf("span %d: walk read %+v, pdata has %s %s kind %v status %v", i-1, got, sp.TraceID(), sp.SpanID(), sp.Kind(), sp.Status().Code())
				}
				if want := sizer.SpanSize(sp); got.Size != want {
					t.Fatalf("span %d: walk size %d, pdata SpanSize %d", i-1, got.Size, want)
				}
				if got.TraceID.IsEmpty() || got.SpanID.IsEmpty() {
					t.Fatalf("span %d: the walk accepted an all-zero ID", i-1)
				}
				complexAttrs = compareAttrs(t, req.SpanAttributes(i-1), sp.Attributes()) || complexAttrs
				compareAttrList(t, req.EventAttributes(i-1), func(yield func(pcommon.Map) bool) {
					for e := range sp.Events().Len() {
						if !yield(sp.Events().At(e).Attributes()) {
							return
						}
					}
				})
				compareAttrList(t, req.LinkAttributes(i-1), func(yield func(pcommon.Map) bool) {
					for l := range sp.Links().Len() {
						if !yield(sp.Links().At(l).Attributes()) {
							return
						}
					}
				})
			}
		}
	}
	if i != len(req.spans) {
		t.Fatalf("the walk read %d spans, pdata %d", len(req.spans), i)
	}
	if complexAttrs != req.ComplexAttributes() {
		t.Fatalf("ComplexAttributes %v, pdata's attributes say %v", req.ComplexAttributes(), complexAttrs)
	}
	// Traces without the dropped spans is pdata without them.
	for j := 0; j < len(req.spans); j += 2 {
		req.Drop(j)
	}
	got, err := req.Traces()
	if err != nil {
		t.Fatal(err)
	}
	if got.SpanCount() != len(req.spans)/2 {
		t.Fatalf("Traces after dropping every other span has %d spans of %d", got.SpanCount(), len(req.spans))
	}
	return true
}

// compareAttrList fails t unless attrs are the attributes of maps, one
// map after the other.
func compareAttrList(t testing.TB, attrs []RawAttr, maps func(func(pcommon.Map) bool)) {
	t.Helper()
	at := 0
	for m := range maps {
		if at+m.Len() > len(attrs) {
			t.Fatalf("the walk read %d nested attributes, pdata has more", len(attrs))
		}
		compareAttrs(t, attrs[at:at+m.Len()], m)
		at += m.Len()
	}
	if at != len(attrs) {
		t.Fatalf("the walk read %d nested attributes, pdata %d", len(attrs), at)
	}
}

// compareAttrs fails t unless the walk's attributes equal m; it reports
// whether any value is of a type ComplexAttributes counts.
func compareAttrs(t testing.TB, attrs []RawAttr, m pcommon.Map) (complexAttrs bool) {
	t.Helper()
	if len(attrs) != m.Len() {
		t.Fatalf("%d attributes, pdata %d", len(attrs), m.Len())
	}
	i := 0
	for k, want := range m.All() {
		key, v := attrs[i].Key, attrs[i].Value
		i++
		if k != string(key) {
			t.Fatalf("attribute %d: key %q, pdata %q", i-1, key, k)
		}
		if v.Type != want.Type() {
			t.Fatalf("attribute %q: type %v, pdata %v", key, v.Type, want.Type())
		}
		switch v.Type {
		case pcommon.ValueTypeStr:
			if string(v.Str) != want.Str() {
				t.Fatalf("attribute %q: %q, pdata %q", key, v.Str, want.Str())
			}
		case pcommon.ValueTypeInt:
			if v.Int != want.Int() {
				t.Fatalf("attribute %q: %d, pdata %d", key, v.Int, want.Int())
			}
		case pcommon.ValueTypeBool:
			if v.Bool != want.Bool() {
				t.Fatalf("attribute %q: %v, pdata %v", key, v.Bool, want.Bool())
			}
		case pcommon.ValueTypeDouble:
			if math.Float64bits(v.Double) != math.Float64bits(want.Double()) {
				t.Fatalf("attribute %q: %v, pdata %v", key, v.Double, want.Double())
			}
		case pcommon.ValueTypeBytes:
			if !bytes.Equal(v.Str, want.Bytes().AsRaw()) {
				t.Fatalf("attribute %q: bytes differ", key)
			}
		}
		if v.Type == pcommon.ValueTypeSlice || v.Type == pcommon.ValueTypeMap {
			complexAttrs = true
		}
	}
	return complexAttrs
}

// TestRawWalkMatchesPdata: requests the walk accepts decode with pdata to
// the spans, sizes and attributes the walk read; the ones it refuses are
// the ones pdata reads differently or refuses.
func TestRawWalkMatchesPdata(t *testing.T) {
	rich := marshalTraces(t, richTraces())
	zeroID := ptrace.NewTraces()
	sp := zeroID.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetSpanID(pcommon.SpanID{1})
	withUnknown := append(bytes.Clone(rich), protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)...)
	twoNames := sdkStyleRequest(append(sdkStyleSpan(1, 2), protowire.AppendString(protowire.AppendTag(nil, 5, protowire.BytesType), "again")...))
	for _, tc := range []struct {
		name   string
		body   []byte
		accept bool
	}{
		{"pdata's encoding of every field", rich, true},
		{"SDK-style encoding", sdkStyleRequest(sdkStyleSpan(1, 2), sdkStyleSpan(1, 3), sdkStyleSpan(4, 5)), true},
		{"empty request", nil, true},
		{"all-zero trace ID", marshalTraces(t, zeroID), false},
		{"unknown field", withUnknown, false},
		{"a singular field twice", twoNames, false},
		{"truncated", rich[:len(rich)-3], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkRawMatchesPdata(t, tc.body); got != tc.accept {
				t.Fatalf("walk accepts: %v, want %v", got, tc.accept)
			}
		})
	}
}

// FuzzRawWalk: whatever the walk accepts, pdata decodes to what it read.
func FuzzRawWalk(f *testing.F) {
	f.Add(marshalTraces(f, richTraces()))
	f.Add(sdkStyleRequest(sdkStyleSpan(1, 2), sdkStyleSpan(4, 5)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		checkRawMatchesPdata(t, body)
	})
}
