package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/prompb"

	"github.com/nx-watcher/nxwatcher/internal/app"
	"github.com/nx-watcher/nxwatcher/internal/config"
	"github.com/nx-watcher/nxwatcher/internal/testbin"
)

const (
	adminPassword = "browser-test-pw"
	traceID       = "4bf92f3577b34da6a3ce929d0e0e4736"
)

// server is an in-process `nxwatcher serve` on 127.0.0.1:0.
type server struct {
	app      *app.App
	url      string // main listener, no trailing slash
	otlpHTTP string // OTLP/HTTP base URL
	cancel   context.CancelFunc
	done     chan error
}

// startServer runs serve with a config that scrapes a live exporter (up)
// and a port nothing listens on (down), and the admin password from a file.
func startServer(t *testing.T) *server {
	t.Helper()
	return startServerAt(t, "")
}

// startServerAt is startServer under a --web.route-prefix ("" for none);
// s.url includes the prefix.
func startServerAt(t *testing.T, routePrefix string) *server {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pw, []byte(adminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "# TYPE ui_test_exporter_up gauge\nui_test_exporter_up 1\n")
	}))
	t.Cleanup(exporter.Close)
	rules := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: browsertest
    rules:
      - alert: BrowserTestAlert
        expr: vector(1)
        labels: {severity: critical}
        annotations: {summary: "the browser test fires this"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Port 1 on loopback: nothing listens there, so that scrape fails at once
	// with "connection refused".
	cfg := fmt.Sprintf(`metrics:
  prometheus:
    global: {scrape_interval: 1s, evaluation_interval: 1s}
    rule_files: ['%s']
    scrape_configs:
      - job_name: live
        static_configs: [{targets: ['%s']}]
      - job_name: dead
        static_configs: [{targets: ['127.0.0.1:1']}]
alerting:
  alertmanager:
    route: {receiver: nowhere, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
    receivers:
      - name: nowhere
traces:
  generator:
    collection_interval: 1s
ui:
  admin_password_file: %s
`, rules, strings.TrimPrefix(exporter.URL, "http://"), pw)
	cfgFile := filepath.Join(dir, "serve.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	a, err := app.New(app.Options{ConfigFile: cfgFile, StoragePath: data, ListenAddress: "127.0.0.1:0", RoutePrefix: routePrefix, Flags: map[string]string{"storage.path": data}},
		app.Deps{Logger: promslog.NewNopLogger(), AdjustConfig: func(c *config.Config) {
			c.OTLP.GRPCEndpoint = "127.0.0.1:0"
			c.OTLP.HTTPEndpoint = "127.0.0.1:0"
		}})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	s := &server{app: a, url: "http://" + a.Addr().String() + strings.TrimSuffix(routePrefix, "/"), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-s.done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		// The test's own HTTP clients (http.Get, remote write) keep idle
		// connections to the stopped server; closing them here ends their
		// read and write loops now, not whenever they see the server's close.
		http.DefaultClient.CloseIdleConnections()
	})
	poll(t, patience(t, 15*time.Second), "ready", func() bool { return s.status("/-/ready") == http.StatusOK })
	_, h := a.OTLPAddrs()
	if h == nil {
		t.Fatal("no OTLP/HTTP listener")
	}
	s.otlpHTTP = "http://" + h.String()
	return s
}

func (s *server) status(path string) int {
	resp, err := http.Get(s.url + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *server) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func post(t *testing.T, url, contentType string, body []byte) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
}

// fixture is what pushData sent, for the assertions.
type fixture struct {
	now            time.Time
	checkoutLines  int // lines of {service_name="checkout"}
	checkoutTraced int // of those, lines that carry traceID
	series         int // series of ui_test_requests_total
	spans          int // spans of traceID
}

// pushData sends metrics by remote write 1.0, logs by Loki push (JSON) and a
// trace by OTLP/HTTP (JSON), all within the last minute.
func pushData(t *testing.T, s *server) fixture {
	t.Helper()
	f := fixture{now: time.Now(), series: 3, spans: 3}

	w, err := remoteapi.NewAPI(s.url, remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: 1}))
	if err != nil {
		t.Fatal(err)
	}
	var ts []prompb.TimeSeries
	for i, path := range []string{"/a", "/b", "/c"} {
		var samples []prompb.Sample
		for k := 12; k >= 0; k-- {
			samples = append(samples, prompb.Sample{Timestamp: f.now.Add(-time.Duration(k) * 10 * time.Second).UnixMilli(), Value: float64((i + 1) * (13 - k))})
		}
		series := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "ui_test_requests_total"}, {Name: "path", Value: path}, {Name: "job", Value: "browsertest"}}, Samples: samples}
		if i == 0 {
			// One exemplar that points at the pushed trace.
			last := samples[len(samples)-1]
			series.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: traceID}}, Value: last.Value, Timestamp: last.Timestamp}}
		}
		ts = append(ts, series)
	}
	if _, err := w.Write(t.Context(), remoteapi.WriteV1MessageType, &prompb.WriteRequest{Timeseries: ts}); err != nil {
		t.Fatalf("remote write: %v", err)
	}

	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][2]string       `json:"values"`
	}
	levels := []string{"info", "warn", "error", "debug"}
	var checkout, payments [][2]string
	for i := range 40 {
		ts := f.now.Add(-time.Duration(40-i) * time.Second)
		line := fmt.Sprintf("level=%s msg=\"checkout step %d\"", levels[i%4], i)
		if i%8 == 0 {
			line += " trace_id=" + traceID
			f.checkoutTraced++
		}
		checkout = append(checkout, [2]string{fmt.Sprint(ts.UnixNano()), line})
		f.checkoutLines++
		if i%4 == 0 {
			payments = append(payments, [2]string{fmt.Sprint(ts.UnixNano()), fmt.Sprintf("level=info msg=\"charge %d\" trace_id=%s", i, traceID)})
		}
	}
	body, _ := json.Marshal(map[string][]stream{"streams": {
		{Stream: map[string]string{"service_name": "checkout", "env": "test"}, Values: checkout},
		{Stream: map[string]string{"service_name": "payments", "env": "test"}, Values: payments},
	}})
	post(t, s.url+"/loki/api/v1/push", "application/json", body)

	start := f.now.Add(-20 * time.Second)
	ns := func(d time.Duration) string { return fmt.Sprint(start.Add(d).UnixNano()) }
	span := func(id, parent, name string, kind int, from, to time.Duration) map[string]any {
		m := map[string]any{"traceId": traceID, "spanId": id, "name": name, "kind": kind, "startTimeUnixNano": ns(from), "endTimeUnixNano": ns(to),
			"attributes": []any{map[string]any{"key": "http.method", "value": map[string]any{"stringValue": "POST"}}}}
		if parent != "" {
			m["parentSpanId"] = parent
		}
		return m
	}
	res := func(svc string, spans ...map[string]any) map[string]any {
		return map[string]any{
			"resource":   map[string]any{"attributes": []any{map[string]any{"key": "service.name", "value": map[string]any{"stringValue": svc}}}},
			"scopeSpans": []any{map[string]any{"scope": map[string]any{"name": "browsertest"}, "spans": spans}},
		}
	}
	body, _ = json.Marshal(map[string]any{"resourceSpans": []any{
		res("checkout", span("00f067aa0ba902b7", "", "POST /checkout", 2, 0, 300*time.Millisecond), span("00f067aa0ba902b8", "00f067aa0ba902b7", "charge card", 3, 20*time.Millisecond, 250*time.Millisecond)),
		res("payments", span("00f067aa0ba902b9", "00f067aa0ba902b8", "charge", 2, 30*time.Millisecond, 240*time.Millisecond)),
	}})
	post(t, s.otlpHTTP+"/v1/traces", "application/json", body)

	// Wait until every signal answers, so the browser's first query sees it.
	poll(t, 15*time.Second, "trace stored", func() bool { return s.status("/api/v2/traces/"+traceID) == http.StatusOK })
	poll(t, 15*time.Second, "logs queryable", func() bool {
		var r struct {
			Data struct {
				Result []struct{ Values [][]any } `json:"result"`
			} `json:"data"`
		}
		s.getJSON(t, fmt.Sprintf("/loki/api/v1/query_range?query=%s&limit=1000&start=%d", urlQuery(`{service_name="checkout"}`), f.now.Add(-5*time.Minute).UnixNano()), &r)
		n := 0
		for _, st := range r.Data.Result {
			n += len(st.Values)
		}
		return n == f.checkoutLines
	})
	return f
}

// pushLine sends one line now to a stream of service_name=svc (Loki push, JSON).
func pushLine(t *testing.T, s *server, svc, line string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"streams": []any{map[string]any{
		"stream": map[string]string{"service_name": svc, "env": "test"},
		"values": [][2]string{{fmt.Sprint(time.Now().UnixNano()), line}},
	}}})
	post(t, s.url+"/loki/api/v1/push", "application/json", body)
}

func urlQuery(s string) string {
	r := strings.NewReplacer(`{`, "%7B", `}`, "%7D", `"`, "%22", `=`, "%3D", ` `, "%20", `|`, "%7C")
	return r.Replace(s)
}

// patience is how long to wait for something that only gets slower with
// load and the race detector (a start-up, a backfill, the first scrapes):
// five times floor, cut to the test binary's deadline less a minute for the
// cleanups. A fixed floor alone failed on a loaded machine (the demo's
// 10-minute backfill took over its 94 s under -race at load 15) though
// nothing was wrong; a real hang still fails by name, within 5 x floor.
func patience(t *testing.T, floor time.Duration) time.Duration {
	d := 5 * floor
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - time.Minute; left < d {
			d = max(left, floor)
		}
	}
	return d
}

func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// browser is one headless chromium with a fresh profile that records
// console errors and uncaught exceptions.
type browser struct {
	ctx       context.Context
	artifacts string
	mu        sync.Mutex
	errors    []string
	shot      int
}

// Network errors the UI causes on purpose: the session probe before login
// (401) and the wrong-password attempt (401). Chromium logs each failed
// fetch as a console error; nothing else may be.
var expectedNetworkErrors = regexp.MustCompile(`/api/ui/(session|login)\b`)

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := testbin.Require(t, "chromium", "chromium")
	art := os.Getenv("NXWATCHER_ARTIFACTS")
	if art == "" {
		art = t.TempDir()
	} else {
		art = filepath.Join(art, "ui-browser", t.Name())
		if err := os.MkdirAll(art, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	}
	b := &browser{artifacts: art}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.onEvent))
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	// The first Run starts the browser and binds it to ctx (no timeout on it;
	// each step gets its own deadline in within).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx = ctx
	return b
}

func (b *browser) onEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.record(fmt.Sprintf("exception: %s at %s:%d", msg, d.URL, d.LineNumber))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			b.record("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			if ev.Entry.Source == cdplog.EntrySourceNetwork && expectedNetworkErrors.MatchString(ev.Entry.URL) {
				return
			}
			b.record(fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	}
}

func (b *browser) record(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

// consoleErrors returns and forgets the errors seen so far.
func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errors
	b.errors = nil
	return e
}

// within runs actions with their own deadline, so a missing element fails
// the step by its name instead of hanging the test.
func (b *browser) within(t *testing.T, d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.screenshot(t, "FAILED-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value, within 10 s.
func get[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves the viewport as a numbered PNG under the artifacts dir.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.shot++
	p := filepath.Join(b.artifacts, fmt.Sprintf("%02d-%s.png", b.shot, name))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Errorf("save screenshot: %v", err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// hash moves the single-page app to a route without reloading it.
func hash(route string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool]("(location.hash = "+jsString(route)+", true)")(ctx, t)
		return err
	})
}

// count is how many elements match the CSS selector sel.
func count(sel string) chromedp.Action[int] {
	return chromedp.Evaluate[int]("document.querySelectorAll(" + jsString(sel) + ").length")
}

// waitCount waits until exactly n elements match sel.
func waitCount(sel string, n int) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			got, err := count(sel)(ctx, t)
			if err != nil {
				return err
			}
			if got == n {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%d elements match %s, want %d: %w", got, sel, n, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// visible waits until an element matching the CSS selector is visible.
func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)
}

func keys(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible)
}

func text(sel string) chromedp.Action[string] {
	return chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)
}

// until waits until the JavaScript expression is true.
func until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			ok, err := chromedp.Evaluate[bool]("!!("+expr+")")(ctx, t)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("never true: %s: %w", expr, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}
