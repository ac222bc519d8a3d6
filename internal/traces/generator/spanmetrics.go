package generator

import (
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// spanMetrics is Tempo's span-metrics processor: calls, latency and size
// per unique combination of intrinsic dimensions and configured attributes.
type spanMetrics struct {
	intrinsic IntrinsicDimensions
	dims      []string // attribute names, looked up on the span, then the resource
	calls     *family
	latency   *family
	size      *family
	values    []string // scratch, guarded by the registry lock
	sizer     ptrace.ProtoMarshaler
}

func newSpanMetrics(cfg SpanMetricsConfig, reg *registry) *spanMetrics {
	var names []string
	in := cfg.IntrinsicDimensions
	for _, d := range []struct {
		on   bool
		name string
	}{
		{in.Service, "service"}, {in.SpanName, "span_name"}, {in.SpanKind, "span_kind"},
		{in.StatusCode, "status_code"}, {in.StatusMessage, "status_message"},
	} {
		if d.on {
			names = append(names, d.name)
		}
	}
	names = append(names, dimensionLabels(cfg.Dimensions, names)...)
	return &spanMetrics{
		intrinsic: in,
		dims:      cfg.Dimensions,
		calls:     reg.counter("traces_spanmetrics_calls_total", names...),
		latency:   reg.histogram("traces_spanmetrics_latency", cfg.HistogramBuckets, names...),
		size:      reg.counter("traces_spanmetrics_size_total", names...),
		values:    make([]string, 0, len(names)),
	}
}

func (m *spanMetrics) record(span *spanView, svc string, now time.Time) {
	v := m.values[:0]
	if m.intrinsic.Service {
		v = append(v, svc)
	}
	if m.intrinsic.SpanName {
		v = append(v, span.name)
	}
	if m.intrinsic.SpanKind {
		v = append(v, spanKindLabel(span.kind))
	}
	if m.intrinsic.StatusCode {
		v = append(v, statusCodeLabel(span.status))
	}
	if m.intrinsic.StatusMessage {
		v = append(v, span.statusMsg)
	}
	for _, d := range m.dims {
		v = append(v, span.lookup(d))
	}
	m.values = v
	m.calls.inc(v, 1, now)
	m.latency.observe(v, span.seconds(), now)
	m.size.inc(v, float64(span.size(&m.sizer)), now)
}
