package tracestore

import (
	"slices"
	"testing"
	"time"

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

// TestEventAndLinkTags: event and link attribute names and values are
// listed from the head, from a cut block and after a reopen (WAL replay).
func TestEventAndLinkTags(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, DefaultOptions(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	g := storetest.NewGen(9, testclock.Now().UnixNano())
	td := ptrace.NewTraces()
	for i := 0; i < 50; i++ {
		g.AppendTrace(td, g.TraceID(), 5, pcommon.SpanID{})
	}
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	check := func(stage string, db *DB) {
		t.Helper()
		names, err := db.TagNames(t.Context(), time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names, "event.exception.type") || !slices.Contains(names, "link.link.kind") {
			t.Errorf("%s: tag names %v lack event.exception.type or link.link.kind", stage, names)
		}
		for key, want := range map[string]string{"event.exception.type": "io.EOF", "link.link.kind": "follows"} {
			vals, err := db.TagValues(t.Context(), key, time.Time{}, time.Time{}, 0)
			if err != nil || len(vals) != 1 || vals[0] != (TypedValue{Type: "string", Value: want}) {
				t.Errorf("%s: %s values %v (%v), want %q", stage, key, vals, err, want)
			}
		}
	}
	check("head", db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, DefaultOptions(), Deps{}); err != nil {
		t.Fatal(err)
	}
	check("replayed head", db)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	check("block", db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
