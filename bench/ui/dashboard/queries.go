package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nx-watcher/nxwatcher/deploy/dashboards"
)

// queryCost is one target of the board sent alone.
type queryCost struct {
	panel string
	expr  string
	wall  time.Duration
	cpu   float64 // serve CPU-seconds
	code  int
}

// measureQueries sends every Prometheus and Loki target of the board once,
// one at a time, over the last 24 h (variables at their saved selection,
// All as the variable's allValue; $__rate_interval 4 scrape intervals, step
// 2 minutes, about what a 500-pixel-wide panel asks for), and returns each
// one's wall time and the serve process's CPU over it, slowest first. Run
// while nothing else queries serve, it shows which panels cost what.
func measureQueries(base string, board []byte, serveCPU func() float64) ([]queryCost, error) {
	var d dashboards.Dashboard
	if err := json.Unmarshal(board, &d); err != nil {
		return nil, err
	}
	values := map[string][]string{}
	for _, v := range d.Templating.List {
		cur := v.CurrentValues()
		if len(cur) == 0 || slices.Contains(cur, "$__all") {
			all := ".*"
			if v.AllValue != nil && *v.AllValue != "" {
				all = *v.AllValue
			}
			cur = []string{all}
		}
		values[v.Name] = cur
	}
	g := dashboards.Globals{Interval: "2m", RateInterval: "1m", Range: "86400s", Auto: "2m"}
	end := time.Now()
	start := end.Add(-24 * time.Hour)
	var out []queryCost
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			ds := dashboards.TargetDatasource(p, t)
			if ds == nil || t.Expr == "" {
				continue
			}
			expr := dashboards.Interpolate(t.Expr, g, values)
			form := url.Values{"query": {expr}}
			var path string
			switch {
			case ds.Type == "prometheus" && t.Instant:
				path = "/api/v1/query"
				form.Set("time", strconv.FormatInt(end.Unix(), 10))
			case ds.Type == "prometheus":
				path = "/api/v1/query_range"
				form.Set("start", strconv.FormatInt(start.Unix(), 10))
				form.Set("end", strconv.FormatInt(end.Unix(), 10))
				form.Set("step", "120")
			case ds.Type == "loki":
				path = "/loki/api/v1/query_range"
				form.Set("start", strconv.FormatInt(start.UnixNano(), 10))
				form.Set("end", strconv.FormatInt(end.UnixNano(), 10))
				form.Set("step", "120")
				form.Set("limit", "1000")
			default:
				continue
			}
			c0, t0 := serveCPU(), time.Now()
			resp, err := http.PostForm(base+path, form)
			if err != nil {
				return nil, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			out = append(out, queryCost{panel: fmt.Sprintf("%d %s", p.ID, p.Title), expr: expr, wall: time.Since(t0), cpu: serveCPU() - c0, code: resp.StatusCode})
		}
	}
	slices.SortFunc(out, func(a, b queryCost) int { return int(b.wall - a.wall) })
	return out, nil
}

func printQueryCosts(qs []queryCost, top int) {
	var wall time.Duration
	var cpu float64
	for _, q := range qs {
		wall += q.wall
		cpu += q.cpu
	}
	fmt.Printf("\neach query alone, one after another (%d queries): %.0f ms wall, %.2f serve CPU-s in all; slowest:\n", len(qs), float64(wall)/1e6, cpu)
	for _, q := range qs[:min(top, len(qs))] {
		e := q.expr
		if len(e) > 110 {
			e = e[:110] + "…"
		}
		fmt.Printf("  %5.0f ms  %.2f CPU-s  %d  panel %s: %s\n", float64(q.wall)/1e6, q.cpu, q.code, q.panel, strings.Join(strings.Fields(e), " "))
	}
}
