package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/nx-watcher/nxwatcher/internal/app"
)

// traced are the services that send spans, each with its own SDK pipeline
// (as each pod runs its own SDK).
var traced = []string{"traefik", "identity", "backend", "bullmq-worker", "web"}

// emitters send the platform's logs (Loki push API, JSON body) and traces
// (OTLP/HTTP through the OpenTelemetry Go SDK).
type emitters struct {
	logger    *slog.Logger
	pushURL   string
	client    *http.Client
	providers map[string]*sdktrace.TracerProvider
	tracers   map[string]trace.Tracer
	rng       *rand.Rand
	ticks     int
}

func newEmitters(opts Options, baseURL string, a *app.App) (*emitters, error) {
	e := &emitters{
		logger:    opts.Logger.With("component", "demo"),
		pushURL:   baseURL + "/loki/api/v1/push",
		client:    &http.Client{Timeout: 10 * time.Second},
		providers: map[string]*sdktrace.TracerProvider{},
		tracers:   map[string]trace.Tracer{},
		rng:       rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6c6f67)),
	}
	otlpURL := baseURL + "/v1/traces"
	if _, h := a.OTLPAddrs(); h != nil {
		otlpURL = "http://" + loopback(h) + "/v1/traces"
	}
	if _, h := a.OTLPAddrs(); h == nil {
		// Traces are off in this config: logs and metrics only.
		return e, nil
	}
	for _, svc := range traced {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(otlpURL))
		if err != nil {
			e.close()
			return nil, fmt.Errorf("demo: otlp exporter: %w", err)
		}
		res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
			attribute.String("service.name", svc),
			attribute.String("service.namespace", namespaceOf(svc)),
			attribute.String("deployment.environment", "demo"),
			attribute.String("k8s.namespace.name", namespaceOf(svc)),
		)
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		)
		e.providers[svc] = tp
		e.tracers[svc] = tp.Tracer("github.com/nx-watcher/nxwatcher/internal/demo")
	}
	return e, nil
}

func namespaceOf(svc string) string {
	switch svc {
	case "traefik":
		return nsInternal
	case "web":
		return "nx-frontend"
	}
	return nsBackend
}

// close flushes and stops the SDK pipelines.
func (e *emitters) close() {
	for _, tp := range e.providers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = tp.Shutdown(ctx)
		cancel()
	}
}

// logBatch collects one tick's lines per stream.
type logBatch map[string]*lokiStream

type lokiStream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

func (b logBatch) add(svc, pod string, t time.Time, line string) {
	key := svc + "/" + pod
	s, ok := b[key]
	if !ok {
		s = &lokiStream{Stream: map[string]string{"namespace": namespaceOf(svc), "service": svc, "pod": pod, "container": svc}}
		if svc == "traefik" {
			s.Stream["pod"] = pods[0].name
		}
		b[key] = s
	}
	s.Values = append(s.Values, [2]string{strconv.FormatInt(t.UnixNano(), 10), line})
}

var podOf = map[string]string{
	"traefik": pods[0].name, "identity": identityPod, "backend": "backend-5d4c8b7a9-h2lxw",
	"bullmq-worker": "bullmq-worker-6b7d9f8c4-m3zrd", "web": "web-8f7e6d5c4-k9p2s",
}

// emit sends one tick's logs and traces.
func (e *emitters) emit(ctx context.Context, now time.Time, reqs []request, inc Incidents) {
	e.ticks++
	batch := logBatch{}
	for _, r := range reqs {
		tid, sid := e.trace(r)
		e.requestLogs(batch, r, tid, sid)
	}
	// Background lines: the worker's heartbeat and a failing job now and then.
	worker := "bullmq-worker"
	batch.add(worker, podOf[worker], now, fmt.Sprintf("level=info msg=\"queue stats\" queue=email waiting=%d active=%d", e.rng.IntN(40), e.rng.IntN(4)))
	if e.ticks%7 == 1 || (inc.ErrorBurst && e.ticks%2 == 0) {
		batch.add(worker, podOf[worker], now, fmt.Sprintf("level=error msg=\"job failed\" queue=payments-sync job_id=%d attempts=%d err=\"upstream payment provider timed out\"", 100000+e.rng.IntN(900000), 1+e.rng.IntN(3)))
	}
	if inc.CrashLoop && e.ticks%3 == 0 {
		batch.add("identity", identityPod, now, `level=error msg="uncaught exception, exiting" err="connect ECONNREFUSED 10.96.12.7:6379" exit_code=1`)
		batch.add("identity", identityPod, now.Add(time.Millisecond), `level=info msg="starting identity service" version=2.14.3 port=3000`)
	}
	if inc.RedisMemory && e.ticks%5 == 0 {
		batch.add("backend", podOf["backend"], now, `{"level":"warn","msg":"redis: OOM command not allowed when used memory > 'maxmemory'","context":"CacheService"}`)
	}
	if len(batch) > 0 {
		e.push(ctx, batch)
	}
}

func (e *emitters) push(ctx context.Context, b logBatch) {
	body := struct {
		Streams []*lokiStream `json:"streams"`
	}{}
	for _, s := range b {
		body.Streams = append(body.Streams, s)
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.pushURL, bytes.NewReader(buf))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			e.logger.Warn("Loki push failed", "err", err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e.logger.Warn("Loki push refused", "status", resp.Status)
	}
}

func (e *emitters) requestLogs(b logBatch, r request, tid, sid string) {
	end := r.start.Add(r.duration)
	ms := float64(r.duration.Microseconds()) / 1000
	// Traefik's JSON access log.
	access, _ := json.Marshal(map[string]any{
		"ClientHost": fmt.Sprintf("203.0.113.%d", 1+e.rng.IntN(250)), "RequestMethod": r.route.method, "RequestPath": r.route.path,
		"RequestProtocol": "HTTP/2.0", "DownstreamStatus": r.code, "Duration": r.duration.Nanoseconds(),
		"RouterName": r.route.service + "@kubernetes", "ServiceName": r.route.traefik, "entryPointName": "websecure",
		"level": "info", "msg": "", "time": end.UTC().Format(time.RFC3339), "trace_id": tid,
	})
	b.add("traefik", podOf["traefik"], end.Add(200*time.Microsecond), string(access))
	level := "info"
	msg := "request completed"
	if r.code >= 500 {
		level, msg = "error", "request failed"
	} else if r.code >= 400 {
		level = "warn"
	}
	switch r.route.service {
	case "identity":
		line := fmt.Sprintf("ts=%s level=%s msg=%q method=%s route=%s status=%d duration_ms=%.1f trace_id=%s span_id=%s",
			end.UTC().Format(time.RFC3339Nano), level, msg, r.route.method, r.route.path, r.code, ms, tid, sid)
		if r.code >= 500 {
			line += ` err="redis connection lost"`
		}
		b.add("identity", podOf["identity"], end, line)
	case "backend":
		rec := map[string]any{"level": level, "time": end.UnixMilli(), "msg": msg, "context": "HttpLogger",
			"req": map[string]any{"method": r.route.method, "url": r.route.path}, "res": map[string]any{"statusCode": r.code},
			"responseTime": ms, "trace_id": tid, "span_id": sid}
		if r.code >= 500 {
			rec["err"] = map[string]any{"type": "QueryFailedError", "message": "canceling statement due to statement timeout"}
		}
		line, _ := json.Marshal(rec)
		b.add("backend", podOf["backend"], end, string(line))
		if strings.HasPrefix(r.route.path, "/api/reports") || (r.route.method == "POST" && r.route.path == "/api/orders") {
			b.add("bullmq-worker", podOf["bullmq-worker"], end.Add(30*time.Millisecond),
				fmt.Sprintf("level=info msg=\"job completed\" queue=%s duration_ms=%d trace_id=%s", jobQueue(r.route), 20+e.rng.IntN(200), tid))
		}
	}
}

func jobQueue(r route) string {
	if r.path == "/api/reports" {
		return "reports"
	}
	return "email"
}

// trace sends the spans of one request: Traefik → service → PostgreSQL,
// Redis, Kafka and a BullMQ job the worker picks up.
func (e *emitters) trace(r request) (traceID, spanID string) {
	tr, ok := e.tracers["traefik"]
	if !ok {
		return fmt.Sprintf("%032x", e.rng.Uint64()), fmt.Sprintf("%016x", e.rng.Uint64())
	}
	at := func(frac float64) time.Time { return r.start.Add(time.Duration(frac * float64(r.duration))) }
	httpAttrs := []attribute.KeyValue{
		attribute.String("http.request.method", r.route.method), attribute.String("url.path", r.route.path),
		attribute.String("http.route", r.route.path), attribute.Int("http.response.status_code", r.code),
	}
	failed := r.code >= 500
	end := func(s trace.Span, t time.Time) {
		if failed {
			s.SetStatus(codes.Error, http.StatusText(r.code))
		}
		s.End(trace.WithTimestamp(t))
	}
	ctx, root := tr.Start(context.Background(), r.route.method+" "+r.route.path, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(r.start), trace.WithAttributes(httpAttrs...))
	ctx, out := tr.Start(ctx, r.route.method, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at(0.01)),
		trace.WithAttributes(append(httpAttrs, attribute.String("server.address", r.route.service))...))
	svc := e.tracers[r.route.service]
	sctx, srv := svc.Start(ctx, r.route.method+" "+r.route.path, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(at(0.02)), trace.WithAttributes(httpAttrs...))
	traceID, spanID = srv.SpanContext().TraceID().String(), srv.SpanContext().SpanID().String()

	db := func(c context.Context, t trace.Tracer, system, peer, name, stmt string, from, to float64, dbName string) {
		attrs := []attribute.KeyValue{attribute.String("db.system", system), attribute.String("peer.service", peer)}
		if dbName != "" {
			attrs = append(attrs, attribute.String("db.name", dbName))
		}
		if stmt != "" {
			attrs = append(attrs, attribute.String("db.statement", stmt))
		}
		_, s := t.Start(c, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at(from)), trace.WithAttributes(attrs...))
		s.End(trace.WithTimestamp(at(to)))
	}
	switch r.route.service {
	case "identity":
		db(sctx, svc, "redis", "redis", "GET", "GET session:*", 0.05, 0.12, "")
		if r.route.method == "POST" {
			db(sctx, svc, "postgresql", "postgresql", "SELECT identity.users", "SELECT id, password_hash FROM users WHERE email = $1", 0.15, 0.6, "identity")
		}
	case "backend":
		db(sctx, svc, "redis", "redis", "GET", "GET cache:*", 0.04, 0.08, "")
		db(sctx, svc, "postgresql", "postgresql", "SELECT bana.orders", "SELECT * FROM orders WHERE customer_id = $1 LIMIT 50", 0.1, 0.7, "bana")
		if r.route.method == "POST" {
			_, k := svc.Start(sctx, "orders publish", trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(at(0.72)),
				trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "orders"), attribute.String("peer.service", "kafka")))
			k.End(trace.WithTimestamp(at(0.8)))
			q := jobQueue(r.route)
			pctx, prod := svc.Start(sctx, q+" add", trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(at(0.82)),
				trace.WithAttributes(attribute.String("messaging.system", "bullmq"), attribute.String("messaging.destination.name", q)))
			prod.End(trace.WithTimestamp(at(0.9)))
			w := e.tracers["bullmq-worker"]
			jobStart := r.start.Add(r.duration + 20*time.Millisecond)
			wctx, cons := w.Start(pctx, q+" process", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(jobStart),
				trace.WithAttributes(attribute.String("messaging.system", "bullmq"), attribute.String("messaging.destination.name", q)))
			_, s := w.Start(wctx, "UPDATE bana.orders", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(jobStart.Add(2*time.Millisecond)),
				trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("peer.service", "postgresql"), attribute.String("db.name", "bana")))
			s.End(trace.WithTimestamp(jobStart.Add(9 * time.Millisecond)))
			cons.End(trace.WithTimestamp(jobStart.Add(12 * time.Millisecond)))
		}
	}
	end(srv, at(0.97))
	end(out, at(0.98))
	end(root, r.start.Add(r.duration))
	return traceID, spanID
}
