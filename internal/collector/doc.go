// Package collector is the `nxwatcher collector` role: an OpenTelemetry
// Collector distribution built from the Collector's own packages (otelcol,
// service, the otlp receiver, batch/memory_limiter/resource processors,
// otlp_grpc/otlphttp/debug exporters, the health_check extension), as the
// Collector's builder would generate it, plus one confmap converter that keeps
// configs written for Collector 0.118 loadable: the removed
// `service.telemetry.metrics.address` becomes a pull-Prometheus reader on the
// same host:port (see telemetryAddressConverter).
//
// It registers no routes on serve's listener: it is a separate process role
// that serves OTLP on its own receivers and its telemetry on its own address.
// See docs/collector.md and docs/adr/0060-collector-distribution.md.
package collector
