package alerting

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	"github.com/prometheus/alertmanager/api/v2/client/general"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
)

// apiMetricNames are the families api.New registers.
var apiMetricNames = []string{
	"alertmanager_alerts_invalid_total",
	"alertmanager_alerts_received_total",
	"alertmanager_http_concurrency_limit_exceeded_total",
	"alertmanager_http_requests_in_flight",
}

func gatherNamed(t *testing.T, g prometheus.Gatherer, names []string) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		for _, n := range names {
			if mf.GetName() == n {
				out[n] = mf
			}
		}
	}
	return out
}

// New does not build the API v2; its metrics are exported at zero from
// the start; the first request builds it, and the status it answers
// carries the Alertmanager's start time as uptime, not the build time.
func TestAPIBuiltOnFirstRequest(t *testing.T) {
	ta := startAM(t, t.TempDir(), defaultAlertmanagerYAML)
	if ta.am.api.built() {
		t.Fatal("API v2 built by New; want it built on the first request (ADR 0087)")
	}
	before := gatherNamed(t, ta.reg, apiMetricNames)
	if len(before) != len(apiMetricNames) {
		t.Fatalf("before the first request, exported %d of the API's metric families %v", len(before), apiMetricNames)
	}
	for name, mf := range before {
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue() + m.GetGauge().GetValue(); v != 0 {
				t.Errorf("%s = %v before the API exists", name, v)
			}
		}
	}
	// The first request comes well after start-up.
	for time.Since(ta.am.startTime) < 20*time.Millisecond {
		time.Sleep(time.Millisecond)
	}
	st, err := ta.client.General.GetStatus(general.NewGetStatusParams().WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if !ta.am.api.built() {
		t.Fatal("API not built after a request")
	}
	if got, want := time.Time(*st.Payload.Uptime), ta.am.startTime.Truncate(time.Millisecond); !got.Equal(want) {
		t.Errorf("status uptime = %s, want the Alertmanager's start %s", got, want)
	}
	if !strings.Contains(*st.Payload.Config.Original, "receivers") {
		t.Errorf("status config.original = %q, want the alertmanager.yml in force", *st.Payload.Config.Original)
	}
	// After the build, the API's own collectors are exported (and count).
	resp, err := http.Post(ta.srv.URL+"/api/v2/alerts", "application/json",
		strings.NewReader(`[{"labels":{"alertname":"A"},"startsAt":"`+time.Now().Format(time.RFC3339)+`"}]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post alerts: %s", resp.Status)
	}
	if got := metricValue(t, ta.reg, "alertmanager_alerts_received_total", map[string]string{"status": "firing"}); got != 1 {
		t.Errorf("alertmanager_alerts_received_total{status=firing} = %v after one posted alert, want 1", got)
	}
}

// The zero-valued families exported before the API exists have the names,
// help, types and labels of the ones api.New registers.
func TestLazyAPIMetricsMatchUpstream(t *testing.T) {
	ta := startAM(t, t.TempDir(), defaultAlertmanagerYAML)
	upstream := prometheus.NewRegistry()
	if _, err := api.New(eagerOptions(ta.am, upstream)); err != nil {
		t.Fatal(err)
	}
	want := gatherNamed(t, upstream, apiMetricNames)
	got := gatherNamed(t, ta.reg, apiMetricNames)
	if len(want) != len(apiMetricNames) {
		t.Fatalf("api.New registers %d of %v: update apiMetricNames and newAPIMetrics", len(want), apiMetricNames)
	}
	mfs, err := upstream.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != len(apiMetricNames) {
		t.Errorf("api.New registers %d families, newAPIMetrics covers %d", len(mfs), len(apiMetricNames))
	}
	for _, name := range apiMetricNames {
		for _, mf := range []*dto.MetricFamily{got[name], want[name]} {
			for _, m := range mf.GetMetric() {
				if m.Counter != nil {
					m.Counter.CreatedTimestamp = nil // when each was made
				}
			}
		}
		if got[name].String() != want[name].String() {
			t.Errorf("%s:\n got  %s\n want %s", name, got[name], want[name])
		}
	}
}

func eagerOptions(a *Alertmanager, reg prometheus.Registerer) api.Options {
	return api.Options{
		Alerts:          a.alerts,
		Silences:        a.silences,
		GroupMutedFunc:  a.groupMarker.Muted,
		Registry:        reg,
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d"}, []string{"handler", "method", "code"}),
		GroupFunc: func(ctx context.Context, rf func(*dispatch.Route) bool, af func(*alert.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
			return a.dispatcher.Load().Groups(ctx, rf, af)
		},
	}
}

var uptimeField = regexp.MustCompile(`"uptime":"[^"]*"`)

// The API built on first use answers every read endpoint byte for byte as
// one built at start-up over the same state (status apart from its uptime).
func TestLazyAPIAnswersAsEager(t *testing.T) {
	ta := startAM(t, t.TempDir(), defaultAlertmanagerYAML)
	eager, err := api.New(eagerOptions(ta.am, prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	// The status function swap hands the API.
	eager.Update(ta.am.Config(), func(ctx context.Context, ls model.LabelSet) {
		ta.am.inhibitor.Load().Mutes(ctx, ls)
		ta.am.silencer.Mutes(ctx, ls)
	})
	eagerSrv := httptest.NewServer(eager.Register(route.New(), "/"))
	defer eagerSrv.Close()

	// State to read back: an alert and a silence, posted through the lazy API.
	now := time.Now().UTC()
	for _, p := range []struct{ path, body string }{
		{"/api/v2/alerts", `[{"labels":{"alertname":"A","severity":"critical"},"annotations":{"summary":"s"},"startsAt":"` + now.Format(time.RFC3339) + `"}]`},
		{"/api/v2/silences", `{"matchers":[{"name":"alertname","value":"B","isRegex":false}],"startsAt":"` + now.Format(time.RFC3339) + `","endsAt":"` + now.Add(time.Hour).Format(time.RFC3339) + `","createdBy":"t","comment":"c"}`},
	} {
		resp, err := http.Post(ta.srv.URL+p.path, "application/json", strings.NewReader(p.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post %s: %s %s", p.path, resp.Status, b)
		}
	}
	get := func(base, path string) (int, http.Header, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, path := range []string{
		"/api/v2/status", "/api/v2/receivers", "/api/v2/alerts", "/api/v2/alerts?active=true&filter=alertname%3D%22A%22",
		"/api/v2/alerts/groups", "/api/v2/silences", "/api/v2/alerts?filter=bad%7B", "/api/v2/silence/not-a-uuid",
	} {
		ls, lh, lb := get(ta.srv.URL, path)
		es, eh, eb := get(eagerSrv.URL, path)
		if path == "/api/v2/status" {
			want := `"uptime":"` + strfmt.DateTime(ta.am.startTime).String() + `"`
			if got := uptimeField.FindString(lb); got != want {
				t.Errorf("status uptime: got %s, want %s", got, want)
			}
			lb, eb = uptimeField.ReplaceAllString(lb, "UPTIME"), uptimeField.ReplaceAllString(eb, "UPTIME")
		}
		if ls != es || lb != eb {
			t.Errorf("GET %s:\n lazy  %d %s\n eager %d %s", path, ls, lb, es, eb)
		}
		for _, h := range []string{"Content-Type", "Cache-Control"} {
			if lh.Get(h) != eh.Get(h) {
				t.Errorf("GET %s: %s lazy %q, eager %q", path, h, lh.Get(h), eh.Get(h))
			}
		}
	}
}

// A config applied before the first request is the one the API reports
// once built, and one applied after is handed over as well.
func TestLazyAPIGetsConfigApplied(t *testing.T) {
	ta := startAM(t, t.TempDir(), defaultAlertmanagerYAML)
	receivers := func() []string {
		t.Helper()
		resp, err := http.Get(ta.srv.URL + "/api/v2/receivers")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		names := regexp.MustCompile(`"name":"([^"]*)"`).FindAllStringSubmatch(string(b), -1)
		var out []string
		for _, n := range names {
			out = append(out, n[1])
		}
		sort.Strings(out)
		return slices.Compact(out) // a receiver's integrations are named too
	}
	apply := func(yaml string) {
		t.Helper()
		cfg := ta.am.cfg
		cfg.Alertmanager.Text = yaml
		if err := ta.am.ApplyConfig(cfg); err != nil {
			t.Fatal(err)
		}
	}
	apply("route: {receiver: one}\nreceivers: [{name: one}, {name: two}]\n")
	if ta.am.api.built() {
		t.Fatal("ApplyConfig built the API")
	}
	if got := strings.Join(receivers(), ","); got != "one,two" {
		t.Errorf("receivers after the first build = %s, want one,two", got)
	}
	apply("route: {receiver: three}\nreceivers: [{name: three}]\n")
	if got := strings.Join(receivers(), ","); got != "three" {
		t.Errorf("receivers after a later reload = %s, want three", got)
	}
}

// Concurrent first requests build the API once and all get answers.
func TestLazyAPIConcurrentFirstRequests(t *testing.T) {
	ta := startAM(t, t.TempDir(), defaultAlertmanagerYAML)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Go(func() {
			resp, err := http.Get(ta.srv.URL + "/api/v2/status")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("request %d: %d", i, c)
		}
	}
	if n := len(ta.am.api.metrics.live); n != len(apiMetricNames) {
		t.Errorf("%d API collectors after concurrent builds, want %d (built once)", n, len(apiMetricNames))
	}
}
