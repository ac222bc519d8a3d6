package generator

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
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
