package agent

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// staticConfig tails dir/*.log with one client at url.
func staticConfig(t *testing.T, dir, url string, extra string) *Config {
	t.Helper()
	y := fmt.Sprintf(`
positions: {filename: %s/positions.yaml, sync_period: 20ms}
clients:
  - url: %s
    batchwait: 20ms
    batchsize: 4096
    backoff_config: {min_period: 5ms, max_period: 20ms, max_retries: 1000}
target_config: {sync_period: 20ms}
%s
scrape_configs:
  - job_name: files
    static_configs:
      - targets: [localhost]
        labels: {job: files, __path__: %s/*.log}
`, dir, url, extra, dir)
	cfg, err := Parse([]byte(y), false)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fakePush counts lines of accepted pushes; fail decides a status per request.
func fakePush(t *testing.T, fail func(n int) int) (*httptest.Server, *pushCounter, *atomic.Int64) {
	var reqs atomic.Int64
	pc := &pushCounter{lines: map[string]int{}, next: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }}
	pc.fail = func() int { return fail(int(reqs.Add(1))) }
	srv := httptest.NewServer(pc)
	t.Cleanup(srv.Close)
	return srv, pc, &reqs
}

func (p *pushCounter) count(line string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lines[line]
}

func (p *pushCounter) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.lines {
		n += c
	}
	return n
}

func writeLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %06d %s\n", i, strings.Repeat("y", 40))
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

func lineN(i int) string { return fmt.Sprintf("line %06d %s", i, strings.Repeat("y", 40)) }

func TestServerErrorsThenRecovery(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	failing.Store(true)
	srv, pc, reqs := fakePush(t, func(int) int {
		if failing.Load() {
			return http.StatusInternalServerError
		}
		return 0
	})
	cfg := staticConfig(t, dir, srv.URL, "")
	writeLines(t, filepath.Join(dir, "a.log"), 0, 500)
	ag := startAgent(t, cfg, Options{})
	poll(t, 10*time.Second, "retries", func() bool { return reqs.Load() > 5 })
	// Nothing acknowledged: the saved position has not moved.
	ag.a.savePositions()
	if off, _ := ag.a.pos.Get(filepath.Join(dir, "a.log")); off != 0 {
		t.Fatalf("position moved to %d before any push was acknowledged", off)
	}
	failing.Store(false)
	writeLines(t, filepath.Join(dir, "a.log"), 500, 1000)
	poll(t, 20*time.Second, "all lines", func() bool {
		for i := 0; i < 1000; i++ {
			if pc.count(lineN(i)) == 0 {
				return false
			}
		}
		return true
	})
	for i := 0; i < 1000; i++ {
		if c := pc.count(lineN(i)); c != 1 {
			t.Fatalf("line %d pushed %d times", i, c)
		}
	}
	if testutil.ToFloat64(ag.a.m.retries.WithLabelValues(u2host(srv.URL))) == 0 {
		t.Error("retries not counted")
	}
}

func TestBadRequestBatchDroppedAndCounted(t *testing.T) {
	dir := t.TempDir()
	srv, pc, _ := fakePush(t, func(n int) int {
		if n == 1 {
			return http.StatusBadRequest
		}
		return 0
	})
	cfg := staticConfig(t, dir, srv.URL, "")
	ag := startAgent(t, cfg, Options{})
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 10)
	dropped := func() float64 {
		return testutil.ToFloat64(ag.a.m.droppedEntries.WithLabelValues(u2host(srv.URL), "push_failed"))
	}
	poll(t, 10*time.Second, "first batch refused", func() bool { return dropped() > 0 })
	writeLines(t, path, 10, 20)
	poll(t, 10*time.Second, "later lines", func() bool { return pc.count(lineN(19)) == 1 })
	if int(dropped())+pc.total() != 20 {
		t.Fatalf("dropped %v + pushed %d != 20", dropped(), pc.total())
	}
	// The refused batch is not retried and positions move past it.
	ag.stop()
	pos, _, _ := LoadPositions(filepath.Join(dir, "positions.yaml"), false)
	if off, _ := pos.Get(path); off != int64(20*(len(lineN(0))+1)) {
		t.Fatalf("position %d", off)
	}
}

func TestServerDownBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	var down atomic.Bool
	down.Store(true)
	srv, pc, _ := fakePush(t, func(int) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	cfg := staticConfig(t, dir, srv.URL, "")
	const n = 50000
	writeLines(t, filepath.Join(dir, "a.log"), 0, n)
	ag := startAgent(t, cfg, Options{})
	read := func() float64 {
		return testutil.ToFloat64(ag.a.m.readLines.WithLabelValues(filepath.Join(dir, "a.log")))
	}
	// Reading stops once the client's queue and batch are full: memory is
	// bounded by the queue, not by what is on disk.
	poll(t, 10*time.Second, "reader blocked", func() bool { return read() > 0 })
	var last float64
	poll(t, 10*time.Second, "reader stalls", func() bool {
		r := read()
		stalled := r == last
		last = r
		time.Sleep(50 * time.Millisecond)
		return stalled
	})
	if last >= n/2 {
		t.Fatalf("read %v of %d lines while the server was down", last, n)
	}
	down.Store(false)
	poll(t, 30*time.Second, "all lines after recovery", func() bool { return pc.total() >= n })
	for i := 0; i < n; i += 997 {
		if pc.count(lineN(i)) != 1 {
			t.Fatalf("line %d pushed %d times", i, pc.count(lineN(i)))
		}
	}
}

func TestSeveralClientsEachGetEveryLine(t *testing.T) {
	dir := t.TempDir()
	s1, p1, _ := fakePush(t, func(int) int { return 0 })
	var slow sync.Once
	s2, p2, _ := fakePush(t, func(n int) int {
		if n < 3 {
			return http.StatusTooManyRequests
		}
		slow.Do(func() {})
		return 0
	})
	cfg := staticConfig(t, dir, s1.URL, "")
	c2 := cfg.Clients[0]
	c2.URL = s2.URL
	cfg.Clients = append(cfg.Clients, c2)
	writeLines(t, filepath.Join(dir, "a.log"), 0, 300)
	ag := startAgent(t, cfg, Options{})
	poll(t, 10*time.Second, "both clients", func() bool { return p1.total() == 300 && p2.total() == 300 })
	ag.stop()
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	srv, pc, _ := fakePush(t, func(int) int { return 0 })
	cfg := staticConfig(t, dir, srv.URL, "limits_config: {max_line_size: 1048576}")
	// A malformed positions file with ignore_invalid_yaml: logged, counted,
	// started over.
	os.WriteFile(filepath.Join(dir, "positions.yaml"), []byte("positions: [not, a, map\n"), 0o644)
	cfg.Positions.IgnoreInvalidYAML = true
	path := filepath.Join(dir, "a.log")
	big := strings.Repeat("z", 10<<20)
	garbage := "\x00\x01\xff\xfe\xfd binary"
	os.WriteFile(path, []byte("before\n"+big+"\n"+garbage+"\nafter\n"), 0o644)
	unreadable := filepath.Join(dir, "secret.log")
	os.WriteFile(unreadable, []byte("x\n"), 0o000)
	os.Mkdir(filepath.Join(dir, "dir.log"), 0o755) // not a regular file
	ag := startAgent(t, cfg, Options{})
	poll(t, 10*time.Second, "after", func() bool { return pc.count("after") == 1 })
	if pc.count("before") != 1 || pc.count(big[:1<<20]) != 1 {
		t.Fatal("lines around the long one missing or the long one not truncated to max_line_size")
	}
	if pc.count(strings.ToValidUTF8(garbage, "\uFFFD")) != 1 {
		t.Fatal("binary line not shipped with replacement characters")
	}
	for name, c := range map[string]float64{
		"truncated":   testutil.ToFloat64(ag.a.m.truncated),
		"invalidUTF8": testutil.ToFloat64(ag.a.m.invalidUTF8),
		"positions":   testutil.ToFloat64(ag.a.m.positionsErrors),
	} {
		if c != 1 {
			t.Errorf("%s counter = %v, want 1", name, c)
		}
	}
	if os.Geteuid() != 0 { // root reads mode-0 files
		if testutil.ToFloat64(ag.a.m.openErrors) == 0 {
			t.Error("unreadable file not counted")
		}
	}
	// Without ignore_invalid_yaml a malformed file refuses to start,
	// naming the option.
	ag.stop() // it saves positions: stop it before spoiling the file
	cfg.Positions.IgnoreInvalidYAML = false
	os.WriteFile(filepath.Join(dir, "positions.yaml"), []byte("positions: [\n"), 0o644)
	if _, err := New(cfg, Options{}, Deps{}); err == nil || !strings.Contains(err.Error(), "ignore_invalid_yaml") {
		t.Fatalf("got %v", err)
	}
}

func TestNodeFilterAndDerivedPath(t *testing.T) {
	a := &Agent{opts: Options{NodeName: "n1", PodLogsDir: "/var/log/pods"}, derived: map[string]bool{}, logger: discardLogger()}
	sc := &ScrapeConfig{JobName: "k"}
	meta := model.LabelSet{
		"__meta_kubernetes_namespace": "ns", "__meta_kubernetes_pod_name": "p", "__meta_kubernetes_pod_uid": "u1",
		"__meta_kubernetes_pod_container_name": "c", "__meta_kubernetes_pod_node_name": "n1",
	}
	ft, d := a.target(sc, meta, nil)
	if !d.kept || ft[0].path != "/var/log/pods/ns_p_u1/c/*.log" {
		t.Fatalf("%+v %+v", ft, d)
	}
	meta["__meta_kubernetes_pod_node_name"] = "n2"
	if _, d := a.target(sc, meta, nil); d.kept || d.reason != "on another node" {
		t.Fatalf("%+v", d)
	}
	// __host__ wins, as with Promtail's chart relabelling.
	if _, d := a.target(sc, model.LabelSet{"__host__": "n1", "__path__": "/x/*.log"}, nil); !d.kept {
		t.Fatalf("%+v", d)
	}
	if _, d := a.target(sc, model.LabelSet{"__host__": "n9", "__path__": "/x/*.log"}, nil); d.kept {
		t.Fatalf("%+v", d)
	}
	// An explicit __path__ is kept as it is.
	ft, _ = a.target(sc, model.LabelSet{"__path__": "/y/*.log"}, nil)
	if ft[0].path != "/y/*.log" {
		t.Fatal(ft[0].path)
	}
}

// A target that goes away while its reader is blocked on a full client
// queue (server down) is stopped without hanging target sync.
func TestTargetRemovedWhileServerDown(t *testing.T) {
	dir := t.TempDir()
	srv, _, _ := fakePush(t, func(int) int { return http.StatusServiceUnavailable })
	cfg := staticConfig(t, dir, srv.URL, "")
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 20000)
	ag := startAgent(t, cfg, Options{})
	read := func() float64 { return testutil.ToFloat64(ag.a.m.readLines.WithLabelValues(path)) }
	var last float64
	poll(t, 10*time.Second, "reader blocked", func() bool {
		r := read()
		stalled := r > 0 && r == last
		last = r
		time.Sleep(50 * time.Millisecond)
		return stalled
	})
	os.Remove(path)
	poll(t, 10*time.Second, "target stopped", func() bool { return testutil.ToFloat64(ag.a.m.filesActive) == 0 })
}

func TestMaxStreamsDropsNewStreams(t *testing.T) {
	dir := t.TempDir()
	srv, pc, _ := fakePush(t, func(int) int { return 0 })
	cfg := staticConfig(t, dir, srv.URL, "limits_config: {max_streams: 2}")
	cfg.Clients[0].BatchWait = model.Duration(time.Hour) // one batch, cut by size or at stop
	for _, f := range []string{"a", "b", "c"} {
		writeLines(t, filepath.Join(dir, f+".log"), 0, 5)
	}
	ag := startAgent(t, cfg, Options{})
	dropped := func() float64 {
		return testutil.ToFloat64(ag.a.m.droppedEntries.WithLabelValues(u2host(srv.URL), "stream_limited"))
	}
	poll(t, 10*time.Second, "third stream dropped", func() bool { return dropped() == 5 })
	ag.stop()
	if pc.total() != 10 {
		t.Fatalf("pushed %d, want 10", pc.total())
	}
}

func TestFilesAppearLaterAndDeleted(t *testing.T) {
	dir := t.TempDir()
	srv, pc, _ := fakePush(t, func(int) int { return 0 })
	cfg := staticConfig(t, dir, srv.URL, "")
	ag := startAgent(t, cfg, Options{})
	poll(t, 10*time.Second, "ready", ag.a.Ready)
	path := filepath.Join(dir, "late.log")
	writeLines(t, path, 0, 3)
	os.WriteFile(filepath.Join(dir, "late.log.1"), []byte("rotated leftover\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "late.log.gz"), []byte("gz\n"), 0o644)
	poll(t, 10*time.Second, "late file shipped", func() bool { return pc.count(lineN(2)) == 1 })
	ag.a.savePositions()
	if _, ok := ag.a.pos.Get(path); !ok {
		t.Fatal("no position for the late file")
	}
	os.Remove(path)
	poll(t, 10*time.Second, "deleted file forgotten", func() bool {
		ag.a.savePositions()
		_, ok := ag.a.pos.Get(path)
		return !ok && testutil.ToFloat64(ag.a.m.filesActive) == 0
	})
	if pc.count("rotated leftover") != 0 || pc.count("gz") != 0 {
		t.Fatal("rotated leftovers were shipped")
	}
}

func TestClientTenantAuthAndExternalLabels(t *testing.T) {
	dir := t.TempDir()
	type seen struct{ tenant, user, labels string }
	got := make(chan seen, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, _ := snappy.Decode(nil, body)
		var req push.PushRequest
		req.Unmarshal(raw)
		u, _, _ := r.BasicAuth()
		for _, s := range req.Streams {
			got <- seen{r.Header.Get("X-Scope-OrgID"), u, s.Labels}
		}
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	cfg := staticConfig(t, dir, srv.URL, "")
	cfg.Clients[0].TenantID = "default-tenant"
	cfg.Clients[0].ExternalLabels = model.LabelSet{"cluster": "c1"}
	cfg.Clients[0].HTTPClientConfig.BasicAuth = &config.BasicAuth{Username: "agent", Password: "pw"}
	var st []StageConfig
	if err := yaml.UnmarshalStrict([]byte("- match: {selector: '{job=\"files\"} |= \"team\"', stages: [{tenant: {value: team-a}}]}"), &st); err != nil {
		t.Fatal(err)
	}
	cfg.ScrapeConfigs[0].PipelineStages = st
	os.WriteFile(filepath.Join(dir, "a.log"), []byte("plain\nteam line\n"), 0o644)
	startAgent(t, cfg, Options{})
	want := map[string]bool{"default-tenant": true, "team-a": true}
	for len(want) > 0 {
		select {
		case s := <-got:
			if s.user != "agent" || !strings.Contains(s.labels, `cluster="c1"`) || strings.Contains(s.labels, tenantLabel) {
				t.Fatalf("%+v", s)
			}
			delete(want, s.tenant)
		case <-time.After(10 * time.Second):
			t.Fatalf("tenants not seen: %v", want)
		}
	}
}

func TestDryRunPrintsAndKeepsPositions(t *testing.T) {
	dir := t.TempDir()
	cfg := staticConfig(t, dir, "http://127.0.0.1:1/loki/api/v1/push", "")
	writeLines(t, filepath.Join(dir, "a.log"), 0, 2)
	var out syncWriter
	ag := startAgent(t, cfg, Options{DryRun: &out})
	poll(t, 10*time.Second, "printed", func() bool { return strings.Count(out.String(), "\n") == 2 })
	ag.stop()
	if !strings.Contains(out.String(), `{filename="`+filepath.Join(dir, "a.log")+`", job="files"}`+"\t"+lineN(1)) {
		t.Fatal(out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "positions.yaml")); !os.IsNotExist(err) {
		t.Fatal("dry run saved positions")
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// A file renamed away with no new one yet: its position is forgotten, so a
// file created at that path later is read from its start, not from the old
// file's offset.
func TestRenamedAwayForgetsPosition(t *testing.T) {
	dir := t.TempDir()
	srv, pc, _ := fakePush(t, func(int) int { return 0 })
	cfg := staticConfig(t, dir, srv.URL, "")
	cfg.TargetConfig.SyncPeriod = model.Duration(time.Hour) // no re-glob: the tailer alone decides
	path := filepath.Join(dir, "a.log")
	writeLines(t, path, 0, 10)
	ag := startAgent(t, cfg, Options{})
	poll(t, 10*time.Second, "shipped", func() bool { return pc.count(lineN(9)) == 1 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "tailer ended", func() bool { return testutil.ToFloat64(ag.a.m.filesActive) == 0 })
	if off, ok := ag.a.pos.Get(path); ok {
		t.Fatalf("position %d kept for a file that is gone", off)
	}
}
