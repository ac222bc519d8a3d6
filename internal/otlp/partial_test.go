package otlp

import (
	"fmt"
	"net/http"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func logsRequest(n int) plogotlp.ExportRequest {
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i := range n {
		r := lr.AppendEmpty()
		r.SetTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + int64(i)))
		r.Body().SetStr(fmt.Sprintf("line %d", i))
	}
	return plogotlp.NewExportRequestFromLogs(ld)
}

func metricsRequest(n int) pmetricotlp.ExportRequest {
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	g := ms.AppendEmpty()
	g.SetName("g")
	dps := g.SetEmptyGauge().DataPoints()
	for i := range n {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + int64(i)))
		dp.SetIntValue(int64(i))
	}
	return pmetricotlp.NewExportRequestFromMetrics(md)
}

// wireAnswer is what one export over one wire answered: transport error
// (status != 200 or gRPC error), rejected count and message.
type wireAnswer struct {
	status   int
	rejected int64
	msg      string
}

type wireResponse2 interface {
	UnmarshalProto([]byte) error
	UnmarshalJSON([]byte) error
}

// TestPartialSuccessOnEveryWire sends each signal over gRPC, HTTP protobuf
// and HTTP JSON to a consumer that refuses part of the request (with a
// wrapped *PartialSuccessError, as the stores return it), and checks the
// answer is a success carrying exactly that count and the reason.
func TestPartialSuccessOnEveryWire(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, testConfig(), Deps{Traces: rec, Logs: rec, Metrics: rec})
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc, lc, mc := ptraceotlp.NewGRPCClient(conn), plogotlp.NewGRPCClient(conn), pmetricotlp.NewGRPCClient(conn)

	httpExport := func(t *testing.T, path string, body []byte, ct string, resp wireResponse2, rejected func() (int64, string)) wireAnswer {
		r := post(t, "http://"+srv.httpAddr+path, ct, "", body)
		out := readAll(t, r)
		if r.StatusCode != http.StatusOK {
			return wireAnswer{status: r.StatusCode}
		}
		var err error
		if ct == contentTypeJSON {
			err = resp.UnmarshalJSON(out)
		} else {
			err = resp.UnmarshalProto(out)
		}
		if err != nil {
			t.Fatalf("decode response: %v", err)
		}
		n, msg := rejected()
		return wireAnswer{status: 200, rejected: n, msg: msg}
	}

	type signalCase struct {
		name  string
		items int
		send  func(t *testing.T, wire string) wireAnswer
	}
	signals := []signalCase{
		{"traces", 5, func(t *testing.T, wire string) wireAnswer {
			req := tracesRequest(5, 0)
			if wire == "grpc" {
				resp, err := tc.Export(t.Context(), req)
				if err != nil {
					return wireAnswer{status: 500, msg: err.Error()}
				}
				return wireAnswer{200, resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage()}
			}
			resp := ptraceotlp.NewExportResponse()
			body, _ := req.MarshalProto()
			if wire == "json" {
				body, _ = req.MarshalJSON()
			}
			return httpExport(t, PathTraces, body, map[string]string{"json": contentTypeJSON, "proto": contentTypeProtobuf}[wire], resp,
				func() (int64, string) {
					return resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage()
				})
		}},
		{"logs", 5, func(t *testing.T, wire string) wireAnswer {
			req := logsRequest(5)
			if wire == "grpc" {
				resp, err := lc.Export(t.Context(), req)
				if err != nil {
					return wireAnswer{status: 500, msg: err.Error()}
				}
				return wireAnswer{200, resp.PartialSuccess().RejectedLogRecords(), resp.PartialSuccess().ErrorMessage()}
			}
			resp := plogotlp.NewExportResponse()
			body, _ := req.MarshalProto()
			if wire == "json" {
				body, _ = req.MarshalJSON()
			}
			return httpExport(t, PathLogs, body, map[string]string{"json": contentTypeJSON, "proto": contentTypeProtobuf}[wire], resp,
				func() (int64, string) {
					return resp.PartialSuccess().RejectedLogRecords(), resp.PartialSuccess().ErrorMessage()
				})
		}},
		{"metrics", 5, func(t *testing.T, wire string) wireAnswer {
			req := metricsRequest(5)
			if wire == "grpc" {
				resp, err := mc.Export(t.Context(), req)
				if err != nil {
					return wireAnswer{status: 500, msg: err.Error()}
				}
				return wireAnswer{200, resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage()}
			}
			resp := pmetricotlp.NewExportResponse()
			body, _ := req.MarshalProto()
			if wire == "json" {
				body, _ = req.MarshalJSON()
			}
			return httpExport(t, PathMetrics, body, map[string]string{"json": contentTypeJSON, "proto": contentTypeProtobuf}[wire], resp,
				func() (int64, string) {
					return resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage()
				})
		}},
	}
	for _, sig := range signals {
		for _, wire := range []string{"grpc", "proto", "json"} {
			t.Run(sig.name+"/"+wire, func(t *testing.T) {
				// The stores wrap it; the receiver must still find it.
				rec.setErr(fmt.Errorf("store: %w", &PartialSuccessError{Rejected: 2, Reason: "2 items too old"}))
				defer rec.setErr(nil)
				got := sig.send(t, wire)
				if got.status != 200 || got.rejected != 2 || got.msg != "2 items too old" {
					t.Fatalf("answer %+v, want 200 with rejected=2 and the reason", got)
				}
				// A consumer claiming more than the request held is clamped:
				// partial_success never says more items were refused than sent.
				rec.setErr(&PartialSuccessError{Rejected: 99, Reason: "all of them"})
				if got := sig.send(t, wire); got.status != 200 || got.rejected != int64(sig.items) {
					t.Fatalf("over-count: answer %+v, want rejected=%d", got, sig.items)
				}
				// Everything accepted: no partial_success at all.
				rec.setErr(nil)
				if got := sig.send(t, wire); got.status != 200 || got.rejected != 0 || got.msg != "" {
					t.Fatalf("clean export: answer %+v", got)
				}
			})
		}
	}
}
