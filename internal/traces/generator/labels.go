package generator

import (
	"strconv"
	"strings"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
)

// spanKindLabel spells a kind as Tempo labels it: the OTLP enum name.
func spanKindLabel(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindInternal:
		return "SPAN_KIND_INTERNAL"
	case ptrace.SpanKindServer:
		return "SPAN_KIND_SERVER"
	case ptrace.SpanKindClient:
		return "SPAN_KIND_CLIENT"
	case ptrace.SpanKindProducer:
		return "SPAN_KIND_PRODUCER"
	case ptrace.SpanKindConsumer:
		return "SPAN_KIND_CONSUMER"
	}
	return "SPAN_KIND_UNSPECIFIED"
}

// statusCodeLabel spells a status as Tempo labels it: the OTLP enum name.
func statusCodeLabel(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "STATUS_CODE_OK"
	case ptrace.StatusCodeError:
		return "STATUS_CODE_ERROR"
	}
	return "STATUS_CODE_UNSET"
}

func serviceName(res pcommon.Map) string {
	if v, ok := res.Get("service.name"); ok {
		return v.AsString()
	}
	return ""
}

// lookupAttribute looks name up on the span first, then on its resource.
func lookupAttribute(span, res pcommon.Map, name string) string {
	if v, ok := span.Get(name); ok {
		return v.AsString()
	}
	if v, ok := res.Get(name); ok {
		return v.AsString()
	}
	return ""
}

func durationSeconds(s ptrace.Span) float64 {
	start, end := s.StartTimestamp(), s.EndTimestamp()
	if end <= start {
		return 0
	}
	return float64(end-start) / 1e9
}

// sanitizeLabelName makes an attribute name a Prometheus label name the
// way Tempo does: every character outside [a-zA-Z0-9_] becomes '_', and a
// leading digit gets a '_' in front.
func sanitizeLabelName(name string) string {
	var b strings.Builder
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// dimensionLabels names the labels of configured dimensions; one that
// collides with an intrinsic label is prefixed "__", as Tempo documents.
func dimensionLabels(dims, taken []string) []string {
	used := map[string]bool{}
	for _, t := range taken {
		used[t] = true
	}
	out := make([]string, 0, len(dims))
	for _, d := range dims {
		n := sanitizeLabelName(d)
		if used[n] {
			n = "__" + n
		}
		used[n] = true
		out = append(out, n)
	}
	return out
}

// spanView is what the processors read of one span, from pdata or from a
// raw request (ADR 0118). name and statusMsg of a raw span borrow the
// request's bytes: they only key series lookups, which copy what they keep.
type spanView struct {
	traceID          pcommon.TraceID
	spanID, parentID pcommon.SpanID
	kind             ptrace.SpanKind
	status           ptrace.StatusCode
	name, statusMsg  string
	start, end       uint64

	pdata    ptrace.Span
	res      pcommon.Map
	raw      *otlp.RawSpan
	rawAttrs []otlp.RawAttr
	rawRes   []otlp.RawAttr
	fromWire bool
}

func (v *spanView) fromPdata(s ptrace.Span, res pcommon.Map) {
	*v = spanView{
		traceID: s.TraceID(), spanID: s.SpanID(), parentID: s.ParentSpanID(),
		kind: s.Kind(), status: s.Status().Code(), name: s.Name(), statusMsg: s.Status().Message(),
		start: uint64(s.StartTimestamp()), end: uint64(s.EndTimestamp()),
		pdata: s, res: res,
	}
}

func (v *spanView) fromRaw(s *otlp.RawSpan, attrs, res []otlp.RawAttr) {
	*v = spanView{
		traceID: s.TraceID, spanID: s.SpanID, parentID: s.ParentSpanID,
		kind: s.Kind, status: s.StatusCode, name: borrow(s.Name), statusMsg: borrow(s.StatusMsg),
		start: s.Start, end: s.End,
		raw: s, rawAttrs: attrs, rawRes: res, fromWire: true,
	}
}

// borrow is b as a string without a copy; see spanView.
func borrow(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (v *spanView) seconds() float64 {
	if v.end <= v.start {
		return 0
	}
	return float64(v.end-v.start) / 1e9
}

func (v *spanView) size(m *ptrace.ProtoMarshaler) int {
	if v.fromWire {
		return v.raw.Size
	}
	return m.SpanSize(v.pdata)
}

// lookup is lookupAttribute: the span's attribute, else the resource's.
func (v *spanView) lookup(name string) string {
	if !v.fromWire {
		return lookupAttribute(v.pdata.Attributes(), v.res, name)
	}
	if s, ok := rawAttr(v.rawAttrs, name); ok {
		return s
	}
	return rawLookup(v.rawRes, name)
}

func (v *spanView) hasSpanAttr(name string) bool {
	if !v.fromWire {
		_, ok := v.pdata.Attributes().Get(name)
		return ok
	}
	_, ok := rawAttr(v.rawAttrs, name)
	return ok
}

// rawLookup is the string form of attribute name, "" when absent.
func rawLookup(attrs []otlp.RawAttr, name string) string {
	s, _ := rawAttr(attrs, name)
	return s
}

// rawAttr finds the first attribute name, as pdata's Map.Get does, and
// gives its AsString (lists and maps never come here: ConsumeRawTraces
// sends requests with them through pdata).
func rawAttr(attrs []otlp.RawAttr, name string) (string, bool) {
	for i := range attrs {
		if string(attrs[i].Key) != name {
			continue
		}
		v := &attrs[i].Value
		switch v.Type {
		case pcommon.ValueTypeStr:
			return string(v.Str), true
		case pcommon.ValueTypeInt:
			return strconv.FormatInt(v.Int, 10), true
		case pcommon.ValueTypeBool:
			return strconv.FormatBool(v.Bool), true
		case pcommon.ValueTypeDouble:
			return pcommon.NewValueDouble(v.Double).AsString(), true
		case pcommon.ValueTypeBytes:
			pv := pcommon.NewValueBytes()
			pv.Bytes().FromRaw(v.Str)
			return pv.AsString(), true
		}
		return "", true
	}
	return "", false
}
