package tempoapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestSearchAnswersFromColumns checks that /api/search answers the same
// bytes (traces, root fields, startTimeUnixNano, durationMs, serviceStats,
// spanSets with matched, span IDs, times, names and attributes) when block
// traces are answered from their columns (format 10, ADR 0110) as when every
// trace is decoded — over blocks holding irregular traces (a span kind the
// columns cannot hold, a non-string service.name), traces with parts in two
// blocks and in the head, traces without a root, with two roots, with a
// root whose resource has no service.name, and a key
// without a column (the high-cardinality URL): those are still decoded.
// Whole answers are compared, statistics included, except for limited
// searches (traces only: see below).
func TestSearchAnswersFromColumns(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	opts := tracestore.DefaultOptions()
	opts.Now = func() time.Time { return now }
	db, err := tracestore.Open(t.TempDir(), opts, tracestore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(7, now.Add(-10*time.Minute).UnixNano())
	consume := func(td ptrace.Traces) {
		t.Helper()
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	spansOf := func(td ptrace.Traces) []ptrace.Span {
		var out []ptrace.Span
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			ss := td.ResourceSpans().At(i).ScopeSpans()
			for j := 0; j < ss.Len(); j++ {
				for k := 0; k < ss.At(j).Spans().Len(); k++ {
					out = append(out, ss.At(j).Spans().At(k))
				}
			}
		}
		return out
	}
	var late []pcommon.TraceID
	var lateParents []pcommon.SpanID
	for i := range 600 {
		id, td := g.Trace(2 + i%7)
		sp := spansOf(td)
		switch i % 23 {
		case 1: // irregular: a kind the columns cannot hold
			sp[len(sp)-1].SetKind(ptrace.SpanKind(9))
		case 2: // irregular: service.name not a string
			td.ResourceSpans().At(0).Resource().Attributes().PutInt("service.name", 7)
		case 3: // no root
			sp[0].SetParentSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
		case 4: // two roots, the later-listed one earlier
			sp[len(sp)-1].SetParentSpanID(pcommon.SpanID{})
			sp[len(sp)-1].SetStartTimestamp(sp[0].StartTimestamp() - 1000)
		case 5: // the root's resource has no service.name
			td.ResourceSpans().At(0).Resource().Attributes().Remove("service.name")
		case 7: // parts in a later block or the head
			late, lateParents = append(late, id), append(lateParents, sp[0].SpanID())
		}
		consume(td)
		if i == 250 || i == 450 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
			for j, lid := range late {
				td := ptrace.NewTraces()
				g.AppendTrace(td, lid, 2, lateParents[j])
				consume(td)
			}
			late, lateParents = nil, nil
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	for j, lid := range late { // in the head only
		td := ptrace.NewTraces()
		g.AppendTrace(td, lid, 2, lateParents[j])
		consume(td)
	}
	for i := range 20 { // whole traces in the head
		_, td := g.Trace(2 + i%5)
		consume(td)
	}

	newAPI := func(decode bool) *API {
		a, err := New(DefaultConfig(), Deps{Store: db, Registerer: prometheus.NewRegistry(), Now: opts.Now})
		if err != nil {
			t.Fatal(err)
		}
		a.noColumnAnswers = decode
		return a
	}
	decoded, cols := newAPI(true), newAPI(false)
	queries := []struct {
		q       string
		columns bool // answered (in part) from columns
	}{
		{`{}`, true},
		{`{ status = error }`, true},
		{`{ resource.service.name = "payment" && span.http.status_code = 500 }`, true},
		{`{ name =~ "GET.*" }`, true},
		{`{ kind = server || span.http.method = "POST" }`, true},
		{`{ .http.method = "GET" && .deployment.environment = "production" }`, true},
		{`{ span.cache.hit = true && span.queue.ratio > 0.5 }`, true},
		{`{ duration > 1ms && status != error }`, true},
		{`{ span.http.url =~ ".*7.*" }`, false}, // no column: decoded
		{`{ resource.service.name = "nope" }`, false},
		{`{ status = error } | count() > 1`, false}, // a pipeline: decoded
	}
	answered := 0
	for _, c := range queries {
		for _, extra := range []url.Values{
			{"limit": {"1000"}, "spss": {"5"}},
			{"limit": {"7"}},
			{"limit": {"1000"}, "minDuration": {"2ms"}, "maxDuration": {"1s"}},
		} {
			v := url.Values{"q": {c.q}, "start": {itoa(now.Add(-time.Hour).Unix())}, "end": {itoa(now.Unix())}}
			for k, x := range extra {
				v[k] = x
			}
			ask := func(a *API) string {
				rec := httptest.NewRecorder()
				a.Search(rec, httptest.NewRequest(http.MethodGet, "/api/search?"+v.Encode(), nil))
				if rec.Code != http.StatusOK {
					t.Fatalf("%s: status %d: %s", c.q, rec.Code, rec.Body)
				}
				return rec.Body.String()
			}
			before := cols.columnAnswered
			d, col := ask(decoded), ask(cols)
			n := cols.columnAnswered - before
			answered += n
			t.Logf("%s %v: %d traces, %d from columns", c.q, extra, strings.Count(d, `"traceID"`), n)
			if extra.Get("limit") == "7" {
				// A limited search stops early: the decoding path's
				// statistics count the candidates its workers pulled
				// ahead, so only the traces are compared.
				d, col = d[:strings.Index(d, `"metrics":`)], col[:strings.Index(col, `"metrics":`)]
			}
			if d != col {
				i := 0
				for i < len(d) && i < len(col) && d[i] == col[i] {
					i++
				}
				i = max(0, i-200)
				t.Errorf("%s %v: answers differ\ndecoded: …%.600s\ncolumns: …%.600s", c.q, extra, d[i:], col[i:])
			}
			if c.columns && n == 0 && extra.Get("limit") == "1000" {
				t.Errorf("%s %v: no trace answered from columns", c.q, extra)
			}
			if !c.columns && n != 0 {
				t.Errorf("%s %v: %d traces answered from columns", c.q, extra, n)
			}
		}
	}
	if decoded.columnAnswered != 0 || answered == 0 {
		t.Fatalf("decoding API answered %d from columns, columns API %d", decoded.columnAnswered, answered)
	}
}

// BenchmarkSearchAnswers: /api/search's work (answers built, not encoded)
// for the broad tracebench query over 50k traces in blocks, from the
// columns and by decoding.
func BenchmarkSearchAnswers(b *testing.B) {
	now := time.Now().Truncate(time.Second)
	opts := tracestore.DefaultOptions()
	opts.Now = func() time.Time { return now }
	db, err := tracestore.Open(b.TempDir(), opts, tracestore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(3, now.Add(-time.Hour).UnixNano())
	for i := range 50_000 {
		_, td := g.Trace(3 + i%6)
		if err := db.ConsumeTraces(b.Context(), td); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	const q = `{ resource.service.name = "payment" && span.http.status_code = 500 }`
	for _, cols := range []bool{true, false} {
		name := "decode"
		if cols {
			name = "columns"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				n, _, _, err := BenchSearch(b.Context(), db, q, 1<<30, cols, false)
				if err != nil || n == 0 {
					b.Fatal(n, err)
				}
			}
			// CPU of the whole process (the machine is shared: wall time is not the work)
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
