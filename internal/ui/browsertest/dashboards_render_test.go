package browsertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/nx-watcher/nxwatcher/deploy/dashboards"
	"github.com/nx-watcher/nxwatcher/internal/demo"
)

// combined joins dashboards into one: their panels stacked in order, their
// variables together (the files chosen must not share a variable name).
func combined(t *testing.T, uid string, files ...string) []byte {
	t.Helper()
	var panels, vars []any
	yOff := 0.0
	for _, f := range files {
		raw, err := dashboards.FS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels     []map[string]any `json:"panels"`
			Templating struct {
				List []any `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		bottom := 0.0
		for _, p := range d.Panels {
			g := p["gridPos"].(map[string]any)
			y := g["y"].(float64)
			bottom = max(bottom, y+g["h"].(float64))
			g["y"] = y + yOff
			p["id"] = float64(len(panels) + 1)
			panels = append(panels, p)
		}
		yOff += bottom
		vars = append(vars, d.Templating.List...)
	}
	out, err := json.Marshal(map[string]any{"dashboard": map[string]any{
		"uid": uid, "title": "Render benchmark " + uid, "schemaVersion": 39, "panels": panels,
		"templating": map[string]any{"list": vars}, "time": map[string]any{"from": "now-24h", "to": "now"},
	}, "overwrite": true})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDashboardRenderTime measures how long dashboards take to render
// completely (every panel out of "loading", window.__nxDashboardRenderedMs)
// over 24 hours of backfilled demo metrics, in headless chromium: each bana
// dashboard and one of 23 panels (Traefik Overview + Node Resources). It
// backfills a day (about 50 CPU-seconds), so it runs only when
// NXWATCHER_DASHBOARD_RENDER_BENCH is set; it reports medians and fails
// nothing but a panel error.
func TestDashboardRenderTime(t *testing.T) {
	if os.Getenv("NXWATCHER_DASHBOARD_RENDER_BENCH") == "" {
		t.Skip("set NXWATCHER_DASHBOARD_RENDER_BENCH=1 to measure render times over 24 h of demo data")
	}
	runs := 5
	b := newBrowser(t)
	d, pw := startDemoWith(t, demo.Options{Backfill: 24 * time.Hour})
	base := d.URL()
	for _, q := range []string{"traefik_service_requests_total", "node_uname_info", "traces_service_graph_request_total"} {
		waitSeries(t, base, q, 120*time.Second)
	}
	resp, err := http.Post(base+"/api/dashboards/db", "application/json", bytes.NewReader(combined(t, "render-23", "traefik-overview.json", "node-resources.json")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("import: %d %s", resp.StatusCode, body)
	}
	b.login(t, base, pw)
	b.consoleErrors()
	for _, uid := range append([]string{"render-23"}, bana...) {
		var ms []float64
		var r panelReport
		for i := 0; i < runs; i++ {
			// Leave the page between runs, so each run is a fresh navigation.
			b.within(t, 10*time.Second, "leave", hash("/dashboards"), visible(`[data-testid="dashboard-list"]`))
			b.within(t, 60*time.Second, "render "+uid,
				hash("/dashboards/"+uid+"?from=now-24h&to=now"),
				until(fmt.Sprintf(`document.querySelector('[data-testid="dashboard"][data-uid=%q][data-rendered="true"]')`, uid)),
			)
			r = b.report(t)
			ms = append(ms, r.RenderedMs)
		}
		sort.Float64s(ms)
		t.Logf("%-22s %2d panels %v: render over 24h median %4.0f ms (min %4.0f, max %4.0f, %d runs)", uid, r.Total, r.States, ms[len(ms)/2], ms[0], ms[len(ms)-1], runs)
		if len(r.Errors) > 0 {
			t.Errorf("%s: panels in error: %v", uid, r.Errors)
		}
	}
	b.screenshot(t, "last-24h")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}
