package otlp

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// TestTracesFullRefusesRetryably: while Deps.TracesFull reports the store
// behind, trace requests over both transports are refused retryably before
// the consumer sees them, and counted; logs are not affected; once it
// clears, spans flow again.
func TestTracesFullRefusesRetryably(t *testing.T) {
	rec := &recorder{}
	var full atomic.Bool
	full.Store(true)
	var asked atomic.Int64
	srv := startServer(t, testConfig(), Deps{Traces: rec, Logs: rec, TracesFull: func(string) bool {
		asked.Add(1)
		return full.Load()
	}})
	url := "http://" + srv.httpAddr

	resp := post(t, url+PathTraces, contentTypeProtobuf, "", protoBody(t, tracesRequest(3, 0)))
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("http: status %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := decodeStatus(t, resp, body); !strings.Contains(st.GetMessage(), "store is behind") {
		t.Errorf("message %q", st.GetMessage())
	}
	logs, err := logsRequest(2).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp = post(t, url+PathLogs, contentTypeProtobuf, "", logs)
	if readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("logs while traces are full: status %d, want 200", resp.StatusCode)
	}

	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	_, err = client.Export(t.Context(), tracesRequest(3, 0))
	if st := status.Convert(err); st.Code() != codes.Unavailable || !hasRetryInfo(st) {
		t.Fatalf("grpc: %v with RetryInfo=%v, want Unavailable with RetryInfo", err, hasRetryInfo(st))
	}
	if got := srv.refused(SignalTraces, transportHTTP, reasonConsumerFull) + srv.refused(SignalTraces, transportGRPC, reasonConsumerFull); got != 2 {
		t.Errorf("consumer_full refusals = %v, want 2", got)
	}
	if n := len(rec.spans()); n != 0 {
		t.Fatalf("consumer got %d spans while full", n)
	}

	full.Store(false)
	resp = post(t, url+PathTraces, contentTypeProtobuf, "", protoBody(t, tracesRequest(3, 0)))
	if readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("http after the store caught up: status %d", resp.StatusCode)
	}
	if _, err := client.Export(t.Context(), tracesRequest(3, 0)); err != nil {
		t.Fatalf("grpc after the store caught up: %v", err)
	}
	if n := len(rec.spans()); n != 6 {
		t.Fatalf("consumer got %d spans, want 6", n)
	}
	if asked.Load() < 4 {
		t.Errorf("TracesFull asked %d times, want once per trace request (4)", asked.Load())
	}
}

// TestTracesFullPerTenant: with trace tenancy on, TracesFull is asked for
// the request's own tenant, over HTTP and through the gRPC tap, so one
// tenant's full store refuses only that tenant's spans.
func TestTracesFullPerTenant(t *testing.T) {
	rec := &recorder{}
	var mu sync.Mutex
	var asked []string
	srv := startServer(t, testConfig(), Deps{Traces: rec, TracesTenancy: true, TracesFull: func(tenant string) bool {
		mu.Lock()
		asked = append(asked, tenant)
		mu.Unlock()
		return tenant == "busy"
	}})
	url := "http://" + srv.httpAddr
	postAs := func(tenant string) int {
		req, err := http.NewRequest(http.MethodPost, url+PathTraces, bytes.NewReader(protoBody(t, tracesRequest(2, 0))))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentTypeProtobuf)
		req.Header.Set(tenancy.Header, tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		return resp.StatusCode
	}
	if code := postAs("busy"); code != http.StatusTooManyRequests {
		t.Errorf("http as busy: status %d, want 429", code)
	}
	if code := postAs("calm"); code != http.StatusOK {
		t.Errorf("http as calm: status %d, want 200", code)
	}

	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	exportAs := func(tenant string) error {
		ctx := metadata.AppendToOutgoingContext(t.Context(), tenancy.MetadataKey, tenant)
		_, err := client.Export(ctx, tracesRequest(2, 0))
		return err
	}
	if st := status.Convert(exportAs("busy")); st.Code() != codes.Unavailable {
		t.Errorf("grpc as busy: %v, want Unavailable", st.Err())
	}
	if err := exportAs("calm"); err != nil {
		t.Errorf("grpc as calm: %v", err)
	}
	if n := len(rec.spans()); n != 4 {
		t.Errorf("consumer got %d spans, want 4 (calm's two requests)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, tenant := range asked {
		if tenant != "busy" && tenant != "calm" {
			t.Errorf("TracesFull asked for tenant %q", tenant)
		}
	}
	if len(asked) < 4 {
		t.Errorf("TracesFull asked %d times, want at least once per request (4)", len(asked))
	}
}
