package tracestore

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestProjection checks the wire-level projection against the same cut
// made with pdata: every kept field survives byte for byte, dropped
// attributes, events, links and trace state are gone.
func TestProjection(t *testing.T) {
	g := storetest.NewGen(7, testclock.Base().UnixNano())
	td := ptrace.NewTraces()
	for i := 0; i < 20; i++ {
		g.AppendTrace(td, g.TraceID(), 3+i%6, pcommon.SpanID{})
	}
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceState().FromRaw("k=v")
	td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes().PutStr("lib.flavour", "x")
	td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes().PutStr("other", "y")
	raw, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		p    Projection
	}{
		{"nothing", Projection{}},
		{"some keys", Projection{SpanAttrs: map[string]bool{"http.status_code": true}, ResourceAttrs: map[string]bool{"k8s.namespace.name": true},
			ScopeAttrs: map[string]bool{"lib.flavour": true}}},
		{"events and links", Projection{Events: true, Links: true, AllScopeAttrs: true}},
		{"everything", Projection{AllSpanAttrs: true, AllResourceAttrs: true, AllScopeAttrs: true, Events: true, Links: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pj := &projector{p: &c.p}
			out, err := pj.apply(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(out)
			if err != nil {
				t.Fatal(err)
			}
			want := ptrace.NewTraces()
			td.CopyTo(want)
			keep := func(all bool, set map[string]bool, always string) func(string, pcommon.Value) bool {
				return func(k string, _ pcommon.Value) bool { return !all && !set[k] && k != always }
			}
			for i := 0; i < want.ResourceSpans().Len(); i++ {
				rs := want.ResourceSpans().At(i)
				rs.Resource().Attributes().RemoveIf(keep(c.p.AllResourceAttrs, c.p.ResourceAttrs, "service.name"))
				for j := 0; j < rs.ScopeSpans().Len(); j++ {
					ss := rs.ScopeSpans().At(j)
					ss.Scope().Attributes().RemoveIf(keep(c.p.AllScopeAttrs, c.p.ScopeAttrs, ""))
					for k := 0; k < ss.Spans().Len(); k++ {
						s := ss.Spans().At(k)
						s.TraceState().FromRaw("")
						s.Attributes().RemoveIf(keep(c.p.AllSpanAttrs, c.p.SpanAttrs, ""))
						if !c.p.Events {
							s.Events().RemoveIf(func(ptrace.SpanEvent) bool { return true })
						}
						if !c.p.Links {
							s.Links().RemoveIf(func(ptrace.SpanLink) bool { return true })
						}
					}
				}
			}
			if d := storetest.Diff(want, got); d != "" {
				t.Fatalf("projection differs from the pdata cut:\n%s", d)
			}
			// Fingerprints leave scope attributes out: compare them here.
			for i := 0; i < want.ResourceSpans().Len(); i++ {
				w := want.ResourceSpans().At(i).ScopeSpans().At(0).Scope().Attributes().AsRaw()
				g := got.ResourceSpans().At(i).ScopeSpans().At(0).Scope().Attributes().AsRaw()
				if len(w) != len(g) {
					t.Fatalf("resource %d: scope attributes %v, want %v", i, g, w)
				}
			}
			if c.name == "nothing" && len(out) >= len(raw)/2 {
				t.Errorf("projected %d of %d bytes: attributes were not dropped", len(out), len(raw))
			}
		})
	}
	if _, err := (&projector{p: &Projection{}}).apply([]byte{0x0a, 0x05, 0x01}); err == nil {
		t.Error("truncated protobuf projected without error")
	}
}
