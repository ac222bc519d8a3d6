package collector

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// The design doc's config with logs and metrics pipelines added by a second
// --config (maps merge, as upstream merges config sources).
const extraPipelines = `service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [memory_limiter, batch, resource]
      exporters: [otlp/tempo]
    metrics:
      receivers: [otlp]
      processors: [memory_limiter, batch, resource]
      exporters: [otlp/tempo]
`

// TestLogsAndMetricsPipelinesToServe: OTel SDK logs and metrics (gRPC) →
// collector (design doc config + logs/metrics pipelines) → serve; the
// records are found through the Loki and Prometheus APIs with
// cluster=bana-production.
func TestLogsAndMetricsPipelinesToServe(t *testing.T) {
	serveURL, serveGRPC := startServe(t)
	col := startCollector(t, []string{designDocConfig, writeFile(t, extraPipelines)},
		"exporters.otlp/tempo.endpoint="+serveGRPC,
		"processors.batch.timeout=200ms",
	)

	logExp, err := otlploggrpc.New(t.Context(), otlploggrpc.WithEndpoint(col.grpc), otlploggrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(logExp)),
		sdklog.WithResource(resource.NewSchemaless(semconv.ServiceName("checkout-logs"))))
	logger := lp.Logger("collector-e2e")
	now := time.Now()
	const records = 10
	for i := range records {
		var r otellog.Record
		r.SetTimestamp(now)
		r.SetBody(attribute.StringValue(fmt.Sprintf("order %d failed", i)))
		logger.Emit(t.Context(), r)
	}
	if err := lp.Shutdown(t.Context()); err != nil {
		t.Fatalf("log export: %v", err)
	}

	metricExp, err := otlpmetricgrpc.New(t.Context(), otlpmetricgrpc.WithEndpoint(col.grpc), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExp)),
		sdkmetric.WithResource(resource.NewSchemaless(semconv.ServiceName("checkout-metrics"))))
	c, err := mp.Meter("collector-e2e").Int64Counter("orders")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), 7, metric.WithAttributes(attribute.String("shop", "a")))
	if err := mp.Shutdown(t.Context()); err != nil {
		t.Fatalf("metric export: %v", err)
	}

	logQuery := serveURL + "/loki/api/v1/query_range?query=" + url.QueryEscape(`{service_name="checkout-logs"} | cluster="bana-production"`) +
		fmt.Sprintf("&start=%d&end=%d&limit=100", now.Add(-time.Minute).UnixNano(), now.Add(time.Minute).UnixNano())
	var lines int
	waitFor(t, 30*time.Second, "logs in serve", func() bool {
		code, body := httpGet(logQuery)
		if code != http.StatusOK {
			return false
		}
		var r struct {
			Data struct {
				Result []struct {
					Values [][2]string `json:"values"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(body), &r) != nil {
			return false
		}
		lines = 0
		for _, s := range r.Data.Result {
			lines += len(s.Values)
		}
		return lines == records
	})

	for _, q := range []string{
		`target_info{job="checkout-metrics",cluster="bana-production"}`,
		`{__name__=~"orders.*",job="checkout-metrics",shop="a"}`,
	} {
		waitFor(t, 30*time.Second, q+" in serve", func() bool {
			code, body := httpGet(serveURL + "/api/v1/query?query=" + url.QueryEscape(q))
			return code == http.StatusOK && strings.Contains(body, `"result":[{`)
		})
	}
}
