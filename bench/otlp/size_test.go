package otlpbench

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// TestBatchShape keeps the benchmark's request what bench/README.md says.
func TestBatchShape(t *testing.T) {
	td := batch(0)
	if td.SpanCount() != spansPerRequest {
		t.Fatalf("batch has %d spans", td.SpanCount())
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes, %d bytes/span", len(b), len(b)/spansPerRequest)
}
