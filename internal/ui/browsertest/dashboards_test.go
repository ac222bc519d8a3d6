package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/nx-watcher/nxwatcher/internal/demo"
)

// The design doc's eight dashboards (deploy/dashboards), by uid.
var bana = []string{
	"nx-traefik-overview", "nx-backend-services", "nx-postgresql", "nx-redis",
	"nx-kafka", "nx-node-resources", "nx-bullmq-jobs", "nx-service-map",
}

// startDemo runs `nxwatcher demo` in-process (1 s scrapes, a one-minute
// incident cycle, ten minutes of backfilled metric history) and returns it
// with the admin password it wrote under the storage path.
func startDemo(t *testing.T) (*demo.Demo, string) {
	t.Helper()
	return startDemoWith(t, demo.Options{
		Rate:           20,
		IncidentCycle:  time.Minute,
		ScrapeInterval: time.Second,
		TickInterval:   250 * time.Millisecond,
		Backfill:       10 * time.Minute,
	})
}

// startDemoWith is startDemo with other options (listener and storage are
// always a free port and a temporary directory).
func startDemoWith(t *testing.T, opts demo.Options) (*demo.Demo, string) {
	t.Helper()
	dir := t.TempDir()
	opts.ListenAddress = "127.0.0.1:0"
	opts.StoragePath = dir
	d, err := demo.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	// Ready comes after the backfill: a day of history takes minutes on a busy machine.
	wait := patience(t, 90*time.Second+time.Duration(float64(opts.Backfill)/float64(24*time.Hour)*float64(10*time.Minute)))
	started := time.Now()
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("demo Run: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("demo Close: %v", err)
		}
		http.DefaultClient.CloseIdleConnections() // as startServerAt's cleanup
	})
	select {
	case <-ready:
		t.Logf("demo ready after %.1fs (backfill %s)", time.Since(started).Seconds(), opts.Backfill)
	case err := <-done:
		t.Fatalf("demo stopped before it was ready: %v", err)
	case <-time.After(wait):
		t.Fatalf("demo not ready after %v", wait)
	}
	pw, err := os.ReadFile(filepath.Join(dir, "demo", "admin-password"))
	if err != nil {
		t.Fatalf("demo admin password: %v", err)
	}
	return d, strings.TrimSpace(string(pw))
}

// waitSeries polls a PromQL query until it returns at least one series.
func waitSeries(t *testing.T, base, query string, timeout time.Duration) {
	t.Helper()
	poll(t, patience(t, timeout), "series for "+query, func() bool {
		resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		return json.NewDecoder(resp.Body).Decode(&r) == nil && len(r.Data.Result) > 0
	})
}

// login opens base and logs in as admin.
func (b *browser) login(t *testing.T, base, password string) {
	t.Helper()
	b.within(t, 30*time.Second, "log in",
		chromedp.Navigate(base+"/"),
		visible(`input[name="password"]`),
		keys(`input[name="password"]`, password),
		click(`form[aria-label="Log in"] button[type="submit"]`),
		visible(`header.topnav`),
	)
}

// panelReport is what the page says about its panels once rendered.
type panelReport struct {
	Total       int               `json:"total"`
	States      map[string]int    `json:"states"`
	Errors      []string          `json:"errors"`
	Unsupported map[string]string `json:"unsupported"` // panel id → placeholder text
	RenderedMs  float64           `json:"renderedMs"`
}

const reportJS = `(() => {
  const ps = [...document.querySelectorAll('[data-testid="panel"]')];
  const states = {};
  const errors = [];
  const unsupported = {};
  for (const p of ps) {
    const s = p.getAttribute('data-state');
    states[s] = (states[s] || 0) + 1;
    if (s === 'error') errors.push((p.getAttribute('aria-label') || p.getAttribute('data-panel-id')) + ': ' + (p.querySelector('[data-testid="panel-error"]')?.textContent || ''));
    if (s === 'unsupported') unsupported[p.getAttribute('data-panel-id')] = p.querySelector('[data-testid="panel-unsupported"]')?.textContent || '';
  }
  return JSON.stringify({total: ps.length, states, errors, unsupported, renderedMs: window.__nxDashboardRenderedMs || 0});
})()`

func (b *browser) report(t *testing.T) panelReport {
	t.Helper()
	s := get(t, b, "panel report", chromedp.Evaluate[string](reportJS))
	var r panelReport
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("panel report %q: %v", s, err)
	}
	return r
}

// openDashboard loads #/dashboards/<uid> as a fresh navigation (so the
// render time counts from navigation) and waits until every panel in view
// has left "loading".
func (b *browser) openDashboard(t *testing.T, base, uid, query string) panelReport {
	t.Helper()
	u := base + "/#/dashboards/" + uid
	if query != "" {
		u += "?" + query
	}
	b.within(t, 60*time.Second, "render "+uid,
		chromedp.Navigate(u),
		until(fmt.Sprintf(`document.querySelector('[data-testid="dashboard"][data-uid=%q][data-rendered="true"]')`, uid)),
	)
	return b.report(t)
}

// TestDashboardsInBrowser renders the eight bana dashboards over live demo
// data (no panel in error, no console error, a screenshot each), then
// imports a dashboard exported from a real Grafana through the UI and
// renders it, with its unsupported panel shown as a placeholder.
func TestDashboardsInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo and a browser")
	}
	b := newBrowser(t)
	d, pw := startDemo(t)
	base := d.URL()
	// The service graph forms once client/server span pairs are paired and
	// the generator has collected; the other series come with the first scrapes.
	for _, q := range []string{"traefik_service_requests_total", "kube_pod_info", "redis_up", "pg_up", "bull_wait_total", "kafka_consumergroup_lag", "node_uname_info", "traces_service_graph_request_total"} {
		waitSeries(t, base, q, 60*time.Second)
	}
	b.login(t, base, pw)
	b.consoleErrors() // the session probe before login is expected

	// The list names every bana dashboard.
	b.within(t, 20*time.Second, "dashboard list",
		hash("/dashboards"),
		waitCount(`[data-testid="dashboard-item"][data-uid^="nx-"]`, len(bana)),
	)
	b.screenshot(t, "dashboard-list")
	b.within(t, 20*time.Second, "search narrows the list",
		keys(`[data-testid="dashboard-search"]`, "redis"),
		waitCount(`[data-testid="dashboard-item"]`, 1),
		visible(`[data-testid="dashboard-item"][data-uid="nx-redis"]`),
	)

	for _, uid := range bana {
		t.Run(uid, func(t *testing.T) {
			r := b.openDashboard(t, base, uid, "from=now-15m&to=now")
			b.screenshot(t, uid)
			t.Logf("%s: %d panels %v, rendered in %.0f ms", uid, r.Total, r.States, r.RenderedMs)
			if r.Total == 0 {
				t.Errorf("no panels rendered")
			}
			if len(r.Errors) > 0 {
				t.Errorf("panels in error:\n  %s", strings.Join(r.Errors, "\n  "))
			}
			if len(r.Unsupported) > 0 {
				t.Errorf("unsupported panels: %v", r.Unsupported)
			}
			if r.States["ready"] == 0 {
				t.Errorf("no panel has data: %v", r.States)
			}
			if errs := b.consoleErrors(); len(errs) > 0 {
				t.Errorf("console errors:\n  %s", strings.Join(errs, "\n  "))
			}
		})
	}

	t.Run("rows collapse and panel view", func(t *testing.T) {
		r := b.openDashboard(t, base, "nx-backend-services", "")
		before := r.Total
		b.within(t, 10*time.Second, "collapse the first row",
			click(`[data-testid="row"] button`),
			until(fmt.Sprintf(`document.querySelectorAll('[data-testid="panel"]').length < %d`, before)),
		)
		b.within(t, 10*time.Second, "expand it again",
			click(`[data-testid="row"][data-collapsed="true"] button`),
			waitCount(`[data-testid="panel"]`, before),
		)
		b.within(t, 20*time.Second, "view one panel",
			run(`document.querySelector('[data-testid="panel"] [data-testid="panel-view"]').click()`),
			waitCount(`[data-testid="panel"]`, 1),
			until(`location.hash.includes('viewPanel=')`),
		)
		b.screenshot(t, "panel-view")
		b.within(t, 20*time.Second, "explore this query",
			until(`document.querySelector('[data-testid="panel-explore"]')`),
			run(`document.querySelector('[data-testid="panel-explore"]').click()`),
			until(`location.hash.startsWith('#/explore/')`),
			visible(`.cm-editor`),
		)
		if errs := b.consoleErrors(); len(errs) > 0 {
			t.Errorf("console errors:\n  %s", strings.Join(errs, "\n  "))
		}
	})

	t.Run("variables and links", func(t *testing.T) {
		b.openDashboard(t, base, "nx-traefik-overview", "")
		const svc = "nx-backend-backend-3000@kubernetes"
		b.within(t, 30*time.Second, "pick one service",
			click(`[data-testid="var-service"] button`),
			click(fmt.Sprintf(`[data-testid="var-service"] input[data-value=%q]`, svc)),
			click(`[data-testid="var-service"] .var-pop button.primary`),
			until(`location.hash.includes('var-service=nx-backend-backend-3000%40kubernetes')`),
			until(fmt.Sprintf(`document.querySelector('[data-testid="var-service"] .var-summary').textContent === %q`, svc)),
			until(`document.querySelector('[data-testid="dashboard"][data-rendered="true"]') && !document.querySelector('[data-testid="panel"][data-state="loading"]')`),
		)
		if r := b.report(t); len(r.Errors) > 0 || r.States["ready"] == 0 {
			t.Errorf("after picking a service: %v, errors %v", r.States, r.Errors)
		}
		// Hovering a time series shows the values under the cursor.
		rect := get(t, b, "chart position", chromedp.Evaluate[[]float64](`(() => {
  const r = document.querySelector('[data-testid="panel"][data-panel-type="timeseries"] .u-over').getBoundingClientRect();
  return [r.left + r.width * 0.9, r.top + r.height / 2];
})()`))
		b.within(t, 10*time.Second, "hover tooltip",
			chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, rect[0], rect[1]),
			until(`[...document.querySelectorAll('.graph-tip')].some((e) => e.style.display === 'block' && e.textContent.includes('req/s'))`),
		)
		b.screenshot(t, "traefik-one-service")
		// The "bana dashboards" link menu keeps the time range.
		b.within(t, 20*time.Second, "follow a dashboard link",
			click(`[data-testid="dashboard-links"] button`),
			click(`[data-testid="dashboard-links"] a[href^="#/dashboards/nx-redis?"]`),
			until(`location.hash.startsWith('#/dashboards/nx-redis?from=')`),
			until(`document.querySelector('[data-testid="dashboard"][data-uid="nx-redis"][data-rendered="true"]')`),
		)
		if errs := b.consoleErrors(); len(errs) > 0 {
			t.Errorf("console errors:\n  %s", strings.Join(errs, "\n  "))
		}
	})

	t.Run("import a Grafana export", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join("testdata", "third-party-grafana.json"))
		if err != nil {
			t.Fatal(err)
		}
		b.within(t, 20*time.Second, "open the import form",
			hash("/dashboards"),
			click(`[data-testid="dashboard-import"]`),
			visible(`[data-testid="dashboard-import-json"]`),
			// React reads the textarea through its input event: set the value
			// the way typing would, without typing 20 KB.
			run(`(() => {
  const el = document.querySelector('[data-testid="dashboard-import-json"]');
  Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(el, `+jsString(string(raw))+`);
  el.dispatchEvent(new Event('input', {bubbles: true}));
})()`),
			click(`[data-testid="dashboard-import-submit"]`),
			until(`location.hash.startsWith('#/dashboards/third-party-platform')`),
			until(`document.querySelector('[data-testid="dashboard"][data-uid="third-party-platform"][data-rendered="true"]')`),
		)
		r := b.report(t)
		b.screenshot(t, "third-party")
		t.Logf("third-party: %d panels %v", r.Total, r.States)
		if len(r.Errors) > 0 {
			t.Errorf("panels in error:\n  %s", strings.Join(r.Errors, "\n  "))
		}
		if got := r.Unsupported["10"]; !strings.Contains(got, "state-timeline") {
			t.Errorf("the state-timeline panel shows %q, want a placeholder naming the type (unsupported: %v)", got, r.Unsupported)
		}
		if len(r.Unsupported) != 1 {
			t.Errorf("unsupported panels %v, want only the state-timeline", r.Unsupported)
		}
		// Every panel type the export uses other than state-timeline drew.
		for _, typ := range []string{"text", "gauge", "bargauge", "piechart", "stat", "heatmap", "table", "timeseries"} {
			n := get(t, b, "count "+typ, count(fmt.Sprintf(`[data-testid="panel"][data-panel-type=%q]:not([data-state="error"]):not([data-state="unsupported"])`, typ)))
			if n == 0 {
				t.Errorf("no %s panel rendered", typ)
			}
		}
		// The heatmap painted cells (histogram buckets over time).
		painted := get(t, b, "heatmap pixels", chromedp.Evaluate[int](`(() => {
  const c = document.querySelector('[data-testid="heatmap"] canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
})()`))
		if painted == 0 {
			t.Error("the heatmap painted no cell")
		}
		b.within(t, 10*time.Second, "scroll to the heatmap", run(`document.querySelector('[data-testid="heatmap"]').scrollIntoView()`))
		b.screenshot(t, "third-party-heatmap")
		// The markdown's <script> is text, not a script; the link is kept.
		html := get(t, b, "text panel", chromedp.Evaluate[string](`document.querySelector('[data-testid="panel-text"]').innerHTML`))
		if strings.Contains(html, "<script") || !strings.Contains(html, `href="https://runbooks.example.com/platform"`) {
			t.Errorf("text panel HTML not sanitised as expected: %s", html)
		}
		// The collapsed row holds the logs panel; expanding it queries Loki.
		b.within(t, 30*time.Second, "expand the collapsed logs row",
			click(`[data-testid="row"][data-collapsed="true"] button`),
			until(`document.querySelector('[data-testid="panel"][data-panel-type="logs"]:not([data-state="loading"])')`),
		)
		if st := get(t, b, "logs state", chromedp.Evaluate[string](`document.querySelector('[data-testid="panel"][data-panel-type="logs"]').getAttribute('data-state')`)); st != "ready" {
			t.Errorf("logs panel state %q, want ready", st)
		}
		b.screenshot(t, "third-party-logs")
		// Variables are in the URL as Grafana keeps them.
		b.within(t, 20*time.Second, "variable from the URL",
			chromedp.Navigate(base+"/#/dashboards/third-party-platform?var-env=stage"),
			until(`document.querySelector('[data-testid="dashboard"][data-rendered="true"]')`),
			until(`document.querySelector('[data-testid="var-env"] select').value === 'stage'`),
		)
		if errs := b.consoleErrors(); len(errs) > 0 {
			t.Errorf("console errors:\n  %s", strings.Join(errs, "\n  "))
		}
	})
}

// run evaluates a JavaScript statement for its effect.
func run(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool]("("+js+", true)")(ctx, t)
		return err
	})
}
