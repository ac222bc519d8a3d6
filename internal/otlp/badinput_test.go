package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// tracesRequest builds a request of n spans; pad adds an attribute of that
// many bytes to each span to control its size.
func tracesRequest(n, pad int) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "api")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		s := ss.AppendEmpty()
		s.SetTraceID(pcommon.TraceID{1, byte(i >> 8), byte(i), 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, byte(i >> 8), byte(i) + 1})
		s.SetName(fmt.Sprintf("op-%d", i))
		s.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + int64(i)))
		s.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_100_000_000 + int64(i)))
		if pad > 0 {
			s.Attributes().PutStr("pad", strings.Repeat("x", pad))
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

func protoBody(t testing.TB, req ptraceotlp.ExportRequest) []byte {
	b, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func post(t *testing.T, url, contentType, encoding string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// decodeStatus reads an OTLP error body in the response's media type.
func decodeStatus(t *testing.T, resp *http.Response, body []byte) *spb.Status {
	t.Helper()
	st := &spb.Status{}
	var err error
	switch resp.Header.Get("Content-Type") {
	case contentTypeJSON:
		err = protojson.Unmarshal(body, st)
	case contentTypeProtobuf:
		err = proto.Unmarshal(body, st)
	default:
		t.Fatalf("error body has content type %q", resp.Header.Get("Content-Type"))
	}
	if err != nil {
		t.Fatalf("error body is not a google.rpc.Status: %v (%q)", err, body)
	}
	return st
}

func TestHTTPBadInput(t *testing.T) {
	rec := &recorder{}
	cfg := testConfig()
	srv := startServer(t, cfg, Deps{Traces: rec})
	url := "http://" + srv.httpAddr + PathTraces
	good := protoBody(t, tracesRequest(2, 0))
	limit := int(cfg.MaxRequestBytes)

	bomb := gzipped(bytes.Repeat([]byte{0}, limit+10))
	if len(bomb) > limit {
		t.Fatalf("bomb is %d bytes, should be small", len(bomb))
	}

	tests := []struct {
		name        string
		method      string
		contentType string
		encoding    string
		body        []byte
		wantStatus  int
		wantReason  string
		wantMsg     string
		textBody    bool
	}{
		{name: "wrong method", method: http.MethodGet, contentType: contentTypeProtobuf, wantStatus: 405, wantReason: reasonMethod, wantMsg: "method GET not allowed"},
		{name: "wrong content type", contentType: "text/plain", body: good, wantStatus: 415, wantReason: reasonMediaType, wantMsg: "unsupported media type", textBody: true},
		{name: "no content type", body: good, wantStatus: 415, wantReason: reasonMediaType, wantMsg: "unsupported media type", textBody: true},
		{name: "malformed protobuf", contentType: contentTypeProtobuf, body: []byte{0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01}, wantStatus: 400, wantReason: reasonMalformed, wantMsg: "decode request"},
		{name: "malformed json", contentType: contentTypeJSON, body: []byte(`{"resourceSpans": [`), wantStatus: 400, wantReason: reasonMalformed, wantMsg: "decode request"},
		{name: "bad trace id in json", contentType: contentTypeJSON, body: []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0102030405060708","name":"x"}]}]}]}`), wantStatus: 400, wantReason: reasonMalformed, wantMsg: "decode request"},
		{name: "oversized body", contentType: contentTypeProtobuf, body: bytes.Repeat([]byte{0}, limit+1), wantStatus: 413, wantReason: reasonTooLarge, wantMsg: "max_request_bytes"},
		{name: "gzip bomb", contentType: contentTypeProtobuf, encoding: "gzip", body: bomb, wantStatus: 413, wantReason: reasonTooLarge, wantMsg: "max_request_bytes"},
		{name: "corrupt gzip", contentType: contentTypeProtobuf, encoding: "gzip", body: good, wantStatus: 400, wantReason: reasonMalformed, wantMsg: "gunzip body"},
		{name: "unsupported encoding", contentType: contentTypeJSON, encoding: "br", body: good, wantStatus: 415, wantReason: reasonEncoding, wantMsg: "Content-Encoding"},
	}
	goodSent := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.refused(SignalTraces, transportHTTP, tt.wantReason)
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.wantStatus, body)
			}
			msg := string(body)
			if !tt.textBody {
				msg = decodeStatus(t, resp, body).GetMessage()
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not mention %q", msg, tt.wantMsg)
			}
			if got := srv.refused(SignalTraces, transportHTTP, tt.wantReason) - before; got != 1 {
				t.Errorf("refused{reason=%s} grew by %v, want 1", tt.wantReason, got)
			}
			// Nothing else lost: a good request right after still lands.
			ok := post(t, url, contentTypeProtobuf, "", good)
			if ok.StatusCode != 200 {
				t.Fatalf("good request after bad one: status %d", ok.StatusCode)
			}
			readAll(t, ok)
			goodSent += 2
		})
	}
	if got := len(rec.spans()); got != goodSent {
		t.Fatalf("consumer holds %d spans, want exactly the %d good ones", got, goodSent)
	}
}

func TestHTTPJSONRoundTripAndInvalidIDs(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, testConfig(), Deps{Traces: rec})
	// One valid span and one with an all-zero trace id: partial success.
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},
	  "scopeSpans":[{"spans":[
	    {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok","kind":2,
	     "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000"},
	    {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175","name":"bad"}]}]}]}`
	resp := post(t, "http://"+srv.httpAddr+PathTraces, "application/json; charset=utf-8", "", []byte(body))
	out := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentTypeJSON {
		t.Fatalf("status %d %q, want 200 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	er := ptraceotlp.NewExportResponse()
	if err := er.UnmarshalJSON(out); err != nil {
		t.Fatalf("response is not an ExportTraceServiceResponse: %v", err)
	}
	if er.PartialSuccess().RejectedSpans() != 1 || !strings.Contains(er.PartialSuccess().ErrorMessage(), "all-zero trace_id") {
		t.Fatalf("partial success = %d %q", er.PartialSuccess().RejectedSpans(), er.PartialSuccess().ErrorMessage())
	}
	spans := rec.spans()
	if len(spans) != 1 || spans[0].Name() != "ok" || spans[0].Kind() != ptrace.SpanKindServer {
		t.Fatalf("consumer got %d spans, want the valid one", len(spans))
	}
	if spans[0].TraceID().String() != "5b8efff798038103d269b633813fc60c" {
		t.Errorf("trace id %s", spans[0].TraceID())
	}
}

func TestConsumerErrors(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, testConfig(), Deps{Traces: rec})
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	url := "http://" + srv.httpAddr + PathTraces

	tests := []struct {
		name       string
		err        error
		wantHTTP   int
		wantCode   codes.Code
		retryable  bool
		wantReason string
	}{
		{name: "invalid input", err: fmt.Errorf("span 0: end before start: %w", ErrInvalidInput), wantHTTP: 400, wantCode: codes.InvalidArgument, wantReason: reasonConsumerInvalid},
		{name: "transient", err: errors.New("wal: disk full"), wantHTTP: 503, wantCode: codes.Unavailable, retryable: true, wantReason: reasonConsumerRetrying},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.setErr(tt.err)
			defer rec.setErr(nil)
			resp := post(t, url, contentTypeProtobuf, "", protoBody(t, tracesRequest(1, 0)))
			body := readAll(t, resp)
			if resp.StatusCode != tt.wantHTTP {
				t.Fatalf("http status %d, want %d", resp.StatusCode, tt.wantHTTP)
			}
			if st := decodeStatus(t, resp, body); !strings.Contains(st.GetMessage(), tt.err.Error()) {
				t.Errorf("message %q lacks the consumer's reason", st.GetMessage())
			}
			if got := resp.Header.Get("Retry-After"); (got != "") != tt.retryable {
				t.Errorf("Retry-After %q, retryable %v", got, tt.retryable)
			}
			_, err := client.Export(t.Context(), tracesRequest(1, 0))
			st := status.Convert(err)
			if st.Code() != tt.wantCode {
				t.Fatalf("grpc code %v, want %v (%v)", st.Code(), tt.wantCode, err)
			}
			if hasRetryInfo(st) != tt.retryable {
				t.Errorf("RetryInfo present = %v, want %v", hasRetryInfo(st), tt.retryable)
			}
			if got := srv.refused(SignalTraces, transportGRPC, tt.wantReason); got != 1 {
				t.Errorf("grpc refused{%s} = %v, want 1", tt.wantReason, got)
			}
		})
	}

	t.Run("partial success from consumer", func(t *testing.T) {
		rec.setErr(&PartialSuccessError{Rejected: 2, Reason: "spans too old"})
		defer rec.setErr(nil)
		resp, err := client.Export(t.Context(), tracesRequest(3, 0))
		if err != nil {
			t.Fatal(err)
		}
		if resp.PartialSuccess().RejectedSpans() != 2 || resp.PartialSuccess().ErrorMessage() != "spans too old" {
			t.Fatalf("partial success = %d %q", resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage())
		}
		if got := srv.accepted(SignalTraces, transportGRPC); got != 1 {
			t.Errorf("accepted = %v, want 1", got)
		}
	})
}

func hasRetryInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
			return true
		}
	}
	return false
}

func TestMissingConsumerIsNotImplemented(t *testing.T) {
	srv := startServer(t, testConfig(), Deps{Traces: &recorder{}})
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("hello")
	req := plogotlp.NewExportRequestFromLogs(ld)
	body, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp := post(t, "http://"+srv.httpAddr+PathLogs, contentTypeProtobuf, "", body)
	out := readAll(t, resp)
	if resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("status %d, want 501", resp.StatusCode)
	}
	if st := decodeStatus(t, resp, out); !strings.Contains(st.GetMessage(), "no logs store") {
		t.Errorf("message %q", st.GetMessage())
	}

	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = plogotlp.NewGRPCClient(conn).Export(t.Context(), req)
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "no logs store") {
		t.Fatalf("grpc error %v, want Unimplemented naming the missing store", err)
	}
	if got := srv.refused(SignalLogs, transportGRPC, reasonNotImplemented) + srv.refused(SignalLogs, transportHTTP, reasonNotImplemented); got != 2 {
		t.Errorf("not_implemented refusals = %v, want 2", got)
	}
}

// TestMemoryLimitRefusesRetryably holds one big request inside a blocked
// consumer and checks that both transports refuse the next one with a
// retryable answer, then accept again once memory is free.
func TestMemoryLimitRefusesRetryably(t *testing.T) {
	rec := &recorder{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	cfg := testConfig()
	cfg.MemoryLimit = cfg.MaxRequestBytes
	srv := startServer(t, cfg, Deps{Traces: rec})
	url := "http://" + srv.httpAddr + PathTraces

	// 300 KiB on the wire is estimated at > 1 MiB decoded: alone, it is
	// admitted; it fills the limit for everyone else.
	big := protoBody(t, tracesRequest(1, 300<<10))
	firstDone := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(big))
		req.Header.Set("Content-Type", contentTypeProtobuf)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			firstDone <- -1
			return
		}
		_ = resp.Body.Close()
		firstDone <- resp.StatusCode
	}()
	<-rec.entered

	resp := post(t, url, contentTypeProtobuf, "", protoBody(t, tracesRequest(1, 0)))
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("http: status %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := decodeStatus(t, resp, body); !strings.Contains(st.GetMessage(), "memory limit") {
		t.Errorf("message %q", st.GetMessage())
	}

	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	_, err = client.Export(t.Context(), tracesRequest(1, 0))
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !hasRetryInfo(st) {
		t.Fatalf("grpc: %v with RetryInfo=%v, want Unavailable with RetryInfo", err, hasRetryInfo(st))
	}
	if got := srv.refused(SignalTraces, transportHTTP, reasonMemoryLimit) + srv.refused(SignalTraces, transportGRPC, reasonMemoryLimit); got != 2 {
		t.Errorf("memory_limit refusals = %v, want 2", got)
	}

	close(rec.gate)
	if code := <-firstDone; code != 200 {
		t.Fatalf("held request finished with %d", code)
	}
	if _, err := client.Export(t.Context(), tracesRequest(1, 0)); err != nil {
		t.Fatalf("after memory is free: %v", err)
	}
	if got := srv.recv.limiter.inUse(); got != 0 {
		t.Errorf("in-flight bytes after all requests = %d, want 0", got)
	}
}

// TestOverloadOnlyRetryableRefusals floods a slow consumer: every answer
// is 200 or a retryable 429, in-flight memory stays within one request of
// the limit, and every acknowledged span is in the consumer.
func TestOverloadOnlyRetryableRefusals(t *testing.T) {
	rec := &recorder{}
	slow := TracesConsumerFunc(func(ctx context.Context, td ptrace.Traces) error {
		time.Sleep(2 * time.Millisecond)
		return rec.ConsumeTraces(ctx, td)
	})
	cfg := testConfig()
	cfg.MemoryLimit = 2 * cfg.MaxRequestBytes
	srv := startServer(t, cfg, Deps{Traces: slow})
	url := "http://" + srv.httpAddr + PathTraces
	body := protoBody(t, tracesRequest(10, 20<<10)) // ~200 KiB, ~800 KiB estimated
	estimate := int64(len(body)) * decodedOverhead

	var ok, refused, other, peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := srv.recv.limiter.inUse(); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", contentTypeProtobuf)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				_ = resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					ok.Add(1)
				case resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "":
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if other.Load() != 0 {
		t.Fatalf("%d answers were neither 200 nor retryable 429", other.Load())
	}
	if refused.Load() == 0 {
		t.Fatalf("no request was refused under overload (ok=%d)", ok.Load())
	}
	if limit := int64(cfg.MemoryLimit); peak.Load() > limit+estimate {
		t.Errorf("peak in-flight %d above limit %d + one request %d", peak.Load(), limit, estimate)
	}
	if got := int64(len(rec.spans())); got != ok.Load()*10 {
		t.Fatalf("consumer holds %d spans, want 10 per acknowledged request (%d)", got, ok.Load()*10)
	}
	t.Logf("ok=%d refused=%d peak in-flight=%d", ok.Load(), refused.Load(), peak.Load())
}

// rawCodec sends bytes as they are, to put malformed protobuf on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)      { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error { *(v.(*[]byte)) = data; return nil }
func (rawCodec) Name() string                       { return "proto" }

func TestGRPCBadInputCounted(t *testing.T) {
	rec := &recorder{}
	cfg := testConfig()
	srv := startServer(t, cfg, Deps{Traces: rec})
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const method = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	var out []byte
	err = conn.Invoke(t.Context(), method, []byte{0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01}, &out, grpc.ForceCodec(rawCodec{}))
	if code := status.Code(err); code != codes.Internal && code != codes.InvalidArgument {
		t.Fatalf("malformed protobuf: %v", err)
	}
	big := protoBody(t, tracesRequest(1, int(cfg.MaxRequestBytes)))
	err = conn.Invoke(t.Context(), method, big, &out, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized message: %v, want ResourceExhausted", err)
	}
	waitFor(t, "refusals counted", func() bool {
		return srv.refused(SignalTraces, transportGRPC, reasonMalformed) == 1 && srv.refused(SignalTraces, transportGRPC, reasonTooLarge) == 1
	})
	// Nothing else lost: a good export still lands.
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(t.Context(), tracesRequest(2, 0)); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.spans()); got != 2 {
		t.Fatalf("consumer holds %d spans, want 2", got)
	}
}
