package lokiapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// tenantEnv is an API over a tenancy.Set of real log stores, as serve
// builds it with logs.auth_enabled.
type tenantEnv struct {
	api  *API
	set  *tenancy.Set[*logstore.DB]
	root string
	srv  *httptest.Server
	reg  *prometheus.Registry
}

func newTenantEnv(t *testing.T, auth bool, mod func(*Config)) *tenantEnv {
	t.Helper()
	cfg := DefaultConfig()
	cfg.AuthEnabled = auth
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	root := filepath.Join(t.TempDir(), "logs")
	set := tenancy.NewSet(root, func(tenant, dir string) (*logstore.DB, error) {
		opts := cfg.StoreOptions()
		opts.Now = func() time.Time { return now }
		return logstore.Open(dir, opts, logstore.Deps{Registerer: tenancy.Registerer(reg, tenant, auth)})
	})
	t.Cleanup(func() { set.Close() })
	api, err := New(cfg, Deps{Registerer: reg, Tenants: TenantStores(set), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return &tenantEnv{api: api, set: set, root: root, srv: serve(t, api), reg: reg}
}

func (e *tenantEnv) do(t *testing.T, method, path, tenant string, params url.Values, body []byte) (int, string) {
	t.Helper()
	u := e.srv.URL + path
	if params != nil {
		u += "?" + params.Encode()
	}
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func tenantJSONPush(app, line string, at time.Time) []byte {
	return []byte(fmt.Sprintf(`{"streams":[{"stream":{"app":%q},"values":[[%q,%q]]}]}`, app, fmt.Sprint(at.UnixNano()), line))
}

func (e *tenantEnv) push(t *testing.T, tenant, app, line string) {
	t.Helper()
	if code, body := e.do(t, http.MethodPost, "/loki/api/v1/push", tenant, nil, tenantJSONPush(app, line, ts(1))); code != http.StatusNoContent {
		t.Fatalf("push as %q: %d %s", tenant, code, body)
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	e := newTenantEnv(t, true, nil)
	e.push(t, "team-a", "app-a", "secret of a")
	e.push(t, "team-b", "app-b", "secret of b")

	for _, tc := range []struct {
		tenant, own, other string
	}{{"team-a", "a", "b"}, {"team-b", "b", "a"}} {
		t.Run(tc.tenant, func(t *testing.T) {
			checks := []struct {
				path   string
				params url.Values
			}{
				{"/loki/api/v1/query_range", rangeParams(`{app=~".+"}`)},
				{"/loki/api/v1/query", url.Values{"query": {`sum by (app) (count_over_time({app=~".+"}[2h]))`}, "time": {fmt.Sprint(now.Unix())}}},
				{"/loki/api/v1/labels", url.Values{"start": {fmt.Sprint(ts(0).UnixNano())}}},
				{"/loki/api/v1/label/app/values", url.Values{"start": {fmt.Sprint(ts(0).UnixNano())}}},
				{"/loki/api/v1/series", url.Values{"match[]": {`{app=~".+"}`}, "start": {fmt.Sprint(ts(0).UnixNano())}}},
				{"/loki/api/v1/index/volume", rangeParams(`{app=~".+"}`)},
				{"/loki/api/v1/detected_labels", url.Values{"start": {fmt.Sprint(ts(0).UnixNano())}}},
				{"/loki/api/v1/detected_fields", rangeParams(`{app=~".+"}`)},
				{"/loki/api/v1/patterns", rangeParams(`{app=~".+"}`)},
			}
			for _, c := range checks {
				code, body := e.do(t, http.MethodGet, c.path, tc.tenant, c.params, nil)
				if code != http.StatusOK {
					t.Fatalf("%s: %d %s", c.path, code, body)
				}
				if strings.Contains(body, "app-"+tc.other) || strings.Contains(body, "secret of "+tc.other) {
					t.Errorf("%s as %s shows the other tenant's data: %s", c.path, tc.tenant, body)
				}
				if c.path != "/loki/api/v1/labels" && c.path != "/loki/api/v1/detected_labels" && c.path != "/loki/api/v1/detected_fields" && c.path != "/loki/api/v1/patterns" &&
					!strings.Contains(body, "app-"+tc.own) {
					t.Errorf("%s as %s misses its own data: %s", c.path, tc.tenant, body)
				}
			}
		})
	}

	// A tenant that never pushed sees nothing, and gets no directory.
	code, body := e.do(t, http.MethodGet, "/loki/api/v1/query_range", "nobody", rangeParams(`{app=~".+"}`), nil)
	if code != 200 || strings.Contains(body, "secret") {
		t.Fatalf("unknown tenant: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(tenancy.TenantsDir(e.root), "nobody")); !os.IsNotExist(err) {
		t.Fatalf("a query created the unknown tenant's directory: %v", err)
	}
	// Each tenant's data is in its own directory; fake's place is untouched.
	for _, tn := range []string{"team-a", "team-b"} {
		if _, err := os.Stat(filepath.Join(tenancy.TenantsDir(e.root), tn, "wal")); err != nil {
			t.Errorf("tenant %s has no store directory: %v", tn, err)
		}
	}
}

func TestTenancyRefusals(t *testing.T) {
	e := newTenantEnv(t, true, nil)
	for _, tc := range []struct {
		method, path, tenant string
		params               url.Values
		body                 []byte
		code                 int
		msg                  string
	}{
		{http.MethodPost, "/loki/api/v1/push", "", nil, tenantJSONPush("x", "l", ts(1)), 401, "no org id"},
		{http.MethodGet, "/loki/api/v1/query_range", "", rangeParams(`{app="x"}`), nil, 401, "no org id"},
		{http.MethodGet, "/loki/api/v1/labels", "", nil, nil, 401, "no org id"},
		{http.MethodGet, "/loki/api/v1/tail", "", url.Values{"query": {`{app="x"}`}}, nil, 401, "no org id"},
		{http.MethodPost, "/otlp/v1/logs", "", nil, []byte("{}"), 401, "no org id"},
		{http.MethodPost, "/loki/api/v1/push", "../etc", nil, tenantJSONPush("x", "l", ts(1)), 400, "tenant ID"},
		{http.MethodGet, "/loki/api/v1/series", "a/b", url.Values{"match[]": {`{app="x"}`}}, nil, 400, "tenant ID"},
		{http.MethodGet, "/loki/api/v1/query_range", "..", rangeParams(`{app="x"}`), nil, 400, "tenant ID"},
		{http.MethodGet, "/loki/api/v1/labels", strings.Repeat("x", 151), nil, nil, 400, "tenant ID"},
	} {
		code, body := e.do(t, tc.method, tc.path, tc.tenant, tc.params, tc.body)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s %s as %q: %d %q, want %d %q", tc.method, tc.path, tc.tenant, code, body, tc.code, tc.msg)
		}
	}
	if _, err := os.Stat(tenancy.TenantsDir(e.root)); !os.IsNotExist(err) {
		t.Fatalf("refused requests created tenant directories: %v", err)
	}
	// buildinfo needs no tenant (Grafana reads it before anything else).
	if code, body := e.do(t, http.MethodGet, "/loki/api/v1/status/buildinfo", "", nil, nil); code != 200 {
		t.Fatalf("buildinfo: %d %s", code, body)
	}
}

func TestTenancyOffIsFakeInTodaysDirectory(t *testing.T) {
	e := newTenantEnv(t, false, nil)
	// The header is ignored, as upstream does with auth_enabled: false.
	e.push(t, "team-a", "app-a", "line one")
	e.push(t, "", "app-b", "line two")
	code, body := e.do(t, http.MethodGet, "/loki/api/v1/query_range", "whoever", rangeParams(`{app=~".+"}`), nil)
	if code != 200 || !strings.Contains(body, "line one") || !strings.Contains(body, "line two") {
		t.Fatalf("query: %d %s", code, body)
	}
	if got := e.set.Tenants(); len(got) != 1 || got[0] != tenancy.Default {
		t.Fatalf("tenants = %v, want only fake", got)
	}
	if _, err := os.Stat(tenancy.TenantsDir(e.root)); !os.IsNotExist(err) {
		t.Fatalf("tenancy off made a tenants directory: %v", err)
	}
	// The data is where the single store always kept it: a plain store on
	// the old directory reads it after a restart.
	e.api.Close()
	e.set.Close()
	db, err := logstore.Open(e.root, DefaultConfig().StoreOptions(), logstore.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	api, err := New(DefaultConfig(), Deps{Store: db, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	plain := &env{api: api, db: db, srv: serve(t, api)}
	code, b := plain.get(t, "/loki/api/v1/query_range", rangeParams(`{app=~".+"}`))
	if code != 200 || !strings.Contains(string(b), "line one") {
		t.Fatalf("after reopening the old directory: %d %s", code, b)
	}
}

func TestTailSeesOnlyItsTenant(t *testing.T) {
	e := newTenantEnv(t, true, nil)
	e.push(t, "team-a", "app", "early a")
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/loki/api/v1/tail?" + url.Values{"query": {`{app="app"}`}, "start": {fmt.Sprint(ts(0).UnixNano())}}.Encode()
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), u, http.Header{"X-Scope-OrgID": {"team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first tailResponse
	if err := conn.ReadJSON(&first); err != nil || len(first.Streams) != 1 || first.Streams[0].Values[0][1] != "early a" {
		t.Fatalf("backfill %+v %v", first, err)
	}
	e.push(t, "team-b", "app", "line of b")
	e.push(t, "team-a", "app", "line of a")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var msg tailResponse
	if err := conn.ReadJSON(&msg); err != nil {
		t.Fatal(err)
	}
	if len(msg.Streams) != 1 || msg.Streams[0].Values[0][1] != "line of a" {
		t.Fatalf("tail of team-a got %+v", msg)
	}
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}

func TestOTLPConsumerTakesTheContextsTenant(t *testing.T) {
	e := newTenantEnv(t, true, nil)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "svc-a")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(ts(1)))
	lr.Body().SetStr("otlp line of a")
	if err := e.api.ConsumeLogs(tenancy.NewContext(context.Background(), "team-a"), ld); err != nil {
		t.Fatal(err)
	}
	if err := e.api.ConsumeLogs(context.Background(), ld); !errors.Is(err, otlp.ErrInvalidInput) || !strings.Contains(err.Error(), "no org id") {
		t.Fatalf("without a tenant: %v", err)
	}
	_, body := e.do(t, http.MethodGet, "/loki/api/v1/query_range", "team-a", rangeParams(`{service_name="svc-a"}`), nil)
	if !strings.Contains(body, "otlp line of a") {
		t.Fatalf("team-a misses its OTLP line: %s", body)
	}
	_, body = e.do(t, http.MethodGet, "/loki/api/v1/query_range", "team-b", rangeParams(`{service_name="svc-a"}`), nil)
	if strings.Contains(body, "otlp line of a") {
		t.Fatalf("team-b sees team-a's OTLP line: %s", body)
	}
}

func TestQueryConcurrencyLimit(t *testing.T) {
	e := newTenantEnv(t, false, func(c *Config) {
		c.Querier = QuerierConfig{MaxConcurrent: 1, MaxOutstandingPerTenant: 2, QueueTimeout: model.Duration(time.Minute)}
	})
	e.push(t, "", "app", "a line")
	// Hold the one slot, then send a bounded burst of 8 queries: 2 wait,
	// 6 are refused at once with 429.
	release, err := e.api.gate.Load().Enter(context.Background(), tenancy.Default)
	if err != nil {
		t.Fatal(err)
	}
	const burst = 8
	codes := make(chan int, burst)
	bodies := make(chan string, burst)
	var wg sync.WaitGroup
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := e.do(t, http.MethodGet, "/loki/api/v1/query_range", "", rangeParams(`{app="app"}`), nil)
			codes <- code
			if code != 200 {
				bodies <- body
			}
		}()
	}
	for testutil.ToFloat64(e.api.m.queriesRejected.WithLabelValues("queue_full")) < burst-2 {
		time.Sleep(5 * time.Millisecond) // poll; bounded by the test timeout
	}
	release()
	wg.Wait()
	close(codes)
	close(bodies)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	if n[200] != 2 || n[429] != burst-2 {
		t.Fatalf("codes %v, want 2×200 and %d×429", n, burst-2)
	}
	for b := range bodies {
		if !strings.Contains(b, "too many outstanding requests") {
			t.Fatalf("429 body %q", b)
		}
	}
	// A wait that outlasts queue_timeout is refused too.
	e2 := newTenantEnv(t, false, func(c *Config) {
		c.Querier = QuerierConfig{MaxConcurrent: 1, MaxOutstandingPerTenant: 5, QueueTimeout: model.Duration(20 * time.Millisecond)}
	})
	rel, _ := e2.api.gate.Load().Enter(context.Background(), tenancy.Default)
	code, body := e2.do(t, http.MethodGet, "/loki/api/v1/labels", "", nil, nil)
	rel()
	if code != 429 || testutil.ToFloat64(e2.api.m.queriesRejected.WithLabelValues("queue_timeout")) != 1 {
		t.Fatalf("queue timeout: %d %s", code, body)
	}
}

func TestForwardOnly(t *testing.T) {
	var mu sync.Mutex
	var got []AcceptedStream
	fail := false
	api, err := New(DefaultConfig(), Deps{Now: func() time.Time { return now }, Forward: func(s []AcceptedStream) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("backlog disk full")
		}
		got = append(got, s...)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	e := &tenantEnv{api: api, srv: serve(t, api)}
	if !api.Ready() {
		t.Fatal("forward-only node not ready")
	}
	e.push(t, "", "app", "forwarded line")
	mu.Lock()
	if len(got) != 1 || got[0].Tenant != tenancy.Default || got[0].Entries[0].Line != "forwarded line" || got[0].Labels.Get("service_name") != "app" {
		t.Fatalf("forwarded %+v", got)
	}
	mu.Unlock()
	// Validations that need no store still apply, and refused lines are not forwarded.
	code, body := e.do(t, http.MethodPost, "/loki/api/v1/push", "", nil, tenantJSONPush("app", "too old", now.Add(-30*24*time.Hour)))
	if code != 400 || !strings.Contains(body, "timestamp too old") {
		t.Fatalf("old line: %d %s", code, body)
	}
	mu.Lock()
	if len(got) != 1 {
		t.Fatalf("refused line forwarded: %+v", got)
	}
	fail = true
	mu.Unlock()
	if code, body := e.do(t, http.MethodPost, "/loki/api/v1/push", "", nil, tenantJSONPush("app", "x", ts(1))); code != 503 {
		t.Fatalf("forward failure: %d %s", code, body)
	}
	for _, path := range []string{"/loki/api/v1/query_range", "/loki/api/v1/labels", "/loki/api/v1/series", "/loki/api/v1/tail"} {
		code, body := e.do(t, http.MethodGet, path, "", rangeParams(`{app="app"}`), nil)
		if code != 400 || !strings.Contains(body, "forward-only") {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	// auth_enabled needs per-tenant stores; a single store is refused.
	cfg := DefaultConfig()
	cfg.AuthEnabled = true
	if _, err := New(cfg, Deps{Store: &struct{ Store }{}}); err == nil {
		t.Fatal("auth_enabled with one store accepted")
	}
	if _, err := New(DefaultConfig(), Deps{}); err == nil {
		t.Fatal("no store and no forwarder accepted")
	}
}

func TestAuthEnabledIsRestartOnly(t *testing.T) {
	e := newTenantEnv(t, true, nil)
	cfg := DefaultConfig()
	if err := e.api.ApplyConfig(cfg); err != nil {
		t.Fatalf("a reload that turns auth_enabled off: %v", err)
	}
	// The stores were opened per tenant: tenancy stays on until a restart.
	if code, body := e.do(t, http.MethodGet, "/loki/api/v1/labels", "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("request without X-Scope-OrgID after the reload: %d %s", code, body)
	}
	cfg.AuthEnabled = true
	cfg.Querier.MaxConcurrent = 7
	if err := e.api.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if e.api.gate.Load().Config().MaxConcurrent != 7 {
		t.Fatal("reload did not apply querier.max_concurrent")
	}
}

func TestIngestionRateIsPerTenant(t *testing.T) {
	e := newTenantEnv(t, true, func(c *Config) {
		c.Limits.IngestionRateMB, c.Limits.IngestionBurstSizeMB = 0.0001, 0.0001 // ~104 bytes
	})
	line := strings.Repeat("x", 80)
	e.push(t, "team-a", "app", line)
	code, body := e.do(t, http.MethodPost, "/loki/api/v1/push", "team-a", nil, tenantJSONPush("app", line+"y", ts(2)))
	if code != 429 || !strings.Contains(body, "for user team-a") {
		t.Fatalf("team-a over its rate: %d %s", code, body)
	}
	// team-b has its own bucket.
	e.push(t, "team-b", "app", line)
}
