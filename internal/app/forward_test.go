package app

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/config"
)

// traces.forward: a span accepted by one serve is exported over OTLP to a
// second serve, which answers it by trace ID like any span it received.
func TestTracesForwardToASecondServe(t *testing.T) {
	downstream := startServer(t, "")
	grpcAddr, _ := downstream.app.OTLPAddrs()
	upstream := startServer(t, "traces:\n  forward:\n    - endpoint: "+grpcAddr.String()+"\n      protocol: grpc\n      insecure: true\n")
	_, httpAddr := upstream.app.OTLPAddrs()

	now := time.Now()
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"fwd"}}]},` +
		`"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"hop",` +
		`"kind":2,"startTimeUnixNano":"` + strconv.FormatInt(now.UnixNano(), 10) + `","endTimeUnixNano":"` +
		strconv.FormatInt(now.Add(time.Millisecond).UnixNano(), 10) + `"}]}]}]}`
	resp, err := http.Post("http://"+httpAddr.String()+"/v1/traces", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP export to the upstream serve = %d", resp.StatusCode)
	}
	for _, ts := range []*testServer{upstream, downstream} {
		waitFor(t, 20*time.Second, "the span by trace ID", func() bool {
			code, body := ts.get(t, "/api/traces/5b8efff798038103d269b633813fc60c")
			return code == http.StatusOK && strings.Contains(body, `"hop"`)
		})
	}
	// Counted once the downstream answered, which can be after it serves the
	// span: poll.
	series := `nxwatcher_traces_forward_sent_spans_total{endpoint="grpc_` + grpcAddr.String() + `"}`
	waitFor(t, 10*time.Second, series+" = 1", func() bool { return upstream.metricValue(t, series) == 1 })
}

func TestForwardConfigErrorsAtLoad(t *testing.T) {
	for text, want := range map[string]string{
		"logs:\n  forward:\n    - url: not a url\n":                                 "logs.forward[0]",
		"logs:\n  bogus: 1\n":                                                       "bogus",
		"logs:\n  forward:\n    - url: http://x/loki/api/v1/push\n      bogus: 1\n": "bogus",
	} {
		_, err := config.Parse([]byte(text), t.TempDir(), promslog.NewNopLogger())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want one naming %q", text, err, want)
		}
	}
	c, err := config.Parse([]byte("logs:\n  retention: 3d\n"), t.TempDir(), promslog.NewNopLogger())
	if err != nil || c.Logs.Limits.MaxLineSize == 0 || c.Logs.Retention.String() != "3d" {
		t.Errorf("a partial logs section keeps the other defaults: %+v %v", c.Logs.Limits, err)
	}
}

func TestTracesForwardConfigErrorsAtLoad(t *testing.T) {
	_, err := config.Parse([]byte("traces:\n  forward:\n    - endpoint: http://x:4317\n      protocol: grpc\n"), t.TempDir(), promslog.NewNopLogger())
	if err == nil || !strings.Contains(err.Error(), "traces.forward[0]") {
		t.Fatalf("a grpc endpoint with a scheme: err = %v, want a traces.forward[0] error", err)
	}
}

// metrics.mode: agent keeps only a WAL that feeds remote_write, as
// prometheus --agent: its own scrapes reach a second serve, and its query
// API answers as an agent's does.
func TestMetricsAgentModeRemoteWrites(t *testing.T) {
	downstream := startServer(t, "")
	agent := startServer(t, "metrics:\n  mode: agent\n  prometheus:\n    global: {scrape_interval: 1s}\n"+
		"    scrape_configs:\n      - job_name: agent-self\n        static_configs: [{targets: ['"+downstream.app.Addr().String()+"']}]\n"+
		"    remote_write:\n      - url: "+downstream.url+"/api/v1/write\n        queue_config: {batch_send_deadline: 1s}\n")
	waitFor(t, 60*time.Second, "the agent's scrapes at the downstream serve", func() bool {
		code, body := downstream.get(t, "/api/v1/query?query=up%7Bjob%3D%22agent-self%22%7D")
		return code == http.StatusOK && strings.Contains(body, `"agent-self"`)
	})
	code, body := agent.get(t, "/api/v1/query?query=up")
	if code == http.StatusOK || !strings.Contains(body, "unavailable with Prometheus Agent") {
		t.Errorf("agent-mode query = %d %s, want Prometheus Agent's refusal", code, body)
	}
}

// logs.forward: a line pushed to one serve's Loki API is pushed on to a
// second serve, which answers it like any line it received.
func TestLogsForwardToASecondServe(t *testing.T) {
	downstream := startServer(t, "")
	upstream := startServer(t, "logs:\n  forward:\n    - url: "+downstream.url+"/loki/api/v1/push\n")
	ts := strconv.FormatInt(time.Now().UnixNano(), 10)
	code, body := upstream.post(t, "/loki/api/v1/push", "application/json",
		strings.NewReader(`{"streams":[{"stream":{"app":"fwd"},"values":[["`+ts+`","forwarded line"]]}]}`), nil)
	if code != http.StatusNoContent {
		t.Fatalf("push = %d %s", code, body)
	}
	for _, s := range []*testServer{upstream, downstream} {
		waitFor(t, 20*time.Second, "the line by LogQL", func() bool {
			code, body := s.get(t, "/loki/api/v1/query_range?query=%7Bapp%3D%22fwd%22%7D")
			return code == http.StatusOK && strings.Contains(body, "forwarded line")
		})
	}
}

// TestTracesBackPressureWhenHeadFull: with a head far smaller than the
// pushes, the receiver refuses trace requests retryably (429 with
// Retry-After, counted as consumer_full) instead of letting the head grow,
// and every acknowledged trace is readable.
func TestTracesBackPressureWhenHeadFull(t *testing.T) {
	ts := startServer(t, "traces:\n  max_block_bytes: 1KiB\n  max_head_bytes: 1KiB\n")
	accepted := pushUntilRefused(t, ts, "")
	if got := ts.metricValue(t, `nxwatcher_otlp_refused_requests_total{reason="consumer_full",signal="traces",transport="http"}`); got < 1 {
		t.Errorf("consumer_full refusals counted %v", got)
	}
	for _, id := range accepted {
		if code, _ := ts.get(t, "/api/traces/"+id); code != http.StatusOK {
			t.Fatalf("acknowledged trace %s: status %d", id, code)
		}
	}
}

// TestTracesBackPressurePerTenant: with trace tenancy, a tenant whose store
// is behind is refused while a tenant whose store is not is accepted, and
// each tenant's acknowledged traces are readable as that tenant.
func TestTracesBackPressurePerTenant(t *testing.T) {
	ts := startServer(t, "traces:\n  multitenancy_enabled: true\n  max_block_bytes: 1KiB\n  max_head_bytes: 1KiB\n")
	accepted := pushUntilRefused(t, ts, "busy")
	_, httpAddr := ts.app.OTLPAddrs()
	calmID := fmt.Sprintf("%032x", 0xca1f000001)
	if code := postTraces(t, httpAddr.String(), "calm", backPressureBody(calmID, 40)); code != http.StatusOK {
		t.Fatalf("calm's first push while busy is refused: status %d, want 200", code)
	}
	read := func(tenant, id string) int {
		req, _ := http.NewRequest(http.MethodGet, ts.url+"/api/traces/"+id, nil)
		req.Header.Set("X-Scope-OrgID", tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, id := range accepted {
		if code := read("busy", id); code != http.StatusOK {
			t.Fatalf("busy's acknowledged trace %s: status %d", id, code)
		}
	}
	if code := read("calm", calmID); code != http.StatusOK {
		t.Fatalf("calm's trace: status %d", code)
	}
}

// pushUntilRefused pushes 40-span traces as tenant ("" for none) from four
// senders until three requests were refused with 429, and returns the IDs
// of the acknowledged ones. It fails the test when none was refused or a
// refusal carried no Retry-After.
func pushUntilRefused(t *testing.T, ts *testServer, tenant string) []string {
	t.Helper()
	_, httpAddr := ts.app.OTLPAddrs()
	var (
		mu        sync.Mutex
		accepted  []string
		refused   int
		retryHint bool
		seq       atomic.Int64
		wg        sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 150 {
				mu.Lock()
				done := refused >= 3
				mu.Unlock()
				if done {
					return
				}
				id := fmt.Sprintf("%032x", 0xbac0000000+seq.Add(1))
				resp, err := sendTraces(httpAddr.String(), tenant, backPressureBody(id, 40))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				switch resp.StatusCode {
				case http.StatusOK:
					accepted = append(accepted, id)
				case http.StatusTooManyRequests:
					refused++
					retryHint = retryHint || resp.Header.Get("Retry-After") != ""
				default:
					t.Errorf("push: status %d", resp.StatusCode)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if refused == 0 {
		t.Fatalf("%d requests into a 1 KiB head, none refused", len(accepted))
	}
	if !retryHint {
		t.Error("429 without Retry-After")
	}
	return accepted
}

// postTraces posts an OTLP/JSON body as tenant and returns the status.
func postTraces(t *testing.T, addr, tenant, body string) int {
	t.Helper()
	resp, err := sendTraces(addr, tenant, body)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// sendTraces posts an OTLP/JSON body to addr's /v1/traces, naming tenant
// in X-Scope-OrgID unless it is "".
func sendTraces(addr, tenant, body string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/traces", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	return http.DefaultClient.Do(req)
}

// backPressureBody is an OTLP/JSON request of one trace with n spans.
func backPressureBody(traceID string, n int) string {
	now := time.Now()
	var spans []string
	for i := range n {
		spans = append(spans, fmt.Sprintf(`{"traceId":%q,"spanId":"%016x","name":"work","kind":2,"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}`,
			traceID, i+1, now.UnixNano(), now.Add(time.Millisecond).UnixNano()))
	}
	return `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"bp"}}]},"scopeSpans":[{"spans":[` +
		strings.Join(spans, ",") + `]}]}]}`
}
