package traceql

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func spanID(i int) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], uint64(i)+1)
	return id
}

// randomTrace builds n spans whose parents are random (earlier spans, the
// span itself, later spans — cycles included — or none).
func randomTrace(rng *rand.Rand, n int) *Trace {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := 0; i < n; i++ {
		s := ss.AppendEmpty()
		s.SetTraceID(pcommon.TraceID{1})
		s.SetSpanID(spanID(i))
		if rng.IntN(5) > 0 {
			s.SetParentSpanID(spanID(rng.IntN(n)))
		}
	}
	return NewTrace(td)
}

// TestRelatedSetMatchesSpanAtATime checks the linear structural operators
// against the span-at-a-time reference on random forests with cycles.
func TestRelatedSetMatchesSpanAtATime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		tr := randomTrace(rng, 1+rng.IntN(40))
		var l []int
		inL := map[int]bool{}
		for i := range tr.Spans {
			if rng.IntN(3) == 0 {
				l = append(l, i)
				inL[i] = true
			}
		}
		for _, rel := range []string{">", ">>", "<", "<<", "~"} {
			got := relatedSet(rel, tr, l)
			for i := range tr.Spans {
				if want := related(rel, tr, i, inL); got[i] != want {
					t.Fatalf("iteration %d, %s: span %d related=%v, reference says %v", iter, rel, i, got[i], want)
				}
			}
		}
	}
}

// TestStructuralOnADeepTraceIsLinear evaluates ancestor and descendant
// queries on a 200k-span chain; walking the chain per span (the old way)
// takes ~2·10^10 steps, the linear way a few hundred thousand.
func TestStructuralOnADeepTraceIsLinear(t *testing.T) {
	const n = 200_000
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := 0; i < n; i++ {
		s := ss.AppendEmpty()
		s.SetTraceID(pcommon.TraceID{1})
		s.SetSpanID(spanID(i))
		switch i {
		case 0:
			s.SetName("root")
		case n - 1:
			s.SetName("leaf")
		default:
			s.SetName("op")
		}
		if i > 0 {
			s.SetParentSpanID(spanID(i - 1))
		}
	}
	tr := NewTrace(td)
	for q, want := range map[string]int{
		// Each right-hand span is n/2 steps on average from the one left span.
		`{ name = "leaf" } << { }`: n - 1, // the leaf's ancestors
		`{ name = "root" } >> { }`: n - 1, // the root's descendants
	} {
		query, err := Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		sets := query.Eval(tr)
		if len(sets) != 1 || len(sets[0].Spans) != want {
			t.Fatalf("%s: %d spansets, want one of %d spans", q, len(sets), want)
		}
	}
}
