package ui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
	"github.com/nx-watcher/nxwatcher/internal/metrics"
	"github.com/nx-watcher/nxwatcher/internal/metrics/promapi"
	"github.com/nx-watcher/nxwatcher/internal/traces/tempoapi"
)

const grafanaDir = "../../deploy/grafana"

type provisionedDatasource struct {
	Name     string         `yaml:"name"`
	UID      string         `yaml:"uid"`
	Type     string         `yaml:"type"`
	Access   string         `yaml:"access"`
	URL      string         `yaml:"url"`
	JSONData map[string]any `yaml:"jsonData"`
}

func loadProvisioning(t *testing.T) ([]byte, []provisionedDatasource) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(grafanaDir, "provisioning/datasources/nxwatcher.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		APIVersion  int                     `yaml:"apiVersion"`
		Datasources []provisionedDatasource `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if file.APIVersion != 1 {
		t.Fatalf("apiVersion %d", file.APIVersion)
	}
	return raw, file.Datasources
}

// TestGrafanaProvisioningUIDs: the three data sources of the design doc,
// with stable UIDs, at nxwatcher's Services, and every UID a data source
// names (traces→logs, traces→metrics, service map, exemplars, derived
// fields) is one of them.
func TestGrafanaProvisioningUIDs(t *testing.T) {
	raw, dss := loadProvisioning(t)
	want := map[string]struct{ typ, url string }{
		"prometheus": {"prometheus", "http://nx-prometheus:9090"},
		"loki":       {"loki", "http://nx-loki:3100"},
		"tempo":      {"tempo", "http://nx-tempo:3200"},
	}
	uids := map[string]string{}
	for _, ds := range dss {
		w, ok := want[ds.UID]
		if !ok || ds.Type != w.typ || ds.URL != w.url || ds.Access != "proxy" {
			t.Errorf("data source %+v", ds)
		}
		if _, dup := uids[ds.UID]; dup {
			t.Errorf("uid %q twice", ds.UID)
		}
		uids[ds.UID] = ds.Type
	}
	if len(uids) != len(want) {
		t.Errorf("uids %v, want %v", uids, want)
	}

	// Every datasourceUid anywhere in jsonData exists and has the right type.
	var refs []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "datasourceUid" {
					s, _ := x.(string)
					refs = append(refs, path+"="+s)
					if uids[s] == "" {
						t.Errorf("%s.datasourceUid %q is no provisioned data source", path, s)
					}
				}
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
		}
	}
	for _, ds := range dss {
		walk(ds.UID, ds.JSONData)
	}
	slices.Sort(refs)
	for _, r := range []string{
		"tempo.tracesToLogsV2=loki", "tempo.tracesToMetrics=prometheus", "tempo.serviceMap=prometheus",
		"tempo.lokiSearch=loki", "prometheus.exemplarTraceIdDestinations[]=tempo", "loki.derivedFields[]=tempo",
	} {
		if !slices.Contains(refs, r) {
			t.Errorf("no reference %s (have %v)", r, refs)
		}
	}
	tempo := dss[slices.IndexFunc(dss, func(d provisionedDatasource) bool { return d.UID == "tempo" })].JSONData
	if tl := tempo["tracesToLogsV2"].(map[string]any); tl["filterByTraceID"] != true {
		t.Errorf("tracesToLogsV2 %v: the design doc filters by trace ID", tl)
	}

	// The ConfigMap carries the same text.
	cmRaw, err := os.ReadFile(filepath.Join(grafanaDir, "grafana-datasources.configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Kind     string `yaml:"kind"`
		Metadata struct{ Name, Namespace string }
		Data     map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(cmRaw, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "grafana-datasources" || cm.Metadata.Namespace != "nx-watcher" {
		t.Errorf("configmap %+v", cm)
	}
	if cm.Data["datasources.yaml"] != string(raw) {
		t.Error("grafana-datasources.configmap.yaml differs from provisioning/datasources/nxwatcher.yaml")
	}
}

// grafanaCalls are the requests Grafana 11.5 sends to each data source:
// the "Save & test" health checks (Prometheus: query 1+1 and buildinfo;
// Loki: query vector(1)+vector(1) at time=4000000000; Tempo: /api/echo),
// then what its query editors, Explore, traces→logs/metrics, the service map
// and the log details ask for.
var grafanaCalls = map[string][]string{
	"prometheus": {
		"GET /api/v1/query?query=1%2B1&time=4000000000", // health check
		"POST /api/v1/query",
		"GET /api/v1/status/buildinfo",
		"POST /api/v1/query_range",
		"POST /api/v1/query_exemplars",
		"GET /api/v1/series?match[]=up",
		"POST /api/v1/series",
		"GET /api/v1/labels",
		"POST /api/v1/labels",
		"GET /api/v1/label/__name__/values",
		"GET /api/v1/label/job/values",
		"GET /api/v1/metadata",
		"GET /api/v1/rules",
		"GET /api/v1/format_query?query=up",
	},
	"loki": {
		"GET /loki/api/v1/query?query=vector(1)%2Bvector(1)&time=4000000000", // health check
		"GET /loki/api/v1/query_range",
		"GET /loki/api/v1/labels",
		"GET /loki/api/v1/label/service_name/values",
		"GET /loki/api/v1/series",
		"GET /loki/api/v1/index/stats",
		"GET /loki/api/v1/index/volume",
		"GET /loki/api/v1/index/volume_range",
		"GET /loki/api/v1/tail",
		"GET /loki/api/v1/detected_labels",
		"GET /loki/api/v1/detected_fields",
		"GET /loki/api/v1/detected_field/level/values",
		"GET /loki/api/v1/patterns",
		"GET /loki/api/v1/format_query",
	},
	"tempo": {
		"GET /api/echo", // health check
		"GET /api/status/buildinfo",
		"GET /api/traces/0123456789abcdef0123456789abcdef",
		"GET /api/v2/traces/0123456789abcdef0123456789abcdef",
		"GET /api/search?q=%7B%7D",
		"GET /api/search/tags",
		"GET /api/v2/search/tags",
		"GET /api/search/tag/service.name/values",
		"GET /api/v2/search/tag/.service.name/values",
		"GET /api/metrics/query_range?q=%7B%7D|rate()",
	},
}

// TestGrafanaCallsAreRouted: every URL path Grafana calls for the
// provisioned data sources has a route in the Prometheus, Loki and Tempo
// route tables (on the main listener as internal/server mounts them).
func TestGrafanaCallsAreRouted(t *testing.T) {
	_, dss := loadProvisioning(t)
	mux, owner := apiSurface(t)
	for _, ds := range dss {
		calls := grafanaCalls[ds.UID]
		if len(calls) == 0 {
			t.Errorf("no known calls for data source %q", ds.UID)
		}
		wantOwner := map[string]string{"prometheus": "prometheus", "loki": "loki", "tempo": "tempo"}[ds.UID]
		for _, c := range calls {
			method, target, _ := strings.Cut(c, " ")
			req := httptest.NewRequest(method, target, nil)
			_, pattern := mux.Handler(req)
			if got := owner[pattern]; got != wantOwner {
				t.Errorf("%s data source: %s is routed to %q (pattern %q), want the %s API", ds.UID, c, got, pattern, wantOwner)
			}
		}
	}
}

// apiSurface is the main listener's API surface built from the route
// tables: Loki's and Tempo's Routes, the Prometheus API's own router (its
// route names, captured through Instrument), Alertmanager's prefix and the
// UI's routes. owner maps each pattern to its API.
func apiSurface(t *testing.T) (*http.ServeMux, map[string]string) {
	t.Helper()
	mux := http.NewServeMux()
	owner := map[string]string{}
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	add := func(api, pattern string) {
		if _, dup := owner[pattern]; dup {
			return
		}
		owner[pattern] = api
		mux.Handle(pattern, nop)
	}
	for _, r := range (&lokiapi.API{}).Routes() {
		add("loki", r.Method+" "+r.Path)
	}
	for _, r := range (&tempoapi.API{}).Routes() {
		add("tempo", r.Method+" "+r.Path)
	}
	for _, name := range prometheusRouteNames(t) {
		// Prometheus's router spells parameters ":name"; its one catch-all
		// ("/*path") is the CORS preflight for OPTIONS and routes nothing.
		if strings.Contains(name, "*") {
			continue
		}
		segs := strings.Split(name, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") {
				segs[i] = "{" + s[1:] + "}"
			}
		}
		// The router names a route by path only, so these patterns take any
		// method: which methods a path takes is upstream's code.
		add("prometheus", "/api/v1"+strings.Join(segs, "/"))
	}
	add("alertmanager", "/api/v2/")
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	for _, r := range f.ui.Routes() {
		p := r.Path
		if r.Method != "" {
			p = r.Method + " " + r.Path
		}
		add("ui", p)
	}
	return mux, owner
}

// prometheusRouteNames builds the real Prometheus API over an empty TSDB
// and records the routes it registers as "METHOD /path".
func prometheusRouteNames(t *testing.T) []string {
	t.Helper()
	logger := promslog.NewNopLogger()
	reg := prometheus.NewRegistry()
	cfg := metrics.DefaultConfig()
	if err := cfg.Resolve(".", logger); err != nil {
		t.Fatal(err)
	}
	deps := metrics.Deps{Logger: logger, Registerer: reg}
	db, err := metrics.OpenTSDB(t.TempDir(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	engine, err := metrics.NewEngine(cfg.Query, t.TempDir(), deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })

	var names []string
	promapi.New(promapi.Options{ListenAddress: "127.0.0.1:0", LookbackDelta: 5 * time.Minute, QueryTimeout: time.Minute}, promapi.Deps{
		Logger: logger, Registerer: reg, Gatherer: reg, Engine: engine, DB: db,
		Runtime: func() (bool, time.Time) { return true, time.Now() },
		Ready:   func(h http.HandlerFunc) http.HandlerFunc { return h },
		Instrument: func(name string, h http.HandlerFunc) http.HandlerFunc {
			names = append(names, strings.TrimPrefix(name, "/api/v1"))
			return h
		},
	})
	if !slices.Contains(names, "/query") {
		t.Fatalf("no /query among the Prometheus routes %v", names)
	}
	return names
}

// TestGrafanaDashboardsProvisioning: the dashboard provider reads the
// design doc's mount, its ConfigMap carries the same text, and every data
// source a dashboard of deploy/dashboards names by UID is provisioned.
func TestGrafanaDashboardsProvisioning(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(grafanaDir, "provisioning/dashboards/nxwatcher.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(raw, &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("providers %+v", prov.Providers)
	}
	cmRaw, err := os.ReadFile(filepath.Join(grafanaDir, "grafana-dashboards-config.configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Metadata struct{ Name string }
		Data     map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(cmRaw, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Metadata.Name != "grafana-dashboards-config" || cm.Data["dashboards.yaml"] != string(raw) {
		t.Error("grafana-dashboards-config.configmap.yaml differs from provisioning/dashboards/nxwatcher.yaml")
	}

	_, dss := loadProvisioning(t)
	uids := map[string]string{}
	for _, ds := range dss {
		uids[ds.UID] = ds.Type
	}
	files, err := filepath.Glob("../../deploy/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards (%v)", err)
	}
	refs := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var dash any
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if ds, ok := v["datasource"].(map[string]any); ok {
					uid, _ := ds["uid"].(string)
					typ, _ := ds["type"].(string)
					switch {
					case uid == "-- Grafana --" || strings.HasPrefix(uid, "$") || typ == "datasource":
					case uids[uid] == "":
						t.Errorf("%s: data source uid %q is not provisioned", filepath.Base(file), uid)
					case typ != "" && typ != uids[uid]:
						t.Errorf("%s: data source %q has type %q, provisioned as %q", filepath.Base(file), uid, typ, uids[uid])
					default:
						refs++
					}
				}
				for _, x := range v {
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(dash)
	}
	if refs == 0 {
		t.Error("no data source references found in the dashboards")
	}
}
