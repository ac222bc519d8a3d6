package tempoapi

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// appendTraceJSON writes a trace the way Tempo's by-ID endpoint does: the
// OTLP protobuf JSON mapping with "batches" for resource spans, IDs and bytes
// in base64, 64-bit integers as strings, enums by name, defaults omitted.
func appendTraceJSON(b []byte, td ptrace.Traces) []byte { return appendTraceJSONAs(b, td, "batches") }

// appendTraceJSONAs writes the trace with its resource spans under key:
// "batches" in the v1 answer (Tempo's legacy name), "resourceSpans" in the
// v2 one (OTLP's; Tempo's docs show {"trace":{"resourceSpans":[...]}}).
func appendTraceJSONAs(b []byte, td ptrace.Traces, key string) []byte {
	b = append(b, `{"`...)
	b = append(b, key...)
	b = append(b, `":[`...)
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendResourceSpans(b, rss.At(i))
	}
	return append(b, "]}"...)
}

type obj struct {
	b     []byte
	first bool
}

func (o *obj) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, `":`...)
}

func (o *obj) str(k, v string) {
	if v != "" {
		o.key(k)
		o.b = appendString(o.b, v)
	}
}

func (o *obj) u64(k string, v uint64) {
	if v != 0 {
		o.key(k)
		o.b = append(o.b, '"')
		o.b = strconv.AppendUint(o.b, v, 10)
		o.b = append(o.b, '"')
	}
}

func (o *obj) u32(k string, v uint32) {
	if v != 0 {
		o.key(k)
		o.b = strconv.AppendUint(o.b, uint64(v), 10)
	}
}

func (o *obj) id(k string, v []byte, empty bool) {
	if !empty {
		o.key(k)
		o.b = append(o.b, '"')
		o.b = base64.StdEncoding.AppendEncode(o.b, v)
		o.b = append(o.b, '"')
	}
}

func (o *obj) attrs(k string, m pcommon.Map) {
	if m.Len() == 0 {
		return
	}
	o.key(k)
	o.b = appendKeyValues(o.b, m)
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

func appendKeyValues(b []byte, m pcommon.Map) []byte {
	b = append(b, '[')
	n := 0
	m.Range(func(k string, v pcommon.Value) bool {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"key":`...)
		b = appendString(b, k)
		b = append(b, `,"value":`...)
		b = appendAnyValue(b, v)
		b = append(b, '}')
		return true
	})
	return append(b, ']')
}

func appendAnyValue(b []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		b = append(b, `{"stringValue":`...)
		b = appendString(b, v.Str())
	case pcommon.ValueTypeInt:
		b = append(b, `{"intValue":"`...)
		b = strconv.AppendInt(b, v.Int(), 10)
		b = append(b, '"')
	case pcommon.ValueTypeDouble:
		b = append(b, `{"doubleValue":`...)
		b = appendFloat(b, v.Double())
	case pcommon.ValueTypeBool:
		b = append(b, `{"boolValue":`...)
		b = strconv.AppendBool(b, v.Bool())
	case pcommon.ValueTypeBytes:
		b = append(b, `{"bytesValue":"`...)
		b = base64.StdEncoding.AppendEncode(b, v.Bytes().AsRaw())
		b = append(b, '"')
	case pcommon.ValueTypeSlice:
		b = append(b, `{"arrayValue":{"values":[`...)
		s := v.Slice()
		for i := 0; i < s.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAnyValue(b, s.At(i))
		}
		b = append(b, "]}"...)
	case pcommon.ValueTypeMap:
		b = append(b, `{"kvlistValue":{"values":`...)
		b = appendKeyValues(b, v.Map())
		b = append(b, '}')
	default:
		return append(b, "{}"...)
	}
	return append(b, '}')
}

// appendFloat follows the protobuf JSON mapping: NaN and infinities are strings.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

var spanKindNames = map[ptrace.SpanKind]string{
	ptrace.SpanKindInternal: "SPAN_KIND_INTERNAL",
	ptrace.SpanKindServer:   "SPAN_KIND_SERVER",
	ptrace.SpanKindClient:   "SPAN_KIND_CLIENT",
	ptrace.SpanKindProducer: "SPAN_KIND_PRODUCER",
	ptrace.SpanKindConsumer: "SPAN_KIND_CONSUMER",
}

var statusCodeNames = map[ptrace.StatusCode]string{
	ptrace.StatusCodeOk:    "STATUS_CODE_OK",
	ptrace.StatusCodeError: "STATUS_CODE_ERROR",
}

func appendResourceSpans(b []byte, rs ptrace.ResourceSpans) []byte {
	o := obj{b: append(b, '{'), first: true}
	res := rs.Resource()
	o.key("resource")
	ro := obj{b: append(o.b, '{'), first: true}
	ro.attrs("attributes", res.Attributes())
	ro.u32("droppedAttributesCount", res.DroppedAttributesCount())
	o.b = append(ro.b, '}')
	o.key("scopeSpans")
	o.b = append(o.b, '[')
	sss := rs.ScopeSpans()
	for i := 0; i < sss.Len(); i++ {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendScopeSpans(o.b, sss.At(i))
	}
	o.b = append(o.b, ']')
	o.str("schemaUrl", rs.SchemaUrl())
	return append(o.b, '}')
}

func appendScopeSpans(b []byte, ss ptrace.ScopeSpans) []byte {
	o := obj{b: append(b, '{'), first: true}
	sc := ss.Scope()
	o.key("scope")
	so := obj{b: append(o.b, '{'), first: true}
	so.str("name", sc.Name())
	so.str("version", sc.Version())
	so.attrs("attributes", sc.Attributes())
	so.u32("droppedAttributesCount", sc.DroppedAttributesCount())
	o.b = append(so.b, '}')
	o.key("spans")
	o.b = append(o.b, '[')
	spans := ss.Spans()
	for i := 0; i < spans.Len(); i++ {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendSpan(o.b, spans.At(i))
	}
	o.b = append(o.b, ']')
	o.str("schemaUrl", ss.SchemaUrl())
	return append(o.b, '}')
}

func appendSpan(b []byte, s ptrace.Span) []byte {
	o := obj{b: append(b, '{'), first: true}
	tid, sid, pid := s.TraceID(), s.SpanID(), s.ParentSpanID()
	o.id("traceId", tid[:], tid.IsEmpty())
	o.id("spanId", sid[:], sid.IsEmpty())
	o.str("traceState", s.TraceState().AsRaw())
	o.id("parentSpanId", pid[:], pid.IsEmpty())
	o.u32("flags", s.Flags())
	o.str("name", s.Name())
	if k, ok := spanKindNames[s.Kind()]; ok {
		o.key("kind")
		o.b = appendString(o.b, k)
	}
	o.u64("startTimeUnixNano", uint64(s.StartTimestamp()))
	o.u64("endTimeUnixNano", uint64(s.EndTimestamp()))
	o.attrs("attributes", s.Attributes())
	o.u32("droppedAttributesCount", s.DroppedAttributesCount())
	if evs := s.Events(); evs.Len() > 0 {
		o.key("events")
		o.b = append(o.b, '[')
		for i := 0; i < evs.Len(); i++ {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			ev := evs.At(i)
			eo := obj{b: append(o.b, '{'), first: true}
			eo.u64("timeUnixNano", uint64(ev.Timestamp()))
			eo.str("name", ev.Name())
			eo.attrs("attributes", ev.Attributes())
			eo.u32("droppedAttributesCount", ev.DroppedAttributesCount())
			o.b = append(eo.b, '}')
		}
		o.b = append(o.b, ']')
	}
	o.u32("droppedEventsCount", s.DroppedEventsCount())
	if ls := s.Links(); ls.Len() > 0 {
		o.key("links")
		o.b = append(o.b, '[')
		for i := 0; i < ls.Len(); i++ {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			l := ls.At(i)
			lt, lsid := l.TraceID(), l.SpanID()
			lo := obj{b: append(o.b, '{'), first: true}
			lo.id("traceId", lt[:], lt.IsEmpty())
			lo.id("spanId", lsid[:], lsid.IsEmpty())
			lo.str("traceState", l.TraceState().AsRaw())
			lo.attrs("attributes", l.Attributes())
			lo.u32("droppedAttributesCount", l.DroppedAttributesCount())
			lo.u32("flags", l.Flags())
			o.b = append(lo.b, '}')
		}
		o.b = append(o.b, ']')
	}
	o.u32("droppedLinksCount", s.DroppedLinksCount())
	o.key("status")
	st := obj{b: append(o.b, '{'), first: true}
	st.str("message", s.Status().Message())
	if c, ok := statusCodeNames[s.Status().Code()]; ok {
		st.key("code")
		st.b = appendString(st.b, c)
	}
	o.b = append(st.b, '}')
	return append(o.b, '}')
}
