package tempoapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

func TestSearchConcurrencyLimit(t *testing.T) {
	e := serve(t)
	cfg := DefaultConfig()
	cfg.MaxConcurrentQueries, cfg.MaxOutstandingPerTenant, cfg.QueueTimeout = 1, 1, model.Duration(time.Minute)
	api, err := New(cfg, Deps{Store: e.db})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range api.Routes() {
		mux.HandleFunc(r.Method+" "+r.Path, r.Handler)
	}
	// Hold the one slot; a bounded burst of 6 searches and metrics
	// queries: one waits, five are refused at once.
	release, err := api.gate.Enter(context.Background(), tenancy.Default)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"/api/search?q=%7B%7D", "/api/metrics/query_range?q=%7B%7D%20%7C%20rate()", "/api/search?q=%7B%7D",
		"/api/v2/search/tag/name/values?q=%7Bstatus%3Derror%7D", "/api/search", "/api/metrics/query?q=%7B%7D%20%7C%20rate()"}
	type answer struct {
		code int
		body string
	}
	answers := make(chan answer, len(paths))
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, p, nil)
			w := newRecorder()
			mux.ServeHTTP(w, req)
			answers <- answer{w.code, w.body.String()}
		}()
	}
	for testutil.ToFloat64(api.rejected.WithLabelValues("queue_full")) < float64(len(paths)-1) {
		time.Sleep(5 * time.Millisecond) // poll; bounded by the test timeout
	}
	release()
	wg.Wait()
	close(answers)
	n := map[int]int{}
	for a := range answers {
		n[a.code]++
		if a.code == 429 && !strings.Contains(a.body, "job queue full") {
			t.Errorf("429 body %q", a.body)
		}
	}
	if n[429] != len(paths)-1 || n[200] != 1 {
		t.Fatalf("codes %v", n)
	}
	// Trace by ID and tag names are not gated.
	rel, _ := api.gate.Enter(context.Background(), tenancy.Default)
	defer rel()
	for _, p := range []string{"/api/v2/search/tags", "/api/traces/01"} {
		w := newRecorder()
		req, _ := http.NewRequest(http.MethodGet, p, nil)
		mux.ServeHTTP(w, req)
		if w.code == 429 {
			t.Errorf("%s gated", p)
		}
	}
}

func TestMultitenancyNeedsTenantStores(t *testing.T) {
	e := serve(t)
	if _, err := New(DefaultConfig(), Deps{Store: e.db, MultitenancyEnabled: true}); err == nil {
		t.Fatal("multitenancy with one store accepted")
	}
	if _, err := New(DefaultConfig(), Deps{}); err == nil {
		t.Fatal("no store accepted")
	}
}

type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, code: 200} }

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }
