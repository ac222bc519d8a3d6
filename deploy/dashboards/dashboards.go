// Package dashboards holds the design doc's eight dashboards as Grafana 11
// dashboard JSON (the files a real Grafana provisions unchanged) and the
// little of Grafana's dashboard model the tests and `nxwatcher demo` need:
// the panels, their targets and the template variables, with Grafana's
// variable interpolation.
//
// The files are embedded (FS) so the UI and the demo can serve them.
package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

// FS holds the dashboard files (*.json at its root).
//
//go:embed *.json
var FS embed.FS

// Dashboard is the part of Grafana's dashboard JSON model we read.
type Dashboard struct {
	File          string     `json:"-"`
	UID           string     `json:"uid"`
	Title         string     `json:"title"`
	Tags          []string   `json:"tags"`
	SchemaVersion int        `json:"schemaVersion"`
	Panels        []Panel    `json:"panels"`
	Templating    Templating `json:"templating"`
	Time          *struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
}

// Templating is the dashboard's variable list.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is one template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *DatasourceRef  `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   *string         `json:"allValue"`
	Current    json.RawMessage `json:"current"`
}

// QueryString is the variable's query, whether Grafana wrote it as a string
// or as the query editor's object ({"query": "..."}).
func (v Variable) QueryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

// CurrentValues are the variable's saved selection ("$__all" for All).
func (v Variable) CurrentValues() []string {
	var c struct {
		Value json.RawMessage `json:"value"`
	}
	if len(v.Current) == 0 || json.Unmarshal(v.Current, &c) != nil || len(c.Value) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(c.Value, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(c.Value, &many)
	return many
}

// DatasourceRef is Grafana's {type, uid} data source reference.
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// GridPos is a panel's place on the 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Panel is one panel; rows carry their collapsed children in Panels.
type Panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	GridPos    *GridPos       `json:"gridPos"`
	Datasource *DatasourceRef `json:"datasource"`
	Targets    []Target       `json:"targets"`
	Panels     []Panel        `json:"panels"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string         `json:"refId"`
	Datasource *DatasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
	QueryType  string         `json:"queryType"`
	Instant    bool           `json:"instant"`
	Range      bool           `json:"range"`
}

// Load reads every dashboard of fsys (*.json at its root), sorted by file.
func Load(fsys fs.FS) ([]Dashboard, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Dashboard
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", n, err)
		}
		d.File = n
		out = append(out, d)
	}
	return out, nil
}

// AllPanels is every panel, rows' children included, in file order.
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// TargetDatasource is the data source a target queries: its own, else its
// panel's.
func TargetDatasource(p Panel, t Target) *DatasourceRef {
	if t.Datasource != nil {
		return t.Datasource
	}
	return p.Datasource
}

// Globals are the values used for Grafana's global variables when a query
// is interpolated outside Grafana.
type Globals struct {
	Interval     string // $__interval
	RateInterval string // $__rate_interval
	Range        string // $__range
	Auto         string // $__auto (Loki's step-sized range)
}

// DefaultGlobals suit a one-hour dashboard with a 15 s scrape interval.
func DefaultGlobals() Globals {
	return Globals{Interval: "15s", RateInterval: "1m", Range: "1h", Auto: "1m"}
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|\[\[([A-Za-z0-9_]+)\]\]|\$([A-Za-z0-9_]+)`)

// Refs are the variable names a query references, globals included.
func Refs(expr string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1]+m[2]+m[3])
	}
	return out
}

// Interpolate replaces Grafana variables in expr the way Grafana does for
// Prometheus and Loki queries: globals by their values, a variable by its
// value, several values of a multi-value variable as (a|b) with regex
// metacharacters escaped (twice: regex, then string literal), and All by the variable's allValue (or every
// value). Unknown names are left alone.
func Interpolate(expr string, g Globals, values map[string][]string) string {
	return varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sm := varRef.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		switch name {
		case "__interval":
			return g.Interval
		case "__rate_interval":
			return g.RateInterval
		case "__range":
			return g.Range
		case "__auto":
			return g.Auto
		}
		vals, ok := values[name]
		if !ok {
			return m
		}
		switch len(vals) {
		case 0:
			return ""
		case 1:
			return vals[0]
		}
		esc := make([]string, len(vals))
		for i, v := range vals {
			// Escaped for the regex and then for the PromQL/LogQL string
			// literal, as Grafana's Prometheus and Loki data sources do.
			esc[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
		}
		return "(" + strings.Join(esc, "|") + ")"
	})
}

// LabelValuesQuery splits Grafana's Prometheus variable query
// label_values(selector, label) (or label_values(label)).
func LabelValuesQuery(q string) (selector, label string, ok bool) {
	q = strings.TrimSpace(q)
	if !strings.HasPrefix(q, "label_values(") || !strings.HasSuffix(q, ")") {
		return "", "", false
	}
	inner := strings.TrimSpace(q[len("label_values(") : len(q)-1])
	i := strings.LastIndex(inner, ",")
	if i < 0 {
		return "", inner, inner != ""
	}
	return strings.TrimSpace(inner[:i]), strings.TrimSpace(inner[i+1:]), true
}
