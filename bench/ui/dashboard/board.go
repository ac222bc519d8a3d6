package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
)

// BoardFile is the 20-panel dashboard the benchmark opens, generated from
// the eight dashboards of deploy/dashboards by build (the test keeps the
// committed file equal to build's output: go test ./bench/ui/dashboard -update).
const BoardFile = "bench-20-panels.json"

// BoardUID is its UID.
const BoardUID = "nx-bench-20-panels"

// picks are the panels taken, by dashboard file and panel id: every panel
// type the eight use (stat, gauge, bargauge, timeseries, table, logs,
// nodeGraph), all three data sources, and the heavy queries (histogram
// quantiles, per-pod cAdvisor series, a Loki metric query and a log query).
var picks = []struct {
	file string
	ids  []int
}{
	{"traefik-overview.json", []int{1, 2, 3, 6, 8, 14}},
	{"backend-services.json", []int{6, 7, 9, 16, 18}},
	{"postgresql.json", []int{3, 9}},
	{"redis.json", []int{2, 7}},
	{"kafka.json", []int{12}},
	{"node-resources.json", []int{1, 5}},
	{"bullmq-jobs.json", []int{6}},
	{"service-map.json", []int{1}},
}

// varUse is a variable reference as Grafana writes one: $name, ${name},
// ${name:format}, [[name]].
var varUse = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|\[\[([A-Za-z0-9_]+)\]\]|\$([A-Za-z0-9_]+)`)

type object = map[string]json.RawMessage

// build assembles the board: the picked panels, laid out three to a grid
// row (stats and gauges smaller), with the variables they use. A variable
// name two source dashboards define differently ("instance" of PostgreSQL,
// Redis and node_exporter) is renamed <dashboard>_<name> in its panels and
// variables. The time range is the last 24 hours, auto-refresh off.
func build(fsys fs.FS) ([]byte, error) {
	type varDef struct {
		src  string
		raw  json.RawMessage
		deps []string
	}
	defined := map[string][]string{} // variable name → source files defining it
	vars := map[string]map[string]*varDef{}
	boards := map[string]object{}
	for _, p := range picks {
		b, err := fs.ReadFile(fsys, p.file)
		if err != nil {
			return nil, err
		}
		var d object
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", p.file, err)
		}
		boards[p.file] = d
		var tmpl struct {
			List []json.RawMessage `json:"list"`
		}
		_ = json.Unmarshal(d["templating"], &tmpl)
		vars[p.file] = map[string]*varDef{}
		for _, raw := range tmpl.List {
			var v struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, err
			}
			vars[p.file][v.Name] = &varDef{src: p.file, raw: raw, deps: refs(string(raw), v.Name)}
			defined[v.Name] = append(defined[v.Name], p.file)
		}
	}
	short := func(file string) string {
		s := strings.TrimSuffix(path.Base(file), ".json")
		s, _, _ = strings.Cut(s, "-")
		return s
	}
	rename := func(file, name string) string {
		if len(defined[name]) > 1 {
			return short(file) + "_" + name
		}
		return name
	}
	rewrite := func(file string, raw json.RawMessage) json.RawMessage {
		out := varUse.ReplaceAllStringFunc(string(raw), func(m string) string {
			sm := varUse.FindStringSubmatch(m)
			name := sm[1] + sm[2] + sm[3]
			if vars[file][name] == nil {
				return m // a global ($__rate_interval) or not a variable
			}
			return strings.Replace(m, name, rename(file, name), 1)
		})
		return json.RawMessage(out)
	}

	var panels []json.RawMessage
	var varList []json.RawMessage
	added := map[string]bool{}
	var addVar func(file, name string) error
	addVar = func(file, name string) error {
		v := vars[file][name]
		if v == nil || added[file+"/"+name] {
			return nil
		}
		added[file+"/"+name] = true
		for _, dep := range v.deps { // a variable's own query may use another
			if err := addVar(file, dep); err != nil {
				return err
			}
		}
		var o object
		if err := json.Unmarshal(rewrite(file, v.raw), &o); err != nil {
			return err
		}
		o["name"], _ = json.Marshal(rename(file, name))
		b, _ := json.Marshal(o)
		varList = append(varList, b)
		return nil
	}

	x, y, rowH := 0, 0, 0
	id := 0
	for _, p := range picks {
		var ps []json.RawMessage
		if err := json.Unmarshal(boards[p.file]["panels"], &ps); err != nil {
			return nil, err
		}
		byID := map[int]object{}
		var walk func([]json.RawMessage)
		walk = func(list []json.RawMessage) {
			for _, raw := range list {
				var o object
				_ = json.Unmarshal(raw, &o)
				var pid int
				_ = json.Unmarshal(o["id"], &pid)
				byID[pid] = o
				var inner []json.RawMessage
				_ = json.Unmarshal(o["panels"], &inner)
				walk(inner)
			}
		}
		walk(ps)
		for _, pid := range p.ids {
			o := byID[pid]
			if o == nil {
				return nil, fmt.Errorf("%s has no panel %d", p.file, pid)
			}
			var typ, title string
			_ = json.Unmarshal(o["type"], &typ)
			_ = json.Unmarshal(o["title"], &title)
			if typ == "row" {
				return nil, fmt.Errorf("%s panel %d is a row", p.file, pid)
			}
			raw, _ := json.Marshal(o)
			for _, name := range refs(string(raw), "") {
				if err := addVar(p.file, name); err != nil {
					return nil, err
				}
			}
			if err := json.Unmarshal(rewrite(p.file, raw), &o); err != nil {
				return nil, err
			}
			id++
			w, h := 8, 8
			switch typ {
			case "stat", "gauge", "bargauge":
				w, h = 6, 5
			case "logs", "nodeGraph", "table":
				w, h = 12, 9
			}
			if x+w > 24 {
				x, y, rowH = 0, y+rowH, 0
			}
			o["gridPos"], _ = json.Marshal(map[string]int{"h": h, "w": w, "x": x, "y": y})
			x += w
			rowH = max(rowH, h)
			o["id"], _ = json.Marshal(id)
			o["title"], _ = json.Marshal(title + " (" + short(p.file) + ")")
			b, _ := json.Marshal(o)
			panels = append(panels, b)
		}
	}

	board := map[string]any{
		"uid":                  BoardUID,
		"title":                "Bench: 20 panels over 24 h",
		"description":          "Twenty panels of the eight deploy/dashboards (generated by bench/ui/dashboard; go test ./bench/ui/dashboard -update), for the render benchmark.",
		"tags":                 []string{"bench"},
		"timezone":             "browser",
		"editable":             false,
		"graphTooltip":         0,
		"schemaVersion":        39,
		"version":              1,
		"refresh":              "",
		"time":                 map[string]string{"from": "now-24h", "to": "now"},
		"fiscalYearStartMonth": 0,
		"liveNow":              false,
		"annotations":          map[string]any{"list": []any{}},
		"links":                []any{},
		"templating":           map[string]any{"list": varList},
		"panels":               panels,
	}
	b, err := json.MarshalIndent(board, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// refs are the variable names s uses, other than self and the globals.
func refs(s, self string) []string {
	var out []string
	for _, m := range varUse.FindAllStringSubmatch(s, -1) {
		name := m[1] + m[2] + m[3]
		if name != self && !strings.HasPrefix(name, "__") && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}
