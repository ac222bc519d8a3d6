package app

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	rawTraceRequests     = "nxwatcher_otlp_raw_trace_requests_total"
	rawHTTPTraceRequests = rawTraceRequests + `{transport="http"}`
	rawGRPCTraceRequests = rawTraceRequests + `{transport="grpc"}`
)

// protobufTrace is one span of trace id as an OTLP/HTTP protobuf body.
func protobufTrace(t *testing.T, id [16]byte, name string) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "raw")
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetTraceID(id)
	span.SetSpanID([8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	span.SetName(name)
	now := time.Now()
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func postProtobufTrace(t *testing.T, ts *testServer, body []byte) {
	t.Helper()
	_, httpAddr := ts.app.OTLPAddrs()
	resp, err := http.Post("http://"+httpAddr.String()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP export = %d", resp.StatusCode)
	}
}

// The app wires the store and the generator so that an OTLP/HTTP protobuf
// request reaches them without a pdata decode while nothing forwards
// (ADR 0118), and the span is stored and answered as before.
func TestTracesRawPathWhenNothingForwards(t *testing.T) {
	ts := startServer(t, "")
	postProtobufTrace(t, ts, protobufTrace(t, [16]byte{0xa1, 15: 1}, "raw-hop"))
	if got := ts.metricValue(t, rawHTTPTraceRequests); got != 1 {
		t.Fatalf("%s = %v, want 1: the request took the pdata path", rawHTTPTraceRequests, got)
	}
	// OTLP/gRPC takes the same path (ADR 0119).
	grpcAddr, _ := ts.app.OTLPAddrs()
	conn, err := grpc.NewClient(grpcAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(protobufTrace(t, [16]byte{0xa3, 15: 3}, "raw-grpc-hop")); err != nil {
		t.Fatal(err)
	}
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if got := ts.metricValue(t, rawGRPCTraceRequests); got != 1 {
		t.Fatalf("%s = %v, want 1: the request took the pdata path", rawGRPCTraceRequests, got)
	}
	for id, name := range map[string]string{"a1000000000000000000000000000001": "raw-hop", "a3000000000000000000000000000003": "raw-grpc-hop"} {
		waitFor(t, 20*time.Second, "the span by trace ID", func() bool {
			code, body := ts.get(t, "/api/traces/"+id)
			return code == http.StatusOK && strings.Contains(body, `"`+name+`"`)
		})
	}
}

// With a forward endpoint the backlog needs pdata, so the request is decoded
// once and still reaches both the backlog and the store.
func TestTracesPdataPathWhenForwarding(t *testing.T) {
	downstream := startServer(t, "")
	grpcAddr, _ := downstream.app.OTLPAddrs()
	upstream := startServer(t, "traces:\n  forward:\n    - endpoint: "+grpcAddr.String()+"\n      protocol: grpc\n      insecure: true\n")
	postProtobufTrace(t, upstream, protobufTrace(t, [16]byte{0xa2, 15: 2}, "fwd-hop"))
	// No series until a request takes the path (the name itself is
	// checked by TestTracesRawPathWhenNothingForwards).
	if got := upstream.metricValue(t, rawHTTPTraceRequests); got > 0 {
		t.Fatalf("%s = %v with a forward endpoint, want none", rawHTTPTraceRequests, got)
	}
	for _, ts := range []*testServer{upstream, downstream} {
		waitFor(t, 20*time.Second, "the span by trace ID", func() bool {
			code, body := ts.get(t, "/api/traces/a2000000000000000000000000000002")
			return code == http.StatusOK && strings.Contains(body, `"fwd-hop"`)
		})
	}
}
