package tempoapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden.json with the answers given (review the diff!)")

// goldenCase is one request of a golden suite and the exact JSON it must
// answer. The answers were worked out by hand from Tempo's documented
// behaviour and ../shared/UPSTREAM-FACTS.md (what a real Tempo answered).
type goldenCase struct {
	Name string          `json:"name"`
	Path string          `json:"path"`
	Want json.RawMessage `json:"want"`
}

// goldenAPI loads testdata/search-data.json (three traces on 2026-01-01,
// with a clock injected so retention never sees them age) into a fresh
// store and serves the API from an httptest server on 127.0.0.1:0.
func goldenAPI(t *testing.T) (*tracestore.DB, string) {
	t.Helper()
	return goldenAPIWith(t, DefaultConfig())
}

// goldenAPIWith is goldenAPI with a given API config.
func goldenAPIWith(t *testing.T, cfg Config) (*tracestore.DB, string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/search-data.json")
	if err != nil {
		t.Fatal(err)
	}
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(raw)
	if err != nil {
		t.Fatal(err)
	}
	opts := tracestore.DefaultOptions()
	dataTime := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	opts.Now = func() time.Time { return dataTime }
	reg := prometheus.NewRegistry()
	db, err := tracestore.Open(t.TempDir(), opts, tracestore.Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	api, err := New(cfg, Deps{Store: db, Registerer: reg, Now: opts.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range api.Routes() {
		mux.HandleFunc(r.Method+" "+r.Path, r.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return db, srv.URL
}

var decimal = regexp.MustCompile(`^[0-9]+$`)

// normaliseMetrics checks the search metrics Tempo always sends
// (inspectedBytes as a decimal string, completedJobs = totalJobs > 0 for a
// complete answer) and replaces them by placeholders: their numbers depend
// on our storage (jobs, blocks, bytes), not on Tempo's, and differ between
// the head and a block. Other metrics (Tempo leaves them out when zero)
// are dropped before comparing.
func normaliseMetrics(body []byte) ([]byte, error) {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	raw, ok := v["metrics"]
	if !ok {
		return body, nil
	}
	var m struct {
		InspectedBytes *string `json:"inspectedBytes"`
		CompletedJobs  *int    `json:"completedJobs"`
		TotalJobs      *int    `json:"totalJobs"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m.InspectedBytes == nil || !decimal.MatchString(*m.InspectedBytes) || m.CompletedJobs == nil || m.TotalJobs == nil ||
		*m.TotalJobs == 0 || *m.CompletedJobs != *m.TotalJobs {
		return nil, fmt.Errorf("metrics %s: want inspectedBytes as a decimal string and completedJobs = totalJobs > 0", raw)
	}
	v["metrics"] = json.RawMessage(`{"inspectedBytes":"N","completedJobs":"N","totalJobs":"N"}`)
	return json.Marshal(v)
}

// runGolden asks every case of file of the server at base; stage names the
// store's state (head, block) in failures.
func runGolden(t *testing.T, file, base, stage string) []goldenCase {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for i, c := range cases {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+c.Path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s %s (%s): status %d: %s", stage, c.Name, c.Path, resp.StatusCode, body.Bytes())
			continue
		}
		got, err := normaliseMetrics(body.Bytes())
		if err != nil {
			t.Errorf("%s %s: %v", stage, c.Name, err)
			continue
		}
		var gotV, wantV any
		if err := json.Unmarshal(got, &gotV); err != nil {
			t.Fatalf("%s: answer is not JSON: %v", c.Name, err)
		}
		if *updateGolden {
			cases[i].Want = json.RawMessage(got)
			continue
		}
		if err := json.Unmarshal(c.Want, &wantV); err != nil {
			t.Fatalf("%s: want is not JSON: %v", c.Name, err)
		}
		g, _ := json.Marshal(gotV)
		w, _ := json.Marshal(wantV)
		if !bytes.Equal(g, w) {
			t.Errorf("%s %s\n  query: %s\n  got:  %s\n  want: %s", stage, c.Name, c.Path, g, w)
		}
	}
	return cases
}

func writeGolden(t *testing.T, file string, cases []goldenCase) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, c := range cases {
		var want bytes.Buffer
		if err := json.Compact(&want, c.Want); err != nil {
			t.Fatal(err)
		}
		n, _ := json.Marshal(c.Name)
		p, _ := json.Marshal(c.Path)
		buf.WriteString(` {"name": ` + string(n) + `,` + "\n  " + `"path": ` + string(p) + `,` + "\n  " + `"want": ` + want.String() + "}")
		if i < len(cases)-1 {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
	}
	buf.WriteString("]\n")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGolden runs each golden suite against the head, then again after the
// head was cut to a block: the answers must not depend on where data lives.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.golden.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden suites: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			db, base := goldenAPI(t)
			cases := runGolden(t, file, base, "head")
			if *updateGolden {
				writeGolden(t, file, cases)
				return
			}
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
			runGolden(t, file, base, "block")
		})
	}
}
