package otlp

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// rawRecorder takes raw requests and records how each one came.
type rawRecorder struct {
	raw, decoded int
	drop         bool // drop the first span, as the store drops a retry
	err          error
}

func (r *rawRecorder) ConsumeTraces(context.Context, ptrace.Traces) error { r.decoded++; return r.err }
func (r *rawRecorder) TakesRawTraces() bool                               { return true }
func (r *rawRecorder) ConsumeRawTraces(_ context.Context, req *RawTracesRequest) error {
	r.raw++
	if r.drop {
		req.Drop(0)
	}
	return r.err
}

// pdataRecorder takes only pdata and keeps the span count it saw.
type pdataRecorder struct {
	calls, spans int
	err          error
}

func (p *pdataRecorder) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	p.calls++
	p.spans = td.SpanCount()
	return p.err
}

func walkedRequest(t *testing.T) *RawTracesRequest {
	t.Helper()
	req, ok := ParseRawTraces(marshalTraces(t, richTraces()))
	if !ok {
		t.Fatal("the walk refuses the test request")
	}
	return req
}

// TestRawConsumerWrappers: the wrappers take raw requests only when what
// they wrap does, decode once for a consumer that needs pdata, and give
// later consumers pdata without the spans an earlier one dropped.
func TestRawConsumerWrappers(t *testing.T) {
	ctx := context.Background()
	t.Run("TracesWhen inactive takes nothing and costs no decode", func(t *testing.T) {
		pd := &pdataRecorder{}
		c := TracesWhen(func() bool { return false }, pd).(RawTracesConsumer)
		req := walkedRequest(t)
		if !c.TakesRawTraces() {
			t.Fatal("an inactive TracesWhen should take raw requests")
		}
		if err := c.ConsumeRawTraces(ctx, req); err != nil || pd.calls != 0 {
			t.Fatalf("err %v, %d calls", err, pd.calls)
		}
		if _, decoded := req.Decoded(); decoded {
			t.Fatal("the request was decoded")
		}
	})
	t.Run("a pdata consumer after a dropping raw one sees the rest", func(t *testing.T) {
		first := &rawRecorder{drop: true}
		pd := &pdataRecorder{}
		after := &rawRecorder{}
		seq := TracesSequence(first, TracesWhen(func() bool { return true }, pd), after).(RawTracesConsumer)
		if seq.TakesRawTraces() {
			t.Fatal("a sequence with an active pdata consumer should not take raw requests")
		}
		req := walkedRequest(t)
		if err := seq.ConsumeRawTraces(ctx, req); err != nil {
			t.Fatal(err)
		}
		if first.raw != 1 || pd.calls != 1 || pd.spans != req.SpanCount()-1 {
			t.Fatalf("raw %d, pdata calls %d with %d spans of %d", first.raw, pd.calls, pd.spans, req.SpanCount())
		}
		if after.raw != 0 || after.decoded != 1 {
			t.Fatalf("after a decode the raw consumer got %d raw and %d pdata requests, want pdata", after.raw, after.decoded)
		}
	})
	t.Run("TracesSequence stops at the first error", func(t *testing.T) {
		boom := errors.New("boom")
		first, second := &rawRecorder{err: boom}, &rawRecorder{}
		err := TracesSequence(first, second).(RawTracesConsumer).ConsumeRawTraces(ctx, walkedRequest(t))
		if !errors.Is(err, boom) || second.raw != 0 {
			t.Fatalf("err %v, second consumer called %d times", err, second.raw)
		}
	})
	t.Run("TracesInvalidOn marks a raw consumer's sentinel invalid", func(t *testing.T) {
		bad := errors.New("bad id")
		c := TracesInvalidOn(&rawRecorder{err: bad}, bad).(RawTracesConsumer)
		if err := c.ConsumeRawTraces(ctx, walkedRequest(t)); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("err %v, want ErrInvalidInput", err)
		}
		if TracesInvalidOn(&pdataRecorder{}).(RawTracesConsumer).TakesRawTraces() {
			t.Fatal("TracesInvalidOn of a pdata consumer should not take raw requests")
		}
	})
}
