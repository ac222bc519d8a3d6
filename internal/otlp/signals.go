package otlp

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// The three export paths below are shared by gRPC and HTTP: size is the
// request's protobuf size, used for the memory estimate.

func (r *Receiver) exportTraces(ctx context.Context, req ptraceotlp.ExportRequest, size int64, transport string) (ptraceotlp.ExportResponse, *exportError) {
	resp := ptraceotlp.NewExportResponse()
	td := req.Traces()
	invalid := dropSpansWithInvalidIDs(td)
	if invalid > 0 {
		r.metrics.rejectedItems.WithLabelValues(SignalTraces, "invalid_id").Add(float64(invalid))
		ctx = withRawTraces(ctx, ptrace.Traces{}, nil) // td no longer matches the request's bytes
	}
	items := int64(td.SpanCount())
	var rejected int64
	var reasons []string
	if items > 0 {
		n, why, e := r.export(ctx, SignalTraces, transport, items, size*decodedOverhead, func(ctx context.Context) error {
			return r.deps.Traces.ConsumeTraces(ctx, td)
		})
		if e != nil {
			return resp, e
		}
		rejected, reasons = n, appendReason(reasons, why)
	}
	if invalid > 0 {
		reasons = appendReason(reasons, pluralCount(invalid, "span")+" with an all-zero trace_id or span_id")
	}
	r.succeed(SignalTraces, transport, items-rejected, rejected+invalid)
	if rejected+invalid > 0 {
		resp.PartialSuccess().SetRejectedSpans(rejected + invalid)
		resp.PartialSuccess().SetErrorMessage(strings.Join(reasons, "; "))
	}
	return resp, nil
}

// exportRawTraces is exportTraces for a request parseRawTraces accepted
// (no span with an invalid ID: the walk refuses those), without pdata
// unless a consumer asks for it (ADR 0118).
func (r *Receiver) exportRawTraces(ctx context.Context, c RawTracesConsumer, req *RawTracesRequest, size int64, transport string) (ptraceotlp.ExportResponse, *exportError) {
	r.metrics.rawTraces.WithLabelValues(transport).Inc()
	resp := ptraceotlp.NewExportResponse()
	items := int64(req.SpanCount())
	var rejected int64
	var why string
	if items > 0 {
		n, reason, e := r.export(ctx, SignalTraces, transport, items, size*decodedOverhead, func(ctx context.Context) error {
			return c.ConsumeRawTraces(ctx, req)
		})
		if e != nil {
			return resp, e
		}
		rejected, why = n, reason
	}
	r.succeed(SignalTraces, transport, items-rejected, rejected)
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(rejected)
		resp.PartialSuccess().SetErrorMessage(strings.Join(appendReason(nil, why), "; "))
	}
	return resp, nil
}

var rawRequests = sync.Pool{New: func() any { return new(RawTracesRequest) }}

// putRawRequest drops the request's references into the body and pdata.
func putRawRequest(req *RawTracesRequest) {
	clear(req.spans)
	clear(req.attrs)
	for i := range req.scratch {
		clear(req.scratch[i][:cap(req.scratch[i])])
	}
	*req = RawTracesRequest{spans: req.spans[:0], resources: req.resources[:0], attrs: req.attrs[:0], scratch: req.scratch}
	rawRequests.Put(req)
}

func (r *Receiver) exportLogs(ctx context.Context, req plogotlp.ExportRequest, size int64, transport string) (plogotlp.ExportResponse, *exportError) {
	resp := plogotlp.NewExportResponse()
	ld := req.Logs()
	items := int64(ld.LogRecordCount())
	if items == 0 {
		r.succeed(SignalLogs, transport, 0, 0)
		return resp, nil
	}
	rejected, why, e := r.export(ctx, SignalLogs, transport, items, size*decodedOverhead, func(ctx context.Context) error {
		return r.deps.Logs.ConsumeLogs(ctx, ld)
	})
	if e != nil {
		return resp, e
	}
	r.succeed(SignalLogs, transport, items-rejected, rejected)
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedLogRecords(rejected)
		resp.PartialSuccess().SetErrorMessage(why)
	}
	return resp, nil
}

func (r *Receiver) exportMetrics(ctx context.Context, req pmetricotlp.ExportRequest, size int64, transport string) (pmetricotlp.ExportResponse, *exportError) {
	resp := pmetricotlp.NewExportResponse()
	md := req.Metrics()
	items := int64(md.DataPointCount())
	if md.MetricCount() == 0 {
		r.succeed(SignalMetrics, transport, 0, 0)
		return resp, nil
	}
	rejected, why, e := r.export(ctx, SignalMetrics, transport, items, size*decodedOverhead, func(ctx context.Context) error {
		return r.deps.Metrics.ConsumeMetrics(ctx, md)
	})
	if e != nil {
		return resp, e
	}
	r.succeed(SignalMetrics, transport, items-rejected, rejected)
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedDataPoints(rejected)
		resp.PartialSuccess().SetErrorMessage(why)
	}
	return resp, nil
}

// dropSpansWithInvalidIDs removes spans no store could index: the OTLP
// spec forbids all-zero trace and span IDs. It returns how many it removed.
func dropSpansWithInvalidIDs(td ptrace.Traces) int64 {
	var dropped int64
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			sss.At(j).Spans().RemoveIf(func(s ptrace.Span) bool {
				if s.TraceID().IsEmpty() || s.SpanID().IsEmpty() {
					dropped++
					return true
				}
				return false
			})
		}
	}
	return dropped
}

func logsSize(ld plog.Logs) int64 {
	var m plog.ProtoMarshaler
	return int64(m.LogsSize(ld))
}

func metricsSize(md pmetric.Metrics) int64 {
	var m pmetric.ProtoMarshaler
	return int64(m.MetricsSize(md))
}

func appendReason(reasons []string, why string) []string {
	if why == "" {
		return reasons
	}
	return append(reasons, why)
}

func pluralCount(n int64, noun string) string {
	s := strconv.FormatInt(n, 10) + " " + noun
	if n != 1 {
		s += "s"
	}
	return s
}
