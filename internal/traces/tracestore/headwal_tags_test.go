package tracestore

import (
	"maps"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

func tagRequests(seed uint64, n int) []ptrace.Traces {
	g := storetest.NewGen(seed, testBase.UnixNano())
	var reqs []ptrace.Traces
	for range n {
		td := ptrace.NewTraces()
		for j := range 100 {
			g.AppendTrace(td, g.TraceID(), 3+j%6, pcommon.SpanID{})
		}
		reqs = append(reqs, td)
	}
	return reqs
}

// TestCollectTagsMatchesAddTraceTags: the head's filtered collection builds
// the same tag set as addTraceTags, also past the per-key value limit (the
// generator's URLs) and with requests seen twice.
func TestCollectTagsMatchesAddTraceTags(t *testing.T) {
	reqs := tagRequests(41, 30)
	h := newHead()
	want := newTagSet(headTagValueLimit)
	for _, td := range append(reqs, reqs...) {
		h.collectTags(td)
		addTraceTags(want, td)
	}
	if len(h.tags.keys) != len(want.keys) {
		t.Fatalf("%d keys, want %d", len(h.tags.keys), len(want.keys))
	}
	full := 0
	for k, vals := range want.keys {
		got := h.tags.keys[k]
		if !maps.Equal(got, vals) {
			t.Fatalf("key %v: %d values, want %d", k, len(got), len(vals))
		}
		if len(vals) == headTagValueLimit {
			full++
		}
	}
	if full == 0 {
		t.Fatal("no key reached the value limit: the test does not cover it")
	}
}

func BenchmarkCollectTags(b *testing.B) {
	reqs := tagRequests(42, 64)
	spans := 0
	for _, td := range reqs {
		spans += td.SpanCount()
	}
	b.Run("addTraceTags", func(b *testing.B) {
		b.ReportAllocs()
		set := newTagSet(headTagValueLimit)
		for b.Loop() {
			for _, td := range reqs {
				addTraceTags(set, td)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
	b.Run("collectTags", func(b *testing.B) {
		b.ReportAllocs()
		h := newHead()
		for b.Loop() {
			for _, td := range reqs {
				h.collectTags(td)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
}
