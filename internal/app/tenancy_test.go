package app

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// With logs.auth_enabled and traces.multitenancy_enabled, serve keeps each
// X-Scope-OrgID's logs and traces apart end to end: Loki push and query,
// OTLP/HTTP traces and the Tempo API, and refuses requests without one.
func TestServeTenancy(t *testing.T) {
	ts := startServer(t, "logs:\n  auth_enabled: true\ntraces:\n  multitenancy_enabled: true\n")
	now := time.Now()
	nowNS := strconv.FormatInt(now.UnixNano(), 10)
	push := `{"streams":[{"stream":{"app":"shop"},"values":[["` + nowNS + `","order placed"]]}]}`

	if code, body := ts.post(t, "/loki/api/v1/push", "application/json", strings.NewReader(push), nil); code != http.StatusUnauthorized || !strings.Contains(body, "no org id") {
		t.Fatalf("push without X-Scope-OrgID = %d %q, want 401 no org id", code, body)
	}
	if code, body := ts.post(t, "/loki/api/v1/push", "application/json", strings.NewReader(push), map[string]string{"X-Scope-OrgID": "team-a"}); code != http.StatusNoContent {
		t.Fatalf("push as team-a = %d %s", code, body)
	}
	query := func(tenant string) string {
		req, _ := http.NewRequest(http.MethodGet, ts.url+"/loki/api/v1/query_range?query="+`{app="shop"}`+
			"&start="+strconv.FormatInt(now.Add(-time.Hour).UnixNano(), 10)+"&end="+strconv.FormatInt(now.Add(time.Minute).UnixNano(), 10), nil)
		req.Header.Set("X-Scope-OrgID", tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("query as %s = %d %s", tenant, resp.StatusCode, b.String())
		}
		return b.String()
	}
	waitFor(t, 10*time.Second, "team-a's line", func() bool { return strings.Contains(query("team-a"), "order placed") })
	if body := query("team-b"); strings.Contains(body, "order placed") {
		t.Fatalf("team-b sees team-a's line: %s", body)
	}

	_, httpAddr := ts.app.OTLPAddrs()
	span := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},` +
		`"scopeSpans":[{"spans":[{"traceId":"6b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"checkout",` +
		`"kind":2,"startTimeUnixNano":"` + nowNS + `","endTimeUnixNano":"` +
		strconv.FormatInt(now.Add(time.Millisecond).UnixNano(), 10) + `"}]}]}]}`
	otlpPush := func(tenant string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr.String()+"/v1/traces", strings.NewReader(span))
		req.Header.Set("Content-Type", "application/json")
		if tenant != "" {
			req.Header.Set("X-Scope-OrgID", tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := otlpPush(""); code != http.StatusUnauthorized {
		t.Fatalf("OTLP traces without X-Scope-OrgID = %d, want 401", code)
	}
	if code := otlpPush("team-a"); code != http.StatusOK {
		t.Fatalf("OTLP traces as team-a = %d", code)
	}
	traceByID := func(tenant string) int {
		req, _ := http.NewRequest(http.MethodGet, ts.url+"/api/traces/6b8efff798038103d269b633813fc60c", nil)
		if tenant != "" {
			req.Header.Set("X-Scope-OrgID", tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, 10*time.Second, "team-a's trace", func() bool { return traceByID("team-a") == http.StatusOK })
	if code := traceByID("team-b"); code != http.StatusNotFound {
		t.Fatalf("team-b's trace by ID = %d, want 404", code)
	}
	if code := traceByID(""); code != http.StatusUnauthorized {
		t.Fatalf("trace by ID without X-Scope-OrgID = %d, want 401", code)
	}
}
