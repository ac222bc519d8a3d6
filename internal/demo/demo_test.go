package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/deploy/dashboards"
)

// The demo's copy of the rules is the alerting area's file, unchanged.
func TestEmbeddedRulesAreDeployRules(t *testing.T) {
	want, err := os.ReadFile("../../deploy/rules/bana.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, banaRules) {
		t.Fatal("internal/demo/rules/bana.rules.yml differs from deploy/rules/bana.rules.yml: copy it over")
	}
}

func TestScaleRules(t *testing.T) {
	out, err := scaleRules(banaRules, ruleScale(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var groups struct {
		Groups []struct {
			Rules []struct {
				Alert string         `yaml:"alert"`
				For   model.Duration `yaml:"for"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(out, &groups); err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Duration{}
	for _, r := range groups.Groups[0].Rules {
		got[r.Alert] = time.Duration(r.For)
	}
	want := map[string]time.Duration{
		"PodCrashLooping": 5 * time.Second, "HighErrorRate": 5 * time.Second, "PostgreSQLHighConnections": 5 * time.Second,
		"RedisHighMemory": 5 * time.Second, "KafkaUnderReplicated": 10 * time.Second, "HighDiskUsage": 10 * time.Second,
		"IdentityServiceDown": time.Second,
	}
	for a, d := range want {
		if got[a] != d {
			t.Errorf("%s: for %s, want %s", a, got[a], d)
		}
	}
	if same, _ := scaleRules(banaRules, ruleScale(2*time.Hour)); !bytes.Equal(same, banaRules) {
		t.Error("a cycle of an hour or more must keep the rules unchanged")
	}
}

// Each incident window outlasts the longest scaled `for` (10m of an hour).
func TestIncidentSchedule(t *testing.T) {
	cycle := time.Hour
	seen := map[string]time.Duration{}
	for off := time.Duration(0); off < cycle; off += time.Second {
		in := incidentsAt(off, cycle)
		for name, on := range map[string]bool{"burst": in.ErrorBurst, "crash": in.CrashLoop, "redis": in.RedisMemory,
			"kafka": in.KafkaUnderReplicated, "pg": in.PGConnections, "disk": in.DiskFull} {
			if on {
				seen[name] += time.Second
			}
		}
	}
	if len(seen) != 6 {
		t.Fatalf("incidents seen: %v", seen)
	}
	for name, d := range seen {
		if d < 15*time.Minute {
			t.Errorf("%s lasts %s of an hour, want ≥ 15m (the rules' `for` is at most 10m)", name, d)
		}
	}
	if in := incidentsAt(cycle+time.Second, cycle); in != (Incidents{}) {
		t.Errorf("the cycle starts calm, got %+v", in)
	}
}

// The seven alerts of deploy/rules/bana.rules.yml.
var alertNames = []string{
	"PodCrashLooping", "HighErrorRate", "PostgreSQLHighConnections", "RedisHighMemory",
	"KafkaUnderReplicated", "HighDiskUsage", "IdentityServiceDown",
}

// TestDemo runs the demo with a one-minute incident cycle and 1 s scrapes:
// every alert rule fires at least once, and every panel of every dashboard
// gets at least one series or log line through the HTTP APIs Grafana and
// our UI call.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for about a minute")
	}
	d, err := New(Options{
		ListenAddress:  "127.0.0.1:0",
		Rate:           20,
		IncidentCycle:  time.Minute,
		ScrapeInterval: time.Second,
		TickInterval:   250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	readyCh := make(chan struct{})
	go func() { done <- d.Run(ctx, func() { close(readyCh) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if d.tempDir != "" {
			if _, err := os.Stat(d.tempDir); !os.IsNotExist(err) {
				t.Errorf("temp dir %s left behind", d.tempDir)
			}
		}
	})
	select {
	case <-readyCh:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo not ready after 30s")
	}
	start := time.Now()
	c := &apiClient{t: t, base: d.URL()}

	var banner bytes.Buffer
	d.Banner(&banner)
	for _, want := range []string{d.UIURL(), "login:    admin / " + d.adminPw} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, banner.String())
		}
	}

	t.Run("alerts fire", func(t *testing.T) {
		fired := map[string]time.Duration{}
		deadline := time.Now().Add(90 * time.Second)
		for len(fired) < len(alertNames) && time.Now().Before(deadline) {
			var res struct {
				Data struct {
					Alerts []struct {
						Labels map[string]string `json:"labels"`
						State  string            `json:"state"`
					} `json:"alerts"`
				} `json:"data"`
			}
			c.get("/api/v1/alerts", nil, &res)
			for _, a := range res.Data.Alerts {
				if _, ok := fired[a.Labels["alertname"]]; !ok && a.State == "firing" {
					fired[a.Labels["alertname"]] = time.Since(start).Round(time.Second)
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("fired after: %v", fired)
		for _, a := range alertNames {
			if _, ok := fired[a]; !ok {
				t.Errorf("alert %s never fired", a)
			}
		}
		// The ruler hands firing alerts to the embedded Alertmanager.
		var inAM []string
		for deadline := time.Now().Add(15 * time.Second); len(inAM) == 0 && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			var am []struct {
				Labels map[string]string `json:"labels"`
			}
			c.get("/api/v2/alerts", nil, &am)
			for _, a := range am {
				inAM = append(inAM, a.Labels["alertname"])
			}
		}
		if len(inAM) == 0 {
			t.Error("no alert reached the embedded Alertmanager (/api/v2/alerts)")
		}
		t.Logf("in Alertmanager: %v", inAM)
	})

	// Give the service graph's virtual nodes their wait (10s) if the alert
	// loop was quick.
	for time.Since(start) < 20*time.Second {
		time.Sleep(200 * time.Millisecond)
	}
	ds, err := dashboards.Load(dashboards.FS)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	from := start.Add(-10 * time.Second)
	rng := fmt.Sprintf("%ds", int(end.Sub(from).Seconds()))
	globals := dashboards.Globals{Interval: "2s", RateInterval: "10s", Range: rng, Auto: "10s"}
	for _, db := range ds {
		t.Run(db.File, func(t *testing.T) {
			values := c.resolveVariables(db, from, end)
			for _, p := range db.AllPanels() {
				for _, tg := range p.Targets {
					ds := dashboards.TargetDatasource(p, tg)
					var n int
					var q string
					switch ds.Type {
					case "prometheus":
						q = dashboards.Interpolate(tg.Expr, globals, values)
						n = c.promSeries(q, tg.Instant && !tg.Range, from, end)
					case "loki":
						q = dashboards.Interpolate(tg.Expr, globals, values)
						n = c.lokiStreams(q, from, end)
					case "tempo":
						// What Grafana's Tempo service map asks the
						// Prometheus data source.
						q = fmt.Sprintf("sum by (client, server) (rate(traces_service_graph_request_total[%s]))", rng)
						n = c.promSeries(q, true, from, end)
					}
					if n == 0 {
						t.Errorf("panel %q target %s: no data\n  query: %s", p.Title, tg.RefID, q)
					}
				}
			}
		})
	}

	t.Run("service graph edges", func(t *testing.T) {
		var res promResponse
		c.get("/api/v1/query", url.Values{"query": {fmt.Sprintf("sum by (client, server) (increase(traces_service_graph_request_total[%s]))", rng)}}, &res)
		var edges []string
		for _, r := range res.Data.Result {
			edges = append(edges, r.Metric["client"]+"->"+r.Metric["server"])
		}
		for _, want := range []string{"traefik->identity", "traefik->backend", "backend->postgresql", "backend->redis",
			"identity->redis", "backend->kafka", "backend->bullmq-worker", "bullmq-worker->postgresql"} {
			if !slices.Contains(edges, want) {
				t.Errorf("no edge %s in %v", want, edges)
			}
		}
	})
}

type apiClient struct {
	t    *testing.T
	base string
}

type promResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Stream map[string]string `json:"stream"`
			Values []json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

func (c *apiClient) get(path string, q url.Values, out any) {
	c.t.Helper()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Errorf("GET %s: %s: %s", u, resp.Status, b)
		return
	}
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
}

func (c *apiClient) promSeries(q string, instant bool, from, to time.Time) int {
	var res promResponse
	if instant {
		c.get("/api/v1/query", url.Values{"query": {q}, "time": {unix(to)}}, &res)
	} else {
		c.get("/api/v1/query_range", url.Values{"query": {q}, "start": {unix(from)}, "end": {unix(to)}, "step": {"2"}}, &res)
	}
	return len(res.Data.Result)
}

func (c *apiClient) lokiStreams(q string, from, to time.Time) int {
	var res promResponse
	c.get("/loki/api/v1/query_range", url.Values{"query": {q}, "start": {unix(from)}, "end": {unix(to)}, "step": {"2"}, "limit": {"100"}}, &res)
	return len(res.Data.Result)
}

// resolveVariables asks for each variable's values as Grafana does
// (/api/v1/label/<label>/values with match[]) and picks All (the
// variable's allValue) or its saved value, which must be among them.
func (c *apiClient) resolveVariables(d dashboards.Dashboard, from, to time.Time) map[string][]string {
	c.t.Helper()
	vals := map[string][]string{}
	for _, v := range d.Templating.List {
		sel, label, ok := dashboards.LabelValuesQuery(v.QueryString())
		if !ok {
			c.t.Errorf("variable %s: unsupported query %q", v.Name, v.QueryString())
			continue
		}
		q := url.Values{"start": {unix(from)}, "end": {unix(to)}}
		if sel != "" {
			q.Set("match[]", dashboards.Interpolate(sel, dashboards.DefaultGlobals(), vals))
		}
		var res struct {
			Data []string `json:"data"`
		}
		c.get("/api/v1/label/"+label+"/values", q, &res)
		if len(res.Data) == 0 {
			c.t.Errorf("variable %s: %s has no values", v.Name, v.QueryString())
		}
		cur := v.CurrentValues()
		switch {
		case v.IncludeAll && v.AllValue != nil:
			vals[v.Name] = []string{*v.AllValue}
		case len(cur) > 0:
			for _, x := range cur {
				if !slices.Contains(res.Data, x) {
					c.t.Errorf("variable %s: saved value %q not among %v", v.Name, x, res.Data)
				}
			}
			vals[v.Name] = cur
		case len(res.Data) > 0:
			vals[v.Name] = res.Data[:1]
		}
	}
	return vals
}

func unix(t time.Time) string { return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000) }

// With --config.file and --storage.path: the config's same-named scrape job
// gives way to the simulated one, the rules are loaded, and the data
// directory (with the demo's admin password) is kept.
func TestDemoWithConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/serve.yml"
	if err := os.WriteFile(cfg, []byte(`otlp:
  grpc_endpoint: 127.0.0.1:0
  http_endpoint: 127.0.0.1:0
metrics:
  prometheus:
    global: {scrape_interval: 1s, evaluation_interval: 1s}
    scrape_configs:
      - job_name: traefik
        static_configs: [{targets: ['127.0.0.1:1']}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	data := dir + "/data"
	d, err := New(Options{ConfigFile: cfg, StoragePath: data, ListenAddress: "127.0.0.1:0", ScrapeInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := os.Stat(data + "/demo/admin-password"); err != nil {
			t.Errorf("data dir not kept: %v", err)
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("not ready after 30s")
	}
	c := &apiClient{t: t, base: d.URL()}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var res promResponse
		c.get("/api/v1/query", url.Values{"query": {`up{job="traefik"}`}}, &res)
		var instances []string
		for _, r := range res.Data.Result {
			instances = append(instances, r.Metric["instance"])
		}
		if slices.Equal(instances, []string{"nx-traefik.nx-internal:8080"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("traefik job targets %v, want only the simulated one", instances)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []any  `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	c.get("/api/v1/rules", nil, &rules)
	if len(rules.Data.Groups) != 1 || rules.Data.Groups[0].Name != "bana" || len(rules.Data.Groups[0].Rules) != 7 {
		t.Errorf("rules: %+v", rules.Data.Groups)
	}
}

// --backfill writes the metric history before the live simulation: an
// hour (one incident cycle) of 15 s scrapes, incidents included, queryable
// once Run is ready.
func TestDemoBackfill(t *testing.T) {
	d, err := New(Options{ListenAddress: "127.0.0.1:0", Backfill: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready after 60s")
	}
	c := &apiClient{t: t, base: d.URL()}
	for q, min := range map[string]float64{
		`count_over_time(up{job="traefik"}[2h])`:                                        200, // 240 scrapes of 15 s, a few at the edges aside
		`sum(increase(traefik_service_requests_total[30m] offset 10m))`:                 100,
		`max(max_over_time(kafka_server_replicamanager_underreplicatedpartitions[2h]))`: 1,
		`min(min_over_time(up{service="identity"}[2h])) + 1`:                            1, // identity was down at least once: min is 0
	} {
		if v := resultValue(t, q, c); v < min {
			t.Errorf("%s = %g, want ≥ %g", q, v, min)
		}
	}
	if v := resultValue(t, `min_over_time(up{service="identity"}[2h])`, c); v != 0 {
		t.Errorf("identity never down in the backfilled history (min up = %g)", v)
	}
}

// resultValue is the single value of an instant query.
func resultValue(t *testing.T, q string, c *apiClient) float64 {
	t.Helper()
	var res struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	c.get("/api/v1/query", url.Values{"query": {q}}, &res)
	if len(res.Data.Result) != 1 {
		t.Errorf("%s: %d series, want 1", q, len(res.Data.Result))
		return math.NaN()
	}
	s, _ := res.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Errorf("%s: value %q", q, s)
	}
	return v
}
