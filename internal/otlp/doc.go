// Package otlp receives OpenTelemetry data (traces, logs, metrics) over
// OTLP/gRPC and OTLP/HTTP and hands it, decoded as collector pdata, to one
// consumer per signal.
//
// Build with New(cfg, Deps{Traces, Logs, Metrics, Logger, Registerer}); a nil
// consumer makes its signal answer 501 / Unimplemented. The package owns no
// listener:
//
//	gRPC (default :4317):  srv := grpc.NewServer(r.GRPCServerOptions()...); r.RegisterGRPC(srv)
//	                       or r.NewGRPCServer(), or r.RunGRPC(ctx, listener)
//	HTTP (default :4318):  r.Routes(), r.Handler(), or r.RunHTTP(ctx, listener)
//
// Routes (the whole OTLP/HTTP surface):
//
//	POST /v1/traces   (*Receiver).HandleTraces
//	POST /v1/logs     (*Receiver).HandleLogs
//	POST /v1/metrics  (*Receiver).HandleMetrics
//
// Bodies are application/x-protobuf or application/json, optionally gzip.
// Answers follow the OTLP specification: 200 with partial_success when some
// items were rejected; 400 malformed or invalid input (a consumer error
// wrapping ErrInvalidInput); 405; 413 over max_request_bytes; 415 media type
// or encoding; 429 + Retry-After when the memory limit is reached or the
// traces consumer reports itself full for the tenant (Deps.TracesFull, ADR 0037); 501 no
// consumer; 503 + Retry-After when the consumer failed otherwise. gRPC uses
// InvalidArgument, Unimplemented and Unavailable with RetryInfo likewise.
// Every refusal is counted in nxwatcher_otlp_refused_requests_total{signal,
// transport, reason}. See docs/adr/0030.
//
// Tenancy (ADR 0034): with Deps.TracesTenancy or Deps.LogsTenancy, that
// signal's requests must carry X-Scope-OrgID (HTTP) or x-scope-orgid (gRPC
// metadata): 401 / Unauthenticated "no org id" without, 400 /
// InvalidArgument for an invalid ID. Consumers find the tenant with
// tenancy.FromContext ("fake" when the signal's tenancy is off);
// TracesByTenant routes spans to per-tenant trace stores.
//
// Raw traces (ADRs 0118, 0119): a protobuf trace request over HTTP or gRPC
// reaches a RawTracesConsumer as its own bytes, walked once, without a pdata
// decode, when the walk accepts it; everything else is decoded as before.
// Over gRPC this needs GRPCServerOptions' codec to save a copy, not to work.
//
// TracesFanout sends spans to the trace store and then to best-effort
// followers (the metrics-generator); TracesInvalidOn and friends map a
// consumer's own sentinel errors to ErrInvalidInput. Subpackage promsink is
// the metrics consumer writing into Prometheus storage.
package otlp
