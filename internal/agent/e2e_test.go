package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/kubernetes"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
)

// fakeKube speaks the Kubernetes list/watch JSON for pods (GET /api/v1/pods
// and ?watch=true) — what client-go's informer behind Prometheus's
// kubernetes_sd_configs role pod asks for. Events can be sent while running.
type fakeKube struct {
	mu     sync.Mutex
	pods   map[string]map[string]any // by namespace/name
	rv     int
	events chan map[string]any
	stop   chan struct{}
	srv    *httptest.Server
}

func newFakeKube(t *testing.T) *fakeKube {
	k := &fakeKube{pods: map[string]map[string]any{}, events: make(chan map[string]any, 16), stop: make(chan struct{})}
	k.srv = httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(func() { close(k.stop); k.srv.Close() })
	return k
}

func kubePod(ns, name, uid, node, app string, containers ...string) map[string]any {
	var cs []any
	for _, c := range containers {
		cs = append(cs, map[string]any{"name": c, "image": "x"})
	}
	return map[string]any{
		"kind": "Pod", "apiVersion": "v1",
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": uid, "labels": map[string]any{"app.kubernetes.io/name": app}},
		"spec":     map[string]any{"nodeName": node, "containers": cs},
		"status":   map[string]any{"phase": "Running", "podIP": "10.0.0.1"},
	}
}

func (k *fakeKube) set(pod map[string]any, typ string) {
	k.mu.Lock()
	k.rv++
	md := pod["metadata"].(map[string]any)
	md["resourceVersion"] = fmt.Sprint(k.rv)
	key := md["namespace"].(string) + "/" + md["name"].(string)
	if typ == "DELETED" {
		delete(k.pods, key)
	} else {
		k.pods[key] = pod
	}
	k.mu.Unlock()
	k.events <- map[string]any{"type": typ, "object": pod}
}

func (k *fakeKube) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/pods" {
		http.NotFound(w, r)
		return
	}
	node := strings.TrimPrefix(r.URL.Query().Get("fieldSelector"), "spec.nodeName=")
	onNode := func(p map[string]any) bool {
		return node == "" || p["spec"].(map[string]any)["nodeName"] == node
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("watch") != "true" {
		k.mu.Lock()
		items := []any{}
		for _, p := range k.pods {
			if onNode(p) {
				items = append(items, p)
			}
		}
		list := map[string]any{"kind": "PodList", "apiVersion": "v1", "metadata": map[string]any{"resourceVersion": fmt.Sprint(k.rv)}, "items": items}
		k.mu.Unlock()
		json.NewEncoder(w).Encode(list)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.URL.Query().Get("sendInitialEvents") == "true" {
		// The watch-list protocol: current pods as ADDED, then a bookmark
		// marking the end of the initial events.
		k.mu.Lock()
		for _, p := range k.pods {
			if onNode(p) {
				json.NewEncoder(w).Encode(map[string]any{"type": "ADDED", "object": p})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{
			"kind": "Pod", "apiVersion": "v1",
			"metadata": map[string]any{"resourceVersion": fmt.Sprint(k.rv), "annotations": map[string]any{"k8s.io/initial-events-end": "true"}},
		}})
		k.mu.Unlock()
	}
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-k.stop:
			return
		case ev := <-k.events:
			if !onNode(ev["object"].(map[string]any)) {
				continue
			}
			json.NewEncoder(w).Encode(ev)
			w.(http.Flusher).Flush()
		}
	}
}

// pushCounter wraps a push handler and counts every line it is sent.
type pushCounter struct {
	mu    sync.Mutex
	lines map[string]int
	next  http.HandlerFunc
	fail  func() int // status to answer instead, 0 to pass on
}

func (p *pushCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if p.fail != nil {
		if st := p.fail(); st != 0 {
			http.Error(w, "injected", st)
			return
		}
	}
	raw, err := snappy.Decode(nil, body)
	if err == nil {
		var req push.PushRequest
		if req.Unmarshal(raw) == nil {
			p.mu.Lock()
			for _, s := range req.Streams {
				for _, e := range s.Entries {
					p.lines[e.Line]++
				}
			}
			p.mu.Unlock()
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	p.next(w, r)
}

func newLoki(t *testing.T) (*httptest.Server, *pushCounter) {
	t.Helper()
	cfg := lokiapi.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	db, err := logstore.Open(t.TempDir(), cfg.StoreOptions(), logstore.Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	api, err := lokiapi.New(cfg, lokiapi.Deps{Registerer: reg, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	pc := &pushCounter{lines: map[string]int{}}
	mux := http.NewServeMux()
	for _, rt := range api.Routes() {
		h := rt.Handler
		if rt.Path == "/loki/api/v1/push" {
			pc.next = h
			h = pc.ServeHTTP
		}
		mux.HandleFunc(rt.Method+" "+rt.Path, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, pc
}

type lokiStream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

func queryLoki(t *testing.T, base, q string, start time.Time) []lokiStream {
	t.Helper()
	v := url.Values{"query": {q}, "start": {fmt.Sprint(start.Add(-time.Hour).UnixNano())}, "end": {fmt.Sprint(time.Now().Add(time.Hour).UnixNano())}, "limit": {"5000"}, "direction": {"forward"}}
	resp, err := http.Get(base + "/loki/api/v1/query_range?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []lokiStream `json:"result"`
		} `json:"data"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("query: %d %s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Data.Result
}

// pollSoft waits for cond at most d and says whether it came true.
func pollSoft(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// poll waits for cond, failing after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type runningAgent struct {
	a      *Agent
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, cfg *Config, opts Options) *runningAgent {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.PollInterval = 10 * time.Millisecond
	a, err := New(cfg, opts, Deps{Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{a: a, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(ra.stop)
	return ra
}

func (r *runningAgent) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

type logWriter struct {
	t    *testing.T
	path string
	f    *os.File
}

func newLogWriter(t *testing.T, path string) *logWriter {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	w := &logWriter{t: t, path: path}
	w.reopen()
	t.Cleanup(func() { w.f.Close() })
	return w
}

func (w *logWriter) reopen() {
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	w.f = f
}

func (w *logWriter) write(s string) {
	if _, err := w.f.WriteString(s); err != nil {
		w.t.Fatal(err)
	}
}

var tsSeq = time.Now().Add(-10 * time.Minute)

func nextTS() string {
	tsSeq = tsSeq.Add(time.Millisecond)
	return tsSeq.UTC().Format(time.RFC3339Nano)
}

// criLine writes a line as containerd does; every 10th is split into three
// partial (P) pieces.
func writeCRILine(w *logWriter, msg string, i int) {
	ts := nextTS()
	if i%10 == 7 {
		third := len(msg) / 3
		w.write(ts + " stdout P " + msg[:third] + "\n")
		w.write(ts + " stdout P " + msg[third:2*third] + "\n")
		w.write(ts + " stdout F " + msg[2*third:] + "\n")
		return
	}
	w.write(ts + " stdout F " + msg + "\n")
}

// dockerLine writes a line as the json-file driver does; every 10th is
// split at a fake 16 KiB boundary.
func writeDockerLine(w *logWriter, msg string, i int) {
	ts := nextTS()
	enc := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	if i%10 == 3 {
		half := len(msg) / 2
		w.write(`{"log":` + enc(msg[:half]) + `,"stream":"stdout","time":"` + ts + `"}` + "\n")
		w.write(`{"log":` + enc(msg[half:]+"\n") + `,"stream":"stdout","time":"` + ts + `"}` + "\n")
		return
	}
	w.write(`{"log":` + enc(msg+"\n") + `,"stream":"stdout","time":"` + ts + `"}` + "\n")
}

func TestEndToEndDesignDocConfig(t *testing.T) {
	loki, counter := newLoki(t)
	kube := newFakeKube(t)
	logs := t.TempDir()
	dir := t.TempDir()

	cfg, err := LoadFile("../../deploy/agent/promtail.yaml", false)
	if err != nil {
		t.Fatal(err)
	}
	// The design doc's file, pointed at this test's servers and directories.
	cfg.Positions.Filename = filepath.Join(dir, "positions.yaml")
	cfg.Clients[0].URL = loki.URL + "/loki/api/v1/push"
	cfg.Clients[0].BatchWait = model.Duration(20 * time.Millisecond)
	cfg.Clients[0].Backoff.MinPeriod = model.Duration(10 * time.Millisecond)
	cfg.Clients[0].Backoff.MaxPeriod = model.Duration(50 * time.Millisecond)
	sd := cfg.ScrapeConfigs[0].ServiceDiscoveryConfigs[0].(*kubernetes.SDConfig)
	u, _ := url.Parse(kube.srv.URL)
	sd.APIServer = config.URL{URL: u}
	sd.HTTPClientConfig = config.DefaultHTTPClientConfig
	cfg.TargetConfig.SyncPeriod = model.Duration(20 * time.Millisecond)
	cfg.Positions.SyncPeriod = model.Duration(20 * time.Millisecond)

	kube.set(kubePod("shop", "api-0", "uid-a", "node-1", "api", "main"), "ADDED")
	kube.set(kubePod("shop", "web-0", "uid-b", "node-1", "web", "nginx"), "ADDED")
	kube.set(kubePod("shop", "far-0", "uid-c", "node-2", "far", "main"), "ADDED")
	for range 3 {
		<-kube.events // nobody watches yet
	}
	pathA := filepath.Join(logs, "shop_api-0_uid-a", "main", "0.log")
	pathB := filepath.Join(logs, "shop_web-0_uid-b", "nginx", "0.log")
	pathC := filepath.Join(logs, "shop_far-0_uid-c", "main", "0.log")
	a, b, c := newLogWriter(t, pathA), newLogWriter(t, pathB), newLogWriter(t, pathC)
	c.write(nextTS() + " stdout F from another node\n")

	msg := func(pod string, i int) string {
		return fmt.Sprintf("%s line %04d payload-%s", pod, i, strings.Repeat("x", i%50))
	}
	writeBoth := func(from, to int) {
		for i := from; i < to; i++ {
			writeCRILine(a, msg("api", i), i)
			writeDockerLine(b, msg("web", i), i)
		}
	}
	opts := Options{NodeName: "node-1", PodLogsDir: logs}
	ag := startAgent(t, cfg, opts)
	sent := func(r *runningAgent) float64 {
		return testutil.ToFloat64(r.a.m.sentEntries.WithLabelValues(u2host(loki.URL)))
	}
	writeBoth(0, 100)
	poll(t, 20*time.Second, "first 200 lines", func() bool { return sent(ag) >= 200 })

	// Rotation by rename + create (containerd/kubelet) for api-0 ...
	if err := os.Rename(pathA, pathA+".20260101-000000"); err != nil {
		t.Fatal(err)
	}
	a.reopen()
	// ... and copytruncate for web-0: copy, then empty the file in place.
	data, _ := os.ReadFile(pathB)
	os.WriteFile(pathB+".1", data, 0o644)
	if err := b.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "truncate seen", func() bool {
		return testutil.ToFloat64(ag.a.m.rotations.WithLabelValues("truncate")) == 1
	})
	writeBoth(100, 150)
	poll(t, 20*time.Second, "300 lines", func() bool { return sent(ag) >= 300 })

	// Restart in the middle: lines written while the agent is down are
	// read from the saved positions.
	writeBoth(150, 175)
	ag.stop()
	writeBoth(175, 200)
	ag2 := startAgent(t, cfg, opts)
	writeBoth(200, 250)

	// A pod added while running, then relabelled (its app label changes).
	pathD := filepath.Join(logs, "shop_late-0_uid-d", "main", "0.log")
	d := newLogWriter(t, pathD)
	kube.set(kubePod("shop", "late-0", "uid-d", "node-1", "late", "main"), "ADDED")
	writeCRILine(d, "late line 0", 0)

	want := map[string][]string{}
	for i := 0; i < 250; i++ {
		want["api-0"] = append(want["api-0"], msg("api", i))
		want["web-0"] = append(want["web-0"], msg("web", i))
	}
	want["late-0"] = []string{"late line 0"}
	start := tsSeq.Add(-time.Hour)
	var got map[string][]string
	var streams []lokiStream
	// Not fatal on time-out: the comparison below says which lines are missing.
	pollSoft(30*time.Second, func() bool {
		streams = queryLoki(t, loki.URL, `{namespace="shop"}`, start)
		got = map[string][]string{}
		for _, s := range streams {
			for _, v := range s.Values {
				got[s.Stream["pod"]] = append(got[s.Stream["pod"]], v[1])
			}
		}
		return len(got["api-0"]) >= 250 && len(got["web-0"]) >= 250 && len(got["late-0"]) >= 1
	})
	for pod, lines := range want {
		if strings.Join(got[pod], "\n") != strings.Join(lines, "\n") {
			t.Errorf("%s: got %d lines, want %d exactly once in order; first difference: %s", pod, len(got[pod]), len(lines), firstDiff(got[pod], lines))
		}
	}
	if _, ok := got["far-0"]; ok {
		t.Error("a pod of another node was shipped")
	}
	for _, s := range streams {
		l := s.Stream
		wantSvc := map[string]string{"api-0": "api", "web-0": "web", "late-0": "late"}[l["pod"]]
		if l["service"] != wantSvc || l["namespace"] != "shop" || l["stream"] != "stdout" || !strings.HasPrefix(l["filename"], logs) {
			t.Errorf("labels of %s: %v", l["pod"], l)
		}
	}
	// At least once: every line was pushed; duplicates only around the
	// restart (none expected with a clean stop).
	counter.mu.Lock()
	for _, lines := range want {
		for _, l := range lines {
			if counter.lines[l] == 0 {
				t.Errorf("never pushed: %q", l)
			}
		}
	}
	counter.mu.Unlock()

	// The relabelled pod: its service label follows the new app label.
	kube.set(kubePod("shop", "late-0", "uid-d", "node-1", "late-renamed", "main"), "MODIFIED")
	poll(t, 10*time.Second, "relabelled target", func() bool {
		ag2.a.mu.Lock()
		defer ag2.a.mu.Unlock()
		for _, ft := range ag2.a.active {
			if ft.path == pathD && ft.labels["service"] == "late-renamed" {
				return true
			}
		}
		return false
	})
	writeCRILine(d, "late line 1", 1)
	poll(t, 10*time.Second, "line with new labels", func() bool {
		for _, s := range queryLoki(t, loki.URL, `{service="late-renamed"}`, start) {
			if len(s.Values) == 1 && s.Values[0][1] == "late line 1" {
				return true
			}
		}
		return false
	})
	// A removed pod's file is no longer tailed.
	kube.set(kubePod("shop", "late-0", "uid-d", "node-1", "late-renamed", "main"), "DELETED")
	poll(t, 10*time.Second, "target removed", func() bool {
		ag2.a.mu.Lock()
		defer ag2.a.mu.Unlock()
		_, ok := ag2.a.tailers[pathD]
		return !ok
	})

	// Own HTTP.
	h := ag2.a.Handler()
	for path, want := range map[string]string{"/ready": "Ready", "/targets": pathA, "/metrics": "promtail_sent_entries_total", "/service-discovery": "relabelled: "} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d, want %q in %s", path, rec.Code, want, rec.Body.String())
		}
	}
	ag2.stop()
	pos, _, err := LoadPositions(cfg.Positions.Filename, false)
	if err != nil {
		t.Fatal(err)
	}
	if off, _ := pos.Get(pathA); off == 0 {
		t.Error("no position saved for api-0")
	}
}

func u2host(raw string) string {
	u, _ := url.Parse(raw)
	return u.Host
}

func firstDiff(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("at %d got %q want %q", i, g, w)
		}
	}
	return "none"
}
