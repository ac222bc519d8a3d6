package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// rawCapture records, per request, the bytes RawTraces gives for the td
// it is handed (nil when it gives none).
type rawCapture struct {
	mu   sync.Mutex
	raws [][]byte
}

func (c *rawCapture) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	raw, ok := RawTraces(ctx, td)
	if ok {
		raw = bytes.Clone(raw)
	}
	if _, again := RawTraces(ctx, ptrace.NewTraces()); again {
		panic("RawTraces answered for another Traces")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raws = append(c.raws, raw)
	return nil
}

// TestRawTraces: an OTLP/HTTP protobuf request's consumer gets the request
// bytes (after Content-Encoding), a JSON one does not, nor one whose
// invalid spans the receiver dropped from td.
func TestRawTraces(t *testing.T) {
	c := &rawCapture{}
	srv := startServer(t, testConfig(), Deps{Traces: c})
	url := "http://" + srv.httpAddr + PathTraces

	body := protoBody(t, tracesRequest(4, 0))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(body)
	_ = zw.Close()
	js, err := tracesRequest(4, 0).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	bad := tracesRequest(4, 0)
	bad.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(1).SetSpanID(pcommon.SpanID{})
	for _, r := range []struct {
		ct, enc string
		body    []byte
	}{{contentTypeProtobuf, "", body}, {contentTypeProtobuf, "gzip", gz.Bytes()}, {contentTypeJSON, "", js}, {contentTypeProtobuf, "", protoBody(t, bad)}} {
		if resp := post(t, url, r.ct, r.enc, r.body); readAll(t, resp) != nil && resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: status %d", r.ct, r.enc, resp.StatusCode)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.raws) != 4 {
		t.Fatalf("%d requests consumed, want 4", len(c.raws))
	}
	for i, want := range [][]byte{body, body, nil, nil} {
		if !bytes.Equal(c.raws[i], want) || (want == nil) != (c.raws[i] == nil) {
			t.Errorf("request %d: RawTraces gave %d bytes, want %d", i, len(c.raws[i]), len(want))
		}
	}
}
