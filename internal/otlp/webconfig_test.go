package otlp

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/credentials"

	"github.com/nx-watcher/nxwatcher/internal/testcert"
)

// Both OTLP listeners take --web.config.file as the HTTP listener does:
// the OTel SDK's exporters with the right CA and credentials get through,
// without credentials or with a CA that did not sign the certificate
// they are refused, and nothing refused reaches the consumer.
func TestWebConfigSecuresOTLPWithRealSDK(t *testing.T) {
	dir := t.TempDir()
	pool, certFile, keyFile := testcert.Pair(t, dir, "good")
	otherPool, _, _ := testcert.Pair(t, dir, "other")
	webFile := filepath.Join(dir, "web.yml")
	testcert.WebConfig(t, webFile, certFile, keyFile, "otel", "s3cret")
	rec := &recorder{}
	srv := startServerWebConfig(t, testConfig(), Deps{Traces: rec}, webFile)
	auth := map[string]string{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("otel:s3cret"))}
	wrong := map[string]string{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("otel:nope"))}

	grpcExp := func(p *x509.CertPool, headers map[string]string) sdktrace.SpanExporter {
		exp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(srv.grpcAddr),
			otlptracegrpc.WithTLSCredentials(credentials.NewTLS(&tls.Config{RootCAs: p})),
			otlptracegrpc.WithHeaders(headers), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}
	httpExp := func(p *x509.CertPool, headers map[string]string) sdktrace.SpanExporter {
		exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpoint(srv.httpAddr),
			otlptracehttp.WithTLSClientConfig(&tls.Config{RootCAs: p}),
			otlptracehttp.WithHeaders(headers), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}
	spans := emitTraces(t, tracetest.NewInMemoryExporter()).Snapshots()
	export := func(exp sdktrace.SpanExporter) error {
		defer exp.Shutdown(t.Context())
		return exp.ExportSpans(t.Context(), spans)
	}
	for _, tc := range []struct {
		name string
		exp  func(*x509.CertPool, map[string]string) sdktrace.SpanExporter
	}{{"grpc", grpcExp}, {"http", httpExp}} {
		before := len(rec.spans())
		if err := export(tc.exp(pool, nil)); err == nil {
			t.Errorf("%s without credentials: accepted", tc.name)
		}
		if err := export(tc.exp(pool, wrong)); err == nil {
			t.Errorf("%s with a wrong password: accepted", tc.name)
		}
		if err := export(tc.exp(otherPool, auth)); err == nil {
			t.Errorf("%s with a CA that did not sign the certificate: accepted", tc.name)
		}
		if got := len(rec.spans()) - before; got != 0 {
			t.Fatalf("%s: %d spans reached the store from refused exports", tc.name, got)
		}
		if err := export(tc.exp(pool, auth)); err != nil {
			t.Errorf("%s with the right CA and credentials: %v", tc.name, err)
		}
	}
	if got := len(rec.spans()); got != 2*len(spans) {
		t.Errorf("store has %d spans, want %d (one good export per transport)", got, 2*len(spans))
	}
}

// A web config with users but no TLS still demands credentials on gRPC.
func TestWebConfigBasicAuthWithoutTLS(t *testing.T) {
	dir := t.TempDir()
	webFile := filepath.Join(dir, "web.yml")
	testcert.WebConfig(t, webFile, "", "", "otel", "s3cret")
	rec := &recorder{}
	srv := startServerWebConfig(t, testConfig(), Deps{Traces: rec}, webFile)
	spans := emitTraces(t, tracetest.NewInMemoryExporter()).Snapshots()
	for _, headers := range []map[string]string{nil, {"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("otel:s3cret"))}} {
		exp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(srv.grpcAddr), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithHeaders(headers), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		err = exp.ExportSpans(t.Context(), spans)
		_ = exp.Shutdown(t.Context())
		if (err == nil) != (headers != nil) {
			t.Errorf("headers %v: export error %v", headers, err)
		}
	}
	if got := len(rec.spans()); got != len(spans) {
		t.Errorf("store has %d spans, want %d", got, len(spans))
	}
}
