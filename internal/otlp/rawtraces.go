package otlp

import (
	"context"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

type rawTracesKey struct{}

type rawTraces struct {
	td   ptrace.Traces
	body []byte
}

// withRawTraces gives the consumers of td the protobuf request it was
// decoded from (OTLP/HTTP protobuf only).
func withRawTraces(ctx context.Context, td ptrace.Traces, body []byte) context.Context {
	return context.WithValue(ctx, rawTracesKey{}, rawTraces{td: td, body: body})
}

// RawTraces returns the OTLP protobuf request that td was decoded from,
// when the receiver got one: an ExportTraceServiceRequest, whose encoding
// is also a TracesData. It answers only for the very td the receiver
// decoded (a consumer that builds a new Traces, such as a per-tenant split,
// gets false), and consumers before the caller must not have changed td in
// place. The bytes belong to the receiver's pooled buffer: valid only
// until ConsumeTraces returns, never to be modified or kept (ADR 0112).
func RawTraces(ctx context.Context, td ptrace.Traces) ([]byte, bool) {
	r, ok := ctx.Value(rawTracesKey{}).(rawTraces)
	if !ok || r.td != td {
		return nil, false
	}
	return r.body, true
}
