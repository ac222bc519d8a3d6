package app

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nx-watcher/nxwatcher/internal/config"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// TestTracesThroughServe sends spans with the OTel SDK to serve's OTLP gRPC
// port and reads them back through the Tempo API, and the generator's span
// metrics through PromQL.
func TestTracesThroughServe(t *testing.T) {
	ts := startServer(t, "traces:\n  generator:\n    collection_interval: 1s\nmetrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n")
	grpcAddr, _ := ts.app.OTLPAddrs()
	exp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(grpcAddr.String()), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("checkout"))))
	tracer := tp.Tracer("test")
	ctx, root := tracer.Start(t.Context(), "GET /cart", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tracer.Start(ctx, "SELECT cart", trace.WithAttributes(attribute.String("db.system", "postgresql")))
	child.End()
	root.End()
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatalf("export: %v", err)
	}
	traceID := root.SpanContext().TraceID()

	code, body := ts.get(t, "/api/traces/"+hex.EncodeToString(traceID[:]))
	if code != http.StatusOK {
		t.Fatalf("trace by id = %d %s", code, body)
	}
	var got struct {
		Batches []struct {
			ScopeSpans []struct {
				Spans []struct {
					Name string `json:"name"`
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"batches"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range got.Batches {
		for _, ss := range b.ScopeSpans {
			for _, s := range ss.Spans {
				names = append(names, s.Name)
			}
		}
	}
	if strings.Join(names, ",") != "GET /cart,SELECT cart" && strings.Join(names, ",") != "SELECT cart,GET /cart" {
		t.Fatalf("spans = %v, want the two sent", names)
	}
	code, body = ts.get(t, `/api/search?q=`+urlQuery(`{ resource.service.name = "checkout" && kind = server }`))
	// Tempo writes search results' trace IDs without leading zeros.
	if code != http.StatusOK || !strings.Contains(body, `"traceID":"`+strings.TrimLeft(hex.EncodeToString(traceID[:]), "0")+`"`) {
		t.Fatalf("search = %d %s", code, body)
	}
	papi := ts.promAPI(t)
	waitFor(t, 15*time.Second, "span metrics in PromQL", func() bool {
		return seriesCountNoFail(papi, `traces_spanmetrics_calls_total{service="checkout",span_name="GET /cart",source="tempo"}`) == 1
	})
}

func urlQuery(s string) string {
	r := strings.NewReplacer(" ", "%20", "{", "%7B", "}", "%7D", "\"", "%22", "&", "%26", "=", "%3D")
	return r.Replace(s)
}

// TestAlertRuleReachesWebhookThroughServe: a rule of the prometheus section
// fires, the embedded Alertmanager routes it to a webhook, and the APIs of
// both Prometheus and Alertmanager show it.
func TestAlertRuleReachesWebhookThroughServe(t *testing.T) {
	var mu sync.Mutex
	var received []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		received = append(received, string(b))
		mu.Unlock()
	}))
	defer hook.Close()

	rules := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: test
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: critical}
        annotations: {summary: "it fires"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, fmt.Sprintf(`alerting:
  alertmanager:
    route: {receiver: hook, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
    receivers:
      - name: hook
        webhook_configs: [{url: '%s'}]
metrics:
  prometheus:
    global: {scrape_interval: 1h, evaluation_interval: 1s}
    rule_files: ['%s']
`, hook.URL, rules))

	waitFor(t, 20*time.Second, "webhook notification", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) > 0
	})
	mu.Lock()
	first := received[0]
	mu.Unlock()
	for _, want := range []string{`"alertname":"AlwaysFiring"`, `"summary":"it fires"`, `"status":"firing"`} {
		if !strings.Contains(first, want) {
			t.Errorf("webhook payload lacks %s:\n%s", want, first)
		}
	}
	for path, want := range map[string]string{
		"/api/v1/rules":         `"name":"AlwaysFiring"`,
		"/api/v1/alerts":        `"alertname":"AlwaysFiring"`,
		"/api/v1/alertmanagers": `/api/v2/alerts`,
		"/api/v2/alerts":        `"alertname":"AlwaysFiring"`,
		"/api/v2/status":        `"cluster"`,
	} {
		code, body := ts.get(t, path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s = %d, want it to contain %s:\n%s", path, code, want, body)
		}
	}
}

// TestLogsThroughServe pushes with Loki's JSON push API and with the OTel
// SDK's OTLP log exporter, and reads both back through Loki's query API.
func TestLogsThroughServe(t *testing.T) {
	ts := startServer(t, "metrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n")
	now := time.Now()
	push := fmt.Sprintf(`{"streams":[{"stream":{"app":"checkout","env":"prod"},"values":[["%d","order 42 failed: card declined"],["%d","order 43 ok"]]}]}`,
		now.Add(-2*time.Second).UnixNano(), now.Add(-time.Second).UnixNano())
	if code, body := ts.post(t, "/loki/api/v1/push", "application/json", strings.NewReader(push), nil); code != http.StatusNoContent {
		t.Fatalf("push = %d %s", code, body)
	}
	q := "/loki/api/v1/query_range?query=" + urlQuery(`{app="checkout"} |= "failed"`) + fmt.Sprintf("&start=%d&end=%d", now.Add(-time.Minute).UnixNano(), now.Add(time.Minute).UnixNano())
	code, body := ts.get(t, q)
	if code != http.StatusOK || !strings.Contains(body, "card declined") || strings.Contains(body, "order 43") || !strings.Contains(body, `"resultType":"streams"`) {
		t.Fatalf("query_range = %d %s", code, body)
	}

	_, httpAddr := ts.app.OTLPAddrs()
	otlpBody := fmt.Sprintf(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}}]},
	  "scopeLogs":[{"logRecords":[{"timeUnixNano":"%d","body":{"stringValue":"invoice sent"},"severityText":"INFO"}]}]}]}`, now.UnixNano())
	resp, err := http.Post("http://"+httpAddr.String()+"/v1/logs", "application/json", strings.NewReader(otlpBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP logs = %d", resp.StatusCode)
	}
	q = "/loki/api/v1/query_range?query=" + urlQuery(`{service_name="billing"}`) + fmt.Sprintf("&start=%d&end=%d", now.Add(-time.Minute).UnixNano(), now.Add(time.Minute).UnixNano())
	code, body = ts.get(t, q)
	if code != http.StatusOK || !strings.Contains(body, "invoice sent") {
		t.Fatalf("OTLP log not queryable: %d %s", code, body)
	}
	code, body = ts.get(t, "/loki/api/v1/labels")
	if code != http.StatusOK || !strings.Contains(body, "service_name") || !strings.Contains(body, "app") {
		t.Fatalf("labels = %d %s", code, body)
	}
}

// OTLP metric points older than the retention in force are refused before
// translation (ADR 0106): the bound follows the retention time in force, the
// out-of-order window when longer, and is promsink's default under a
// size-only retention.
func TestOTLPMetricsMaxAgeFollowsRetention(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		name, yaml string
		want       time.Duration
	}{
		{"default", "", 30 * day},
		{"metrics.retention", "metrics:\n  retention: 90d\n", 90 * day},
		{"prometheus body wins", "metrics:\n  retention: 90d\n  prometheus:\n    storage:\n      tsdb:\n        retention:\n          time: 7d\n", 7 * day},
		{"out-of-order window longer", "metrics:\n  retention: 1d\n  prometheus:\n    storage:\n      tsdb:\n        out_of_order_time_window: 3d\n", 3 * day},
		{"size only", "metrics:\n  retention: 0s\n  retention_size: 1GiB\n", 0},
	}
	for _, c := range cases {
		cfg, err := config.Parse([]byte(c.yaml), t.TempDir(), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := otlpMetricsMaxAge(cfg.Metrics); got != c.want {
			t.Errorf("%s: max age %v, want %v", c.name, got, c.want)
		}
	}
}
