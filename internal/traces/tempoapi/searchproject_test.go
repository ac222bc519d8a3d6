package tempoapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// recordingStore is a Store that notes whether searches asked for a
// projection, and can ignore it (decode everything).
type recordingStore struct {
	*tracestore.DB
	ignoreProjection bool
	projected        int
}

func (s *recordingStore) Search(ctx context.Context, req tracestore.SearchRequest, fn func(tracestore.TraceID, ptrace.Traces) (bool, error)) (tracestore.SearchStats, error) {
	if req.Project != nil {
		s.projected++
	}
	if s.ignoreProjection {
		req.Project = nil
	}
	return s.DB.Search(ctx, req, fn)
}

// TestSearchProjection checks that /api/search decodes a projection of each
// trace, and that every answer is the same as when whole traces are decoded:
// root names and services, serviceStats, span names, selected and matched
// attributes, event, link and structural queries.
func TestSearchProjection(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	opts := tracestore.DefaultOptions()
	opts.Now = func() time.Time { return now }
	reg := prometheus.NewRegistry()
	db, err := tracestore.Open(t.TempDir(), opts, tracestore.Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(5, now.Add(-10*time.Minute).UnixNano())
	for i := range 300 {
		_, td := g.Trace(3 + i%6)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
		if i == 150 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	whole := &recordingStore{DB: db, ignoreProjection: true}
	projected := &recordingStore{DB: db}
	newAPI := func(s Store) *API {
		a, err := New(DefaultConfig(), Deps{Store: s, Registerer: prometheus.NewRegistry(), Now: opts.Now})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	wholeAPI, projAPI := newAPI(whole), newAPI(projected)
	queries := []string{
		`{}`,
		`{ status = error }`,
		`{ resource.service.name = "payment" && span.http.status_code = 500 }`,
		`{ .http.method = "GET" } | select(span.http.url, resource.k8s.namespace.name)`,
		`{ name =~ "GET.*" }`,
		`{ kind = client } | by(resource.service.name) | count() > 1`,
		`{ event:name = "exception" }`,
		`{ event.exception.type = "io.EOF" }`,
		`{ link.link.kind = "follows" }`,
		`{ statusMessage = "upstream failed" }`,
		`{ kind = server } >> { status = error }`,
		`{ nestedSetParent < 0 && span.cache.hit = true }`,
		`{ rootName =~ ".*" && span.queue.ratio > 0.5 }`,
		`{ instrumentation.name = "x" || duration > 1ms }`,
	}
	matched := 0
	for _, q := range queries {
		v := url.Values{"q": {q}, "limit": {"1000"}, "spss": {"5"},
			"start": {itoa(now.Add(-time.Hour).Unix())}, "end": {itoa(now.Unix())}}
		ask := func(a *API) string {
			rec := httptest.NewRecorder()
			a.Search(rec, httptest.NewRequest(http.MethodGet, "/api/search?"+v.Encode(), nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: status %d: %s", q, rec.Code, rec.Body)
			}
			return rec.Body.String()
		}
		w, p := ask(wholeAPI), ask(projAPI)
		if strings.Count(w, `"traceID"`) > 0 {
			matched++
		}
		t.Logf("%s: %d traces", q, strings.Count(w, `"traceID"`))
		if w != p {
			t.Errorf("%s: answers differ\nwhole traces: %.600s\nprojected:    %.600s", q, w, p)
		}
	}
	if matched < len(queries)-2 {
		t.Errorf("only %d of %d queries found traces: the comparison proves little", matched, len(queries))
	}
	if projected.projected == 0 {
		t.Fatalf("no search asked the store for a projection")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
