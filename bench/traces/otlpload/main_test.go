package main

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
	"github.com/nx-watcher/nxwatcher/internal/config"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServeConfigLoads: the config the bench gives serve still loads with
// serve's own checker, so the bench does not rot when the default changes.
func TestServeConfigLoads(t *testing.T) {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path, err := serveConfig(root, t.TempDir(), "traces: {max_head_bytes: 64MiB}")
	if err != nil {
		t.Fatal(err)
	}
	kind, warnings, err := config.Check(path, promslog.NewNopLogger())
	if err != nil || kind != config.KindServe || len(warnings) > 0 {
		t.Fatalf("check %s: %s %v %q", path, kind, err, warnings)
	}
}

// TestWithRound: a sustained round rewrites every span's trace ID, the same
// way for all spans of one trace, and nothing else.
func TestWithRound(t *testing.T) {
	const traces, perTrace = 30, 5
	reqs, err := buildRequests(storetest.NewGen(7, time.Now().UnixNano()), traces, perTrace, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for _, r := range reqs {
		if len(r.offsets) != 10*perTrace {
			t.Fatalf("%d trace ID offsets, want one per span (%d)", len(r.offsets), 10*perTrace)
		}
		ids := func(body []byte) []pcommon.TraceID {
			req := ptraceotlp.NewExportRequest()
			if err := req.UnmarshalProto(body); err != nil {
				t.Fatal(err)
			}
			var out []pcommon.TraceID
			rss := req.Traces().ResourceSpans()
			for i := range rss.Len() {
				sss := rss.At(i).ScopeSpans()
				for j := range sss.Len() {
					for k := range sss.At(j).Spans().Len() {
						out = append(out, sss.At(j).Spans().At(k).TraceID())
					}
				}
			}
			return out
		}
		before := ids(r.body)
		if got := withRound(nil, r, 0); string(got) != string(r.body) {
			t.Fatal("round 0 changed the body")
		}
		after := ids(withRound(nil, r, 3))
		if len(after) != len(before) {
			t.Fatalf("%d spans after, %d before", len(after), len(before))
		}
		for i := range before {
			want := before[i]
			binary.LittleEndian.PutUint64(want[8:], binary.LittleEndian.Uint64(want[8:])^3)
			if after[i] != want {
				t.Fatalf("span %d: trace ID %x, want %x", i, after[i], want)
			}
		}
	}
}
