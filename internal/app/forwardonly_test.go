package app

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// logs.mode and traces.mode forward-only: the upstream serve keeps no store
// (its queries are refused, no Tempo API), and every line and span it
// accepted arrives at the downstream serve, with the tenant it was pushed as.
func TestForwardOnlyToASecondServe(t *testing.T) {
	downstream := startServer(t, "logs:\n  auth_enabled: true\ntraces:\n  multitenancy_enabled: true\n")
	grpcAddr, _ := downstream.app.OTLPAddrs()
	upstream := startServer(t, "logs:\n  auth_enabled: true\n  mode: forward-only\n  forward:\n    - url: "+downstream.url+"/loki/api/v1/push\n"+
		"traces:\n  multitenancy_enabled: true\n  mode: forward-only\n  forward:\n    - endpoint: "+grpcAddr.String()+"\n      protocol: grpc\n      insecure: true\n")
	for _, dir := range []string{"logs", "traces"} {
		if entries, err := readDirNames(upstream.dataDir + "/" + dir); err == nil && len(entries) > 0 {
			t.Errorf("forward-only upstream has a %s store: %v", dir, entries)
		}
	}

	now := time.Now()
	nowNS := strconv.FormatInt(now.UnixNano(), 10)
	team := map[string]string{"X-Scope-OrgID": "team-a"}
	code, body := upstream.post(t, "/loki/api/v1/push", "application/json",
		strings.NewReader(`{"streams":[{"stream":{"app":"fwd"},"values":[["`+nowNS+`","forwarded only"]]}]}`), team)
	if code != http.StatusNoContent {
		t.Fatalf("push to the forward-only serve = %d %s", code, body)
	}
	if code, body := upstream.getAs(t, "/loki/api/v1/query_range?query=%7Bapp%3D%22fwd%22%7D", "team-a"); code != http.StatusBadRequest || !strings.Contains(body, "forward-only") {
		t.Errorf("query on the forward-only serve = %d %q, want 400 naming forward-only", code, body)
	}
	waitFor(t, 20*time.Second, "the line at the downstream serve as team-a", func() bool {
		code, body := downstream.getAs(t, "/loki/api/v1/query_range?query=%7Bapp%3D%22fwd%22%7D", "team-a")
		return code == http.StatusOK && strings.Contains(body, "forwarded only")
	})
	if _, body := downstream.getAs(t, "/loki/api/v1/query_range?query=%7Bapp%3D%22fwd%22%7D", "team-b"); strings.Contains(body, "forwarded only") {
		t.Error("the forwarded line reached tenant team-b")
	}

	_, httpAddr := upstream.app.OTLPAddrs()
	span := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"fwd"}}]},` +
		`"scopeSpans":[{"spans":[{"traceId":"7b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"hop",` +
		`"kind":2,"startTimeUnixNano":"` + nowNS + `","endTimeUnixNano":"` +
		strconv.FormatInt(now.Add(time.Millisecond).UnixNano(), 10) + `"}]}]}]}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr.String()+"/v1/traces", strings.NewReader(span))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Scope-OrgID", "team-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP traces to the forward-only serve = %d", resp.StatusCode)
	}
	if code, _ := upstream.getAs(t, "/api/traces/7b8efff798038103d269b633813fc60c", "team-a"); code == http.StatusOK {
		t.Error("the forward-only serve answered a trace by ID")
	}
	waitFor(t, 20*time.Second, "the span at the downstream serve as team-a", func() bool {
		code, body := downstream.getAs(t, "/api/traces/7b8efff798038103d269b633813fc60c", "team-a")
		return code == http.StatusOK && strings.Contains(body, `"hop"`)
	})
	if code, _ := downstream.getAs(t, "/api/traces/7b8efff798038103d269b633813fc60c", "team-b"); code != http.StatusNotFound {
		t.Errorf("team-b's trace by ID at the downstream serve = %d, want 404", code)
	}
}

// A reload adds a logs.forward endpoint to a serve started without one.
func TestReloadAddsAForwardEndpoint(t *testing.T) {
	downstream := startServer(t, "")
	upstream := startServer(t, "logs:\n  retention: 3d\n")
	writeConfig(t, upstream.configFile, "logs:\n  retention: 3d\n  forward:\n    - name: central\n      url: "+downstream.url+"/loki/api/v1/push\n")
	if code, body := upstream.post(t, "/-/reload", "", nil, nil); code != http.StatusOK {
		t.Fatalf("reload = %d %s", code, body)
	}
	nowNS := strconv.FormatInt(time.Now().UnixNano(), 10)
	code, body := upstream.post(t, "/loki/api/v1/push", "application/json",
		strings.NewReader(`{"streams":[{"stream":{"app":"late"},"values":[["`+nowNS+`","after the reload"]]}]}`), nil)
	if code != http.StatusNoContent {
		t.Fatalf("push = %d %s", code, body)
	}
	waitFor(t, 20*time.Second, "the line at the endpoint the reload added", func() bool {
		code, body := downstream.get(t, "/loki/api/v1/query_range?query=%7Bapp%3D%22late%22%7D")
		return code == http.StatusOK && strings.Contains(body, "after the reload")
	})
}

func (ts *testServer) getAs(t *testing.T, path, tenant string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.url+path, nil)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return resp.StatusCode, b.String()
}

func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}
