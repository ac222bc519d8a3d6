package agent

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"

	"github.com/nx-watcher/nxwatcher/internal/testcert"
)

// captured is one entry a fake Loki received.
type captured struct {
	labels, line, tenant string
	ts                   time.Time
	meta                 string
}

type captureLoki struct {
	mu      sync.Mutex
	entries []captured
}

func newCaptureLoki(t *testing.T) (*httptest.Server, *captureLoki) {
	c := &captureLoki{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		var req push.PushRequest
		if err != nil || req.Unmarshal(raw) != nil {
			http.Error(w, "bad", 400)
			return
		}
		c.mu.Lock()
		for _, s := range req.Streams {
			for _, e := range s.Entries {
				var md []string
				for _, m := range e.StructuredMetadata {
					md = append(md, m.Name+"="+m.Value)
				}
				c.entries = append(c.entries, captured{labels: s.Labels, line: e.Line, ts: e.Timestamp, tenant: r.Header.Get("X-Scope-OrgID"), meta: strings.Join(md, ",")})
			}
		}
		c.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	return srv, c
}

func (c *captureLoki) find(line string) (captured, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.line == line {
			return e, true
		}
	}
	return captured{}, false
}

func (c *captureLoki) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func pushProto(t *testing.T, url, tenant string, streams ...push.Stream) *http.Response {
	t.Helper()
	raw, err := (&push.PushRequest{Streams: streams}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Written from Promtail's loki_push_api docs: a job with its own server;
// pushed streams go through labels, relabel_configs and pipeline_stages.
func TestLokiPushAPISource(t *testing.T) {
	dir := t.TempDir()
	loki, got := newCaptureLoki(t)
	cfg, err := Parse([]byte(fmt.Sprintf(`
positions: {filename: %s/positions.yaml}
clients: [{url: %s, batchwait: 10ms}]
scrape_configs:
  - job_name: push
    loki_push_api:
      server: {http_listen_address: 127.0.0.1, http_listen_port: 0, grpc_listen_port: 0}
      labels: {pushserver: agent1}
      use_incoming_timestamp: true
    relabel_configs:
      - {source_labels: [app], regex: dropme, action: drop}
      - {source_labels: [__tenant_id__], target_label: tenant_copy}
    pipeline_stages:
      - regex: {expression: 'level=(?P<level>\w+)'}
      - labels: {level: ""}
  - job_name: push_now
    loki_push_api:
      server: {http_listen_address: 127.0.0.1, http_listen_port: 0}
`, dir, loki.URL)), false)
	if err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, cfg, Options{})
	addrs := ag.a.PushAddrs()
	url := "http://" + addrs["push"] + "/loki/api/v1/push"
	old := time.Now().Add(-time.Hour).Truncate(time.Millisecond)

	resp := pushProto(t, url, "team-a",
		push.Stream{Labels: `{app="web", env="prod"}`, Entries: []push.Entry{
			{Timestamp: old, Line: "level=warn proto one", StructuredMetadata: push.LabelsAdapter{{Name: "trace_id", Value: "abc"}}},
		}},
		push.Stream{Labels: `{app="dropme"}`, Entries: []push.Entry{{Timestamp: old, Line: "dropped by relabel"}}},
	)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("proto push: %d", resp.StatusCode)
	}
	js := fmt.Sprintf(`{"streams":[{"stream":{"app":"api"},"values":[["%d","level=info json one"],["%d","json two",{"user":"u1"}]]}]}`, old.UnixNano(), old.UnixNano()+1)
	r, err := http.Post(url, "application/json", strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("json push: %d", r.StatusCode)
	}
	// use_incoming_timestamp false: the receive time.
	before := time.Now()
	if resp := pushProto(t, "http://"+addrs["push_now"]+"/loki/api/v1/push", "", push.Stream{Labels: `{app="x"}`, Entries: []push.Entry{{Timestamp: old, Line: "now line"}}}); resp.StatusCode != 204 {
		t.Fatalf("push_now: %d", resp.StatusCode)
	}
	poll(t, 10*time.Second, "pushed lines forwarded", func() bool { return got.len() >= 4 })

	e, ok := got.find("level=warn proto one")
	if !ok {
		t.Fatal("proto line missing")
	}
	eq(t, "proto labels", e.labels, `{app="web", env="prod", level="warn", pushserver="agent1", tenant_copy="team-a"}`)
	eq(t, "incoming timestamp kept", e.ts.Equal(old), true)
	eq(t, "tenant forwarded", e.tenant, "team-a")
	eq(t, "structured metadata kept", e.meta, "trace_id=abc")
	if e, ok := got.find("json two"); !ok || e.labels != `{app="api", pushserver="agent1"}` || e.meta != "user=u1" {
		t.Errorf("json two: %+v %v", e, ok)
	}
	if e, ok := got.find("level=info json one"); !ok || !strings.Contains(e.labels, `level="info"`) {
		t.Errorf("json one: %+v %v", e, ok)
	}
	if e, ok := got.find("now line"); !ok || e.ts.Before(before) {
		t.Errorf("use_incoming_timestamp false: %+v", e)
	}
	if _, ok := got.find("dropped by relabel"); ok {
		t.Error("relabel drop ignored")
	}

	// Bad bodies are refused with 400 and counted.
	for _, bad := range []struct{ ct, body string }{
		{"application/x-protobuf", "not snappy"},
		{"application/json", `{"streams":[{"stream":{"a":"b"},"values":[["notanumber","x"]]}]}`},
		{"application/json", `{"streams":[{"stream":{"0bad":"b"},"values":[]}]}`},
	} {
		r, err := http.Post(url, bad.ct, strings.NewReader(bad.body))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %q: %d, want 400", bad.ct, bad.body, r.StatusCode)
		}
	}
	eq(t, "bad requests counted", counterValue(ag.reg, "nxwatcher_agent_source_dropped_total", "bad_request"), 3)
	eq(t, "relabel drop counted", counterValue(ag.reg, "nxwatcher_agent_source_dropped_total", "relabel"), 1)
}

func TestLokiPushAPIBusyPortFailsStart(t *testing.T) {
	dir := t.TempDir()
	loki, _ := newCaptureLoki(t)
	y := fmt.Sprintf(`
positions: {filename: %s/positions.yaml}
clients: [{url: %s}]
scrape_configs:
  - job_name: a
    loki_push_api: {server: {http_listen_address: 127.0.0.1, http_listen_port: PORT}}
`, dir, loki.URL)
	cfg, err := Parse([]byte(strings.Replace(y, "PORT", "0", 1)), false)
	if err != nil {
		t.Fatal(err)
	}
	first := startAgent(t, cfg, Options{})
	port := first.a.PushAddrs()["a"]
	port = port[strings.LastIndex(port, ":")+1:]
	cfg2, err := Parse([]byte(strings.Replace(y, "PORT", port, 1)), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg2, Options{}, Deps{}); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("busy port: %v", err)
	}
}

// Promtail's raw endpoint (newline-delimited lines) and a push server
// behind server.http_tls_config.
func TestLokiPushAPIRawAndTLS(t *testing.T) {
	dir := t.TempDir()
	pool, cert, key := testcert.Pair(t, dir, "push")
	loki, got := newCaptureLoki(t)
	cfg, err := Parse([]byte(fmt.Sprintf(`
positions: {filename: %s/positions.yaml}
clients: [{url: %s, batchwait: 10ms}]
scrape_configs:
  - job_name: raw
    loki_push_api:
      server: {http_listen_address: 127.0.0.1, http_listen_port: 0, http_tls_config: {cert_file: %s, key_file: %s}}
      labels: {source: raw}
`, dir, loki.URL, cert, key)), false)
	if err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, cfg, Options{})
	base := "https://" + ag.a.PushAddrs()["raw"]
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	for _, path := range []string{"/promtail/api/v1/raw", "/loki/api/v1/raw"} {
		resp, err := c.Post(base+path, "text/plain", strings.NewReader("raw one "+path+"\r\n\nraw two "+path+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	poll(t, 10*time.Second, "raw lines forwarded", func() bool { return got.len() == 4 })
	e, _ := got.find("raw two /promtail/api/v1/raw")
	eq(t, "raw labels", e.labels, `{source="raw"}`)
	// Plain HTTP is refused on the TLS port.
	if resp, err := http.Post("http://"+ag.a.PushAddrs()["raw"]+"/loki/api/v1/raw", "text/plain", strings.NewReader("x\n")); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNoContent {
			t.Error("plain HTTP accepted on the TLS push port")
		}
	}
}

// A stopped agent releases its push port, so the next one (a reload, a
// restart) can listen on it.
func TestPushPortReleasedOnStop(t *testing.T) {
	dir := t.TempDir()
	loki, _ := newCaptureLoki(t)
	y := fmt.Sprintf(`
positions: {filename: %s/positions.yaml}
clients: [{url: %s}]
scrape_configs:
  - job_name: a
    loki_push_api: {server: {http_listen_address: 127.0.0.1, http_listen_port: PORT}}
  - job_name: s
    syslog: {listen_address: "SYSLOG"}
`, dir, loki.URL)
	cfg, err := Parse([]byte(strings.NewReplacer("PORT", "0", "SYSLOG", "127.0.0.1:0").Replace(y)), false)
	if err != nil {
		t.Fatal(err)
	}
	first := startAgent(t, cfg, Options{})
	addr := first.a.PushAddrs()["a"]
	port := addr[strings.LastIndex(addr, ":")+1:]
	sys := first.a.SyslogAddrs()["s"]
	first.stop()
	cfg2, err := Parse([]byte(strings.NewReplacer("PORT", port, "SYSLOG", sys).Replace(y)), false)
	if err != nil {
		t.Fatal(err)
	}
	second := startAgent(t, cfg2, Options{})
	eq(t, "same push address", second.a.PushAddrs()["a"], addr)
	eq(t, "same syslog address", second.a.SyslogAddrs()["s"], sys)
}

// Two agents chained the way Promtail users chain them: a node agent tails a
// file and pushes to a second agent's loki_push_api, which pushes to our
// serve's Loki API. Every line arrives once, in order, with both agents'
// labels.
func TestChainedAgentsThroughPushAPI(t *testing.T) {
	dir := t.TempDir()
	loki, _ := newLoki(t)
	gwCfg, err := Parse([]byte(fmt.Sprintf(`
positions: {filename: %s/gw-positions.yaml}
clients: [{url: %s/loki/api/v1/push, batchwait: 10ms}]
scrape_configs:
  - job_name: gateway
    loki_push_api:
      server: {http_listen_address: 127.0.0.1, http_listen_port: 0}
      labels: {via: gateway}
      use_incoming_timestamp: true
`, dir, loki.URL)), false)
	if err != nil {
		t.Fatal(err)
	}
	gw := startAgent(t, gwCfg, Options{})
	nodeCfg, err := Parse([]byte(fmt.Sprintf(`
positions: {filename: %s/node-positions.yaml}
clients: [{url: "http://%s/loki/api/v1/push", batchwait: 10ms, batchsize: 2048}]
target_config: {sync_period: 20ms}
scrape_configs:
  - job_name: files
    static_configs:
      - targets: [localhost]
        labels: {job: chained, __path__: %s/*.log}
`, dir, gw.a.PushAddrs()["gateway"], dir)), false)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	writeLines(t, filepath.Join(dir, "app.log"), 0, 500)
	startAgent(t, nodeCfg, Options{})
	var got []lokiStream
	poll(t, 20*time.Second, "500 lines through both agents", func() bool {
		got = queryLoki(t, loki.URL, `{job="chained"}`, start)
		n := 0
		for _, s := range got {
			n += len(s.Values)
		}
		return n >= 500
	})
	if len(got) != 1 {
		t.Fatalf("%d streams, want 1: %+v", len(got), got)
	}
	s := got[0]
	eq(t, "via label", s.Stream["via"], "gateway")
	eq(t, "filename label", s.Stream["filename"], filepath.Join(dir, "app.log"))
	eq(t, "lines", len(s.Values), 500)
	for i, v := range s.Values {
		if v[1] != lineN(i) {
			t.Fatalf("line %d: %q, want %q", i, v[1], lineN(i))
		}
	}
}
