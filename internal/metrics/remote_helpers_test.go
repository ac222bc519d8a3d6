package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/nx-watcher/nxwatcher/internal/config/native"
	"github.com/nx-watcher/nxwatcher/internal/testbin"
)

// sample is one float sample as both sides report it.
type sample struct {
	T int64
	V float64
}

// seriesSamples maps a series (labels.String()) to its samples by time.
type seriesSamples map[string][]sample

func (s seriesSamples) count() int {
	n := 0
	for _, v := range s {
		n += len(v)
	}
	return n
}

// missingFrom lists the samples of want that got lacks, at most max of them.
func (want seriesSamples) missingFrom(got seriesSamples, max int) []string {
	var out []string
	for series, ws := range want {
		have := map[int64]float64{}
		for _, s := range got[series] {
			have[s.T] = s.V
		}
		for _, s := range ws {
			if v, ok := have[s.T]; !ok || v != s.V {
				out = append(out, fmt.Sprintf("%s @%d=%g", series, s.T, s.V))
				if len(out) >= max {
					return out
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// scrapeTarget serves two gauges whose value counts the scrapes, so every
// scraped sample is distinct.
func scrapeTarget(t *testing.T) (addr string, scrapes *atomic.Int64) {
	t.Helper()
	scrapes = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP test_value Scrape count.\n# TYPE test_value gauge\ntest_value{kind=\"keep\"} %d\ntest_value{kind=\"drop\"} %d\n", n, n)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), scrapes
}

// node is an nxwatcher metrics storage with its scraper, as app wires them.
type node struct {
	cfg     Config
	db      *TSDB
	scraper *Scraper
	reg     *prometheus.Registry
	stop    func()
	dir     string
}

func resolveConfig(t *testing.T, promYAML string) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Prometheus = native.Section{Text: promYAML, Line: 1}
	cfg.RemoteFlushDeadline = 0
	if err := cfg.Resolve(t.TempDir(), promslog.NewNopLogger()); err != nil {
		t.Fatalf("resolve config: %v", err)
	}
	return cfg
}

func startNode(t *testing.T, promYAML string) *node {
	t.Helper()
	cfg := resolveConfig(t, promYAML)
	cfg.RemoteFlushDeadline = model.Duration(5 * time.Second)
	reg := prometheus.NewRegistry()
	logger := promslog.NewNopLogger()
	if os.Getenv("NX_TEST_DEBUG") != "" { // log what remote write does
		logger = promslog.New(&promslog.Config{})
	}
	deps := Deps{Logger: logger, Registerer: reg}
	dir := t.TempDir()
	db, err := OpenTSDB(dir, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewScraper(db, deps)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	if err := db.ApplyConfig(TSDBConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	if err := sc.ApplyConfig(cfg.Parsed); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	n := &node{cfg: cfg, db: db, scraper: sc, reg: reg, dir: dir}
	var stopped atomic.Bool
	n.stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scraper: %v", err)
		}
	}
	t.Cleanup(func() {
		n.stop()
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n
}

// local reads every float sample of the series matching ms from the TSDB
// itself (not through remote_read).
func (n *node) local(t *testing.T, ms ...*labels.Matcher) seriesSamples {
	t.Helper()
	q, err := n.db.DB.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := seriesSamples{}
	ss := q.Select(context.Background(), true, nil, ms...)
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		key := s.Labels().String()
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out[key] = append(out[key], sample{ts, v})
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// metric sums a counter or gauge of the node's registry over series whose
// labels include want.
func (n *node) metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// receiver is a real remote-write receiver process (Debian's Prometheus or
// VictoriaMetrics) on 127.0.0.1, which a test can stop and start again on
// the same port and data directory.
type receiver struct {
	name    string
	base    string // http://127.0.0.1:port
	argv    []string
	ready   string // path that answers 200 when ready
	cmd     *exec.Cmd
	done    chan struct{}
	logFile string
}

func newPrometheusReceiver(t *testing.T) *receiver {
	bin := testbin.Require(t, "prometheus", "prometheus")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte("global: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	r := &receiver{
		name: "prometheus",
		base: fmt.Sprintf("http://127.0.0.1:%d", port),
		argv: []string{bin,
			"--config.file=" + cfgFile,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + fmt.Sprintf("127.0.0.1:%d", port),
			"--web.enable-remote-write-receiver",
		},
		ready:   "/-/ready",
		logFile: filepath.Join(dir, "log"),
	}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	return r
}

func newVictoriaMetricsReceiver(t *testing.T) *receiver {
	bin := testbin.Require(t, "victoria-metrics", "victoria-metrics")
	dir := t.TempDir()
	port := freePort(t)
	r := &receiver{
		name: "victoria-metrics",
		base: fmt.Sprintf("http://127.0.0.1:%d", port),
		argv: []string{bin,
			"-httpListenAddr=" + fmt.Sprintf("127.0.0.1:%d", port),
			"-storageDataPath=" + filepath.Join(dir, "data"),
			"-search.disableCache",
			"-search.latencyOffset=0s",
			"-retentionPeriod=100y",
		},
		ready:   "/health",
		logFile: filepath.Join(dir, "log"),
	}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *receiver) writeURL() string { return r.base + "/api/v1/write" }

func (r *receiver) start(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(r.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(r.argv[0], r.argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", r.name, err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(r.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(r.base + r.ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-r.done:
			out, _ := os.ReadFile(r.logFile)
			t.Fatalf("%s exited at start:\n%s", r.name, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s", r.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the receiver gracefully (SIGTERM), as an operator would.
func (r *receiver) stop(t *testing.T) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// samples reads every raw float sample of the series selector from the
// receiver.
func (r *receiver) samples(t *testing.T, selector string) seriesSamples {
	t.Helper()
	if r.name == "victoria-metrics" {
		return r.vmExport(t, selector)
	}
	// A range selector at "now" returns raw samples.
	q := url.Values{"query": {selector + "[1h]"}, "time": {strconv.FormatFloat(float64(time.Now().Add(time.Minute).UnixMilli())/1000, 'f', 3, 64)}}
	resp, err := http.Get(r.base + "/api/v1/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Values [][2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "success" {
		t.Fatalf("query %s: %s", selector, body.Error)
	}
	out := seriesSamples{}
	for _, s := range body.Data.Result {
		key := labels.FromMap(s.Metric).String()
		for _, v := range s.Values {
			ts := int64(math.Round(v[0].(float64) * 1000))
			f, _ := strconv.ParseFloat(v[1].(string), 64)
			out[key] = append(out[key], sample{ts, f})
		}
	}
	return out
}

func (r *receiver) vmExport(t *testing.T, selector string) seriesSamples {
	t.Helper()
	resp, err := http.Get(r.base + "/api/v1/export?" + url.Values{"match[]": {selector}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := seriesSamples{}
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var line struct {
			Metric     map[string]string
			Values     []float64
			Timestamps []int64
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		key := labels.FromMap(line.Metric).String()
		for i, ts := range line.Timestamps {
			out[key] = append(out[key], sample{ts, line.Values[i]})
		}
	}
	return out
}

// withLabel returns the samples with one more label on every series, as
// write_relabel_configs adds it.
func (s seriesSamples) withLabel(name, value string) seriesSamples {
	out := seriesSamples{}
	for k, v := range s {
		ls, err := parseSeries(k)
		if err != nil {
			panic(err)
		}
		b := labels.NewBuilder(ls)
		b.Set(name, value)
		out[b.Labels().String()] = v
	}
	return out
}

func parseSeries(s string) (labels.Labels, error) {
	// labels.String() is {a="b", c="d"}; it is valid PromQL selector syntax.
	return parser.NewParser(parser.Options{}).ParseMetric(s)
}

// waitFor polls cond every 100ms until it is true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %s", timeout, what, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// memReceiver is an in-process remote-write receiver: Prometheus's own
// write handler (protobuf 1.0 and 2.0) over a second TSDB, behind basic
// auth when a user is set.
type memReceiver struct {
	db       *TSDB
	srv      *httptest.Server
	requests atomic.Int64
	refused  atomic.Int64
	last     atomic.Pointer[http.Header]
}

func newMemReceiver(t *testing.T, user, password string) *memReceiver {
	t.Helper()
	reg := prometheus.NewRegistry()
	deps := Deps{Logger: promslog.NewNopLogger(), Registerer: reg}
	db, err := OpenTSDB(t.TempDir(), DefaultConfig(), deps)
	if err != nil {
		t.Fatal(err)
	}
	r := &memReceiver{db: db}
	h := remote.NewWriteHandler(deps.Logger, reg, db.DB, remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType}, false, true)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, _ := req.BasicAuth(); user != "" && (u != user || p != password) {
			r.refused.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.requests.Add(1)
		hdr := req.Header.Clone()
		r.last.Store(&hdr)
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(func() {
		r.srv.Close()
		db.Close()
	})
	return r
}

func (r *memReceiver) writeURL() string { return r.srv.URL + "/api/v1/write" }

func (r *memReceiver) samples(t *testing.T) seriesSamples {
	t.Helper()
	n := &node{db: r.db}
	return n.local(t, jobT)
}
