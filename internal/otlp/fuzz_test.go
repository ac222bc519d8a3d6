package otlp

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

func fuzzReceiver(f *testing.F) (*Receiver, *recorder) {
	rec := &recorder{}
	cfg := DefaultConfig()
	cfg.MaxRequestBytes = 64 << 10
	r, err := New(cfg, Deps{Traces: rec, Logs: rec, Metrics: rec, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		f.Fatal(err)
	}
	return r, rec
}

// fuzzHandler feeds arbitrary bodies, as protobuf, JSON and gzip, to one
// OTLP/HTTP endpoint: the answer must always be a defined status, and
// the memory reservation must always be returned.
func fuzzHandler(f *testing.F, r *Receiver, handler http.HandlerFunc, path string, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s, false, false)
		f.Add(s, true, false)
		f.Add(gzipped(s), false, true)
	}
	f.Fuzz(func(t *testing.T, body []byte, asJSON, gz bool) {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		if asJSON {
			req.Header.Set("Content-Type", contentTypeJSON)
		} else {
			req.Header.Set("Content-Type", contentTypeProtobuf)
		}
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		handler(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %d-byte body: %s", w.Code, len(body), w.Body.String())
		}
		if n := r.limiter.inUse(); n != 0 {
			t.Fatalf("%d bytes still reserved after the request", n)
		}
	})
}

func FuzzHTTPTraces(f *testing.F) {
	r, _ := fuzzReceiver(f)
	good := protoBody(f, tracesRequest(2, 3))
	js, _ := tracesRequest(1, 0).MarshalJSON()
	fuzzHandler(f, r, r.HandleTraces, PathTraces, good, js, []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00","spanId":""}]}]}]}`))
}

func FuzzHTTPLogs(f *testing.F) {
	r, _ := fuzzReceiver(f)
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.Body().SetStr("hello")
	lr.Attributes().PutInt("n", 1)
	req := plogotlp.NewExportRequestFromLogs(ld)
	pb, _ := req.MarshalProto()
	js, _ := req.MarshalJSON()
	fuzzHandler(f, r, r.HandleLogs, PathLogs, pb, js)
}

func FuzzHTTPMetrics(f *testing.F) {
	r, _ := fuzzReceiver(f)
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("x")
	m.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	pb, _ := req.MarshalProto()
	js, _ := req.MarshalJSON()
	fuzzHandler(f, r, r.HandleMetrics, PathMetrics, pb, js)
}
