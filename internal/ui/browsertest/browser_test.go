package browsertest

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestUIInBrowser walks every page an on-call engineer uses, in one browser
// against one server: login (a wrong password refused first), a PromQL chart
// with the expected series, LogQL lines and the volume histogram, a trace by
// ID with its spans, trace → logs landing on the trace's lines, a silence
// created and expired, and the targets page with an up and a down target.
// Every page is screenshotted; no console error may appear.
func TestUIInBrowser(t *testing.T) {
	b := newBrowser(t)
	s := startServer(t)
	f := pushData(t, s)
	base := s.url + "/"
	const wait = 20 * time.Second

	// Login: the SPA asks /api/ui/session, gets 401, shows the form.
	b.within(t, wait, "open UI", chromedp.Navigate(base))
	b.within(t, wait, "login form", visible(`form[aria-label="Log in"]`))
	b.screenshot(t, "login")
	b.within(t, wait, "wrong password",
		keys(`input[name="password"]`, "not-the-password"),
		click(`form[aria-label="Log in"] button[type="submit"]`),
		visible(`[data-testid="login-error"]`),
	)
	loginErr := get(t, b, "read login error", text(`[data-testid="login-error"]`))
	if !strings.Contains(loginErr, "Wrong") {
		t.Errorf("wrong password shows %q, want the wrong-password message", loginErr)
	}
	b.screenshot(t, "login-refused")
	b.within(t, wait, "right password",
		chromedp.Reload(),
		visible(`input[name="password"]`),
		keys(`input[name="password"]`, adminPassword),
		click(`form[aria-label="Log in"] button[type="submit"]`),
		visible(`header.topnav`),
	)
	who := get(t, b, "session user", text(`[data-testid="session-user"]`))
	if !strings.Contains(who, "admin") {
		t.Errorf("logged-in user shows %q, want admin", who)
	}

	// PromQL: three remote-written series → a chart with three series.
	b.within(t, wait, "PromQL chart",
		hash("/explore/metrics?"+url.Values{"query": {"ui_test_requests_total"}, "from": {"now-15m"}, "to": {"now"}}.Encode()),
		visible(fmt.Sprintf(`[data-testid="graph"][data-series="%d"] canvas`, f.series)),
		visible(`.cm-editor`), // the lazy CodeMirror chunk replaced the fallback
	)
	b.screenshot(t, "explore-metrics")
	// The exemplar carries trace_id: it is drawn on the chart and listed with
	// a link that opens the trace.
	exemplarLink := fmt.Sprintf(`[data-testid="exemplars"] a[href*=%q]`, "/explore/traces/"+traceID)
	b.within(t, wait, "exemplar opens its trace",
		click(`[data-testid="exemplars"] summary`),
		click(exemplarLink),
		waitCount(`[data-testid="span-row"]`, f.spans),
	)
	b.within(t, wait, "PromQL table",
		hash("/explore/metrics?"+url.Values{"query": {"ui_test_requests_total"}, "mode": {"instant"}}.Encode()),
		waitCount(`[data-testid="result-table"] tbody tr`, f.series),
	)
	b.screenshot(t, "explore-metrics-table")

	// LogQL: every checkout line, and a volume histogram with the 4 levels.
	logQuery := `{service_name="checkout"}`
	b.within(t, wait, "LogQL lines",
		hash("/explore/logs?"+url.Values{"query": {logQuery}, "from": {"now-15m"}, "to": {"now"}}.Encode()),
		visible(fmt.Sprintf(`[data-testid="log-list"][data-count="%d"]`, f.checkoutLines)),
		visible(`[data-testid="volume-bar"]`),
	)
	levels := get(t, b, "volume levels", chromedp.Evaluate[string](`document.querySelector('[data-testid="volume"]').dataset.levels`))
	for _, l := range []string{"error", "warn", "info", "debug"} {
		if !strings.Contains(levels, l) {
			t.Errorf("volume histogram levels %q lack %s", levels, l)
		}
	}
	b.within(t, wait, "labels and fields per line", click(`input[type="checkbox"]`), visible(`[data-testid="log-fields"]`))
	if fields := get(t, b, "log fields", text(`[data-testid="log-fields"]`)); !strings.Contains(fields, "service_name=checkout") || !strings.Contains(fields, "env=test") {
		t.Errorf("a log line's labels read %q, want service_name=checkout and env=test", fields)
	}
	lineCount := get(t, b, "log count", text(`[data-testid="log-count"]`))
	if lineCount != fmt.Sprintf("%d lines", f.checkoutLines) {
		t.Errorf("log count reads %q, want %d lines", lineCount, f.checkoutLines)
	}
	b.screenshot(t, "explore-logs")

	// Live tail over the WebSocket: a line pushed after "Live" shows up.
	b.within(t, wait, "live tail starts",
		click(`[data-testid="live-tail"]`),
		until(`document.querySelector('[data-testid="live-status"]')?.textContent === "live"`),
	)
	liveLine := fmt.Sprintf("level=info msg=\"tailed %d\"", time.Now().UnixNano())
	pushLine(t, s, "checkout", liveLine)
	b.within(t, wait, "live tail line", until(fmt.Sprintf(`[...document.querySelectorAll('[data-testid="log-line"] .line')].some(e => e.textContent === %s)`, jsString(liveLine))))
	b.screenshot(t, "explore-logs-live")
	b.within(t, wait, "live tail stops", click(`[data-testid="live-tail"]`))

	// Trace by ID: the waterfall has the pushed spans.
	b.within(t, wait, "trace view",
		hash("/explore/traces/"+traceID),
		waitCount(`[data-testid="span-row"]`, f.spans),
	)
	spanCount := get(t, b, "span count", text(`[data-testid="span-count"]`))
	if spanCount != fmt.Sprint(f.spans) {
		t.Errorf("trace view says %q spans, want %d", spanCount, f.spans)
	}
	for _, name := range []string{"POST /checkout", "charge card", "charge"} {
		n := get(t, b, "span "+name, count(fmt.Sprintf(`[data-testid="span-row"][data-span-name=%q]`, name)))
		if n != 1 {
			t.Errorf("span %q shown %d times, want 1", name, n)
		}
	}
	b.within(t, wait, "span detail", click(`[data-testid="span-row"][data-span-name="charge"]`), visible(`[data-testid="span-detail"]`))
	b.screenshot(t, "trace-view")

	// Trace → logs: the root service's lines that carry the trace ID, only.
	b.within(t, wait, "trace to logs",
		click(`[data-testid="trace-to-logs"]`),
		visible(fmt.Sprintf(`[data-testid="log-list"][data-count="%d"]`, f.checkoutTraced)),
	)
	lines := get(t, b, "trace log lines", chromedp.Evaluate[[]string](`[...document.querySelectorAll('[data-testid="log-line"] .line')].map(e => e.textContent)`))
	if len(lines) != f.checkoutTraced {
		t.Errorf("trace → logs shows %d lines, want %d", len(lines), f.checkoutTraced)
	}
	for _, l := range lines {
		if !strings.Contains(l, traceID) || !strings.Contains(l, "checkout step") {
			t.Errorf("trace → logs shows %q: not a checkout line of the trace", l)
		}
	}
	logHash := get(t, b, "logs URL", chromedp.Evaluate[string](`new URLSearchParams(location.hash.split('?')[1]).get('query')`))
	if want := `{service_name="checkout"} |= "` + traceID + `"`; logHash != want {
		t.Errorf("trace → logs query %q, want %q", logHash, want)
	}
	b.screenshot(t, "trace-to-logs")

	// Traces search page.
	b.within(t, wait, "trace search",
		hash("/explore/traces?"+url.Values{"q": {`{ resource.service.name = "checkout" }`}, "from": {"now-15m"}, "to": {"now"}}.Encode()),
		visible(fmt.Sprintf(`[data-testid="trace-results"] a[href*=%q]`, traceID)),
	)
	b.screenshot(t, "explore-traces")

	// Silence: create from the form, see it active, expire it.
	comment := fmt.Sprintf("browser test %d", time.Now().UnixNano())
	b.within(t, wait, "silence form",
		hash("/alerting?tab=silences"),
		visible(`[data-testid="silences"]`),
		click(`[data-testid="silences"] button`),
		visible(`[data-testid="silence-form"]`),
		keys(`input[aria-label="Matchers"]`, `alertname="BrowserTest", severity=~"warn|critical"`),
		keys(`input[aria-label="Author"]`, "browsertest"),
		keys(`input[aria-label="Comment"]`, comment),
	)
	b.screenshot(t, "silence-form")
	active := fmt.Sprintf(`[data-testid="silence"][data-state="active"][data-comment=%q]`, comment)
	b.within(t, wait, "silence created",
		click(`[data-testid="silence-form"] button[type="submit"]`),
		visible(active),
	)
	b.screenshot(t, "silence-active")
	b.within(t, wait, "silence expired",
		click(active+` [data-testid="expire-silence"]`),
		waitCount(active, 0),
	)
	var silences []struct {
		Comment string `json:"comment"`
		Status  struct {
			State string `json:"state"`
		} `json:"status"`
	}
	s.getJSON(t, "/api/v2/silences", &silences)
	found := false
	for _, sl := range silences {
		if sl.Comment == comment {
			found = true
			if sl.Status.State != "expired" {
				t.Errorf("silence after Expire is %q, want expired", sl.Status.State)
			}
		}
	}
	if !found {
		t.Errorf("the silence created in the UI is not in /api/v2/silences")
	}
	// An alert fires (rule BrowserTestAlert: vector(1)); silencing it from
	// the alerts list prefills its labels, and the alert becomes suppressed.
	firing := `[data-testid="alert"][data-alertname="BrowserTestAlert"]`
	b.within(t, 30*time.Second, "firing alert", hash("/alerting"), reloadUntil(firing+`[data-state="active"]`, "/alerting"))
	b.screenshot(t, "alerting-alerts-firing")
	b.within(t, wait, "silence from alert",
		click(firing+` [data-testid="silence-alert"]`),
		visible(`[data-testid="silence-form"]`),
	)
	matchers := get(t, b, "prefilled matchers", chromedp.Value(chromedp.CSS(`input[aria-label="Matchers"]`)))
	if !strings.Contains(matchers, `alertname="BrowserTestAlert"`) || !strings.Contains(matchers, `severity="critical"`) {
		t.Errorf("silence form from the alert has matchers %q, want its labels", matchers)
	}
	b.within(t, 30*time.Second, "alert suppressed",
		keys(`input[aria-label="Author"]`, "browsertest"),
		keys(`input[aria-label="Comment"]`, "silenced from the alert"),
		click(`[data-testid="silence-form"] button[type="submit"]`),
		waitCount(`[data-testid="silence-form"]`, 0),
		reloadUntil(firing+`[data-state="suppressed"]`, "/alerting"),
	)
	b.screenshot(t, "alerting-alert-silenced")
	b.within(t, wait, "rule firing", hash("/alerting?tab=rules"), visible(`[data-testid="rule"][data-rule="BrowserTestAlert"][data-state="firing"]`))

	for _, tab := range []string{"alerts", "rules", "receivers"} {
		b.within(t, wait, "alerting "+tab, hash("/alerting?tab="+tab), visible(`[data-testid="alerting"] .tabs`))
		b.screenshot(t, "alerting-"+tab)
	}

	// Targets: one up, one down (with its error).
	b.within(t, 30*time.Second, "targets",
		hash("/status"),
		visible(`[data-testid="target"][data-health="up"]`),
		reloadUntil(`[data-testid="target"][data-health="down"]`, "/status"),
	)
	downErr := get(t, b, "down target error", text(`[data-testid="target"][data-health="down"] td.error`))
	if !strings.Contains(downErr, "refused") {
		t.Errorf("down target's last error %q, want connection refused", downErr)
	}
	b.screenshot(t, "status-targets")
	for _, tab := range []string{"sd", "config", "tsdb", "build", "flags"} {
		b.within(t, wait, "status "+tab, hash("/status?tab="+tab), visible(`[data-testid="status"] .tabs`), chromedp.Sleep(300*time.Millisecond))
		b.screenshot(t, "status-"+tab)
	}
	// Service map: the metrics-generator's edge checkout → payments (from the
	// client span "charge card" and the server span "charge"); a node links
	// to its traces.
	edge := `[data-testid="svc-edge"][data-client="checkout"][data-server="payments"]`
	b.within(t, 30*time.Second, "service map", hash("/service-map"), reloadUntil(edge, "/service-map"))
	b.screenshot(t, "service-map")
	b.within(t, wait, "service map node to traces",
		click(`[data-testid="svc-node"][data-name="payments"] circle`),
		visible(fmt.Sprintf(`[data-testid="trace-results"] a[href*=%q]`, traceID)),
	)

	// Traces → metrics: the root service's request rate from the span metrics.
	b.within(t, 30*time.Second, "trace to metrics",
		hash("/explore/traces/"+traceID),
		visible(`[data-testid="trace-to-metrics"]`),
		click(`[data-testid="trace-to-metrics"]`),
		reloadUntilGraph(),
	)
	metricsQuery := get(t, b, "metrics URL", chromedp.Evaluate[string](`new URLSearchParams(location.hash.split('?')[1]).get('query')`))
	if want := `sum(rate(traces_spanmetrics_calls_total{service="checkout"}[5m]))`; metricsQuery != want {
		t.Errorf("trace → metrics query %q, want %q", metricsQuery, want)
	}
	b.screenshot(t, "trace-to-metrics")
	b.within(t, wait, "dashboards", hash("/dashboards"), visible(`[data-testid="dashboards"]`))
	b.screenshot(t, "dashboards")

	// Logout ends the session: the login form is back and the session is gone.
	b.within(t, wait, "logout",
		chromedp.Click(chromedp.Search(`//button[text()="Log out"]`), chromedp.NodeVisible),
		visible(`form[aria-label="Log in"]`),
		chromedp.Reload(),
		visible(`form[aria-label="Log in"]`),
	)

	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors in the browser:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("screenshots in %s", b.artifacts)
}

// reloadUntil reloads a route until sel appears: pages read their data once
// when they open, and e.g. the dead target's first scrape may come later.
func reloadUntil(sel, route string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			n, err := count(sel)(ctx, t)
			if err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			// A full reload: pages read their data once when they open.
			if _, err := hash(route)(ctx, t); err != nil {
				return err
			}
			if _, err := chromedp.Reload()(ctx, t); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s never appeared: %w", sel, ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
}

// reloadUntilGraph re-runs the current Explore metrics query until it draws
// one series: span metrics appear at the generator's next collection.
func reloadUntilGraph() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			n, err := count(`[data-testid="graph"][data-series="1"] canvas`)(ctx, t)
			if err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := click(`button[aria-label="Refresh"]`)(ctx, t); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("no one-series graph: %w", ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
}

// TestUIUnderRoutePrefix: with --web.route-prefix the UI, its assets and
// every API call it makes live below the prefix (hash routes, relative URLs).
func TestUIUnderRoutePrefix(t *testing.T) {
	b := newBrowser(t)
	s := startServerAt(t, "/nx/")
	f := pushData(t, s)
	const wait = 20 * time.Second
	b.within(t, wait, "login under prefix",
		chromedp.Navigate(s.url+"/"),
		visible(`input[name="password"]`),
		keys(`input[name="password"]`, adminPassword),
		click(`form[aria-label="Log in"] button[type="submit"]`),
		visible(`header.topnav`),
	)
	b.within(t, wait, "PromQL under prefix",
		hash("/explore/metrics?"+url.Values{"query": {"ui_test_requests_total"}, "from": {"now-15m"}, "to": {"now"}}.Encode()),
		visible(fmt.Sprintf(`[data-testid="graph"][data-series="%d"] canvas`, f.series)),
		visible(`.cm-editor`),
	)
	b.within(t, wait, "LogQL under prefix",
		hash("/explore/logs?"+url.Values{"query": {`{service_name="checkout"}`}, "from": {"now-15m"}, "to": {"now"}}.Encode()),
		visible(fmt.Sprintf(`[data-testid="log-list"][data-count="%d"]`, f.checkoutLines)),
	)
	b.within(t, wait, "trace under prefix", hash("/explore/traces/"+traceID), waitCount(`[data-testid="span-row"]`, f.spans))
	b.screenshot(t, "route-prefix-trace")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors in the browser:\n%s", strings.Join(errs, "\n"))
	}
}
