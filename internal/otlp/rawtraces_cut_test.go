package otlp_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestRawTracesMalformedUnknownFieldsCut sends FuzzColumnWalk's kept inputs
// (unknown fields pdata skips and the cut's field reader refuses) through
// the OTLP/HTTP receiver into a real store, as they are and inside a span's
// attribute and status: every request is acknowledged, the store keeps
// pdata's encoding instead of the request's bytes, the cut succeeds and
// every trace reads back with its spans (ADR 0115).
func TestRawTracesMalformedUnknownFieldsCut(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "traces", "tracestore", "testdata", "fuzz", "FuzzColumnWalk", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no FuzzColumnWalk corpus: %v", err)
	}
	reg := prometheus.NewRegistry()
	db, err := tracestore.Open(t.TempDir(), func() tracestore.Options {
		o := tracestore.DefaultOptions()
		o.Now = testclock.Now
		return o
	}(), tracestore.Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, url := serveStore(t, db)
	g := storetest.NewGen(71, testclock.Now().Add(-10e9).UnixNano())

	sent := map[pcommon.TraceID]map[pcommon.SpanID]bool{} // the same spans twice are a retry
	withSpans := 0
	for _, name := range files {
		input := corpusBytes(t, name)
		_, td := g.Trace(3)
		var m ptrace.ProtoMarshaler
		base, err := m.MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		variants := append([][]byte{input}, storetest.PlantedVariants(base, input)...)
		for i, raw := range variants {
			var u ptrace.ProtoUnmarshaler
			want, err := u.UnmarshalTraces(raw)
			if err != nil {
				continue // pdata refuses it there: so does the receiver
			}
			resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s variant %d: status %d", filepath.Base(name), i, resp.StatusCode)
			}
			if want.SpanCount() > 0 {
				withSpans++
			}
			rss := want.ResourceSpans()
			for j := 0; j < rss.Len(); j++ {
				for k := 0; k < rss.At(j).ScopeSpans().Len(); k++ {
					sp := rss.At(j).ScopeSpans().At(k).Spans()
					for l := 0; l < sp.Len(); l++ {
						tid := sp.At(l).TraceID()
						if sent[tid] == nil {
							sent[tid] = map[pcommon.SpanID]bool{}
						}
						sent[tid][sp.At(l).SpanID()] = true
					}
				}
			}
		}
	}
	if withSpans == 0 {
		t.Fatal("no variant with spans reached the store")
	}
	if err := db.Flush(); err != nil {
		t.Fatalf("cut: %v", err)
	}
	for id, spans := range sent {
		got, found, err := db.TraceByID(t.Context(), id)
		if err != nil || !found || got.SpanCount() != len(spans) {
			t.Fatalf("trace %s: found %v, %v, %d spans, want %d", id, found, err, got.SpanCount(), len(spans))
		}
	}
	if n, err := testutil.GatherAndCount(reg, "nxwatcher_tracestore_reencoded_requests_total"); err != nil || n != 1 {
		t.Fatalf("reencoded requests metric: %d series, %v", n, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "nxwatcher_tracestore_reencoded_requests_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); int(v) != withSpans {
				t.Fatalf("%v requests stored re-encoded, want %d", v, withSpans)
			}
		}
	}
}

// corpusBytes reads a one-[]byte "go test fuzz v1" corpus file.
func corpusBytes(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 2 || !bytes.HasPrefix(lines[1], []byte("[]byte(")) {
		t.Fatalf("%s: not a one-[]byte corpus file", name)
	}
	s, err := strconv.Unquote(string(bytes.TrimSuffix(bytes.TrimPrefix(lines[1], []byte("[]byte(")), []byte(")"))))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}
