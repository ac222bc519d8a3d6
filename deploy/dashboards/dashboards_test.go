package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
)

// The eight dashboards of the design doc's table, by title.
var designDoc = []string{
	"Traefik Overview", "Backend Services", "PostgreSQL", "Redis", "Kafka",
	"Node Resources", "BullMQ Jobs", "Service Map",
}

// Panel types a Grafana 11 ships without plugins (the ones we use).
var corePanelTypes = map[string]bool{
	"row": true, "timeseries": true, "stat": true, "gauge": true, "bargauge": true, "table": true,
	"text": true, "logs": true, "heatmap": true, "piechart": true, "nodeGraph": true, "traces": true,
}

func loadAll(t *testing.T) []Dashboard {
	t.Helper()
	ds, err := Load(FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != len(designDoc) {
		t.Fatalf("%d dashboards, want %d", len(ds), len(designDoc))
	}
	return ds
}

// provisioned reads the data sources deploy/grafana provisions: uid → type.
func provisioned(t *testing.T) map[string]string {
	t.Helper()
	files, _ := filepath.Glob("../grafana/provisioning/datasources/*.yaml")
	if len(files) == 0 {
		t.Fatal("no data source provisioning under deploy/grafana/provisioning/datasources")
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Datasources []struct {
				UID  string `yaml:"uid"`
				Type string `yaml:"type"`
			} `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range doc.Datasources {
			out[d.UID] = d.Type
		}
	}
	return out
}

func TestDesignDocDashboards(t *testing.T) {
	var titles []string
	for _, d := range loadAll(t) {
		titles = append(titles, d.Title)
	}
	for _, want := range designDoc {
		if !slices.Contains(titles, want) {
			t.Errorf("no dashboard titled %q (have %q)", want, titles)
		}
	}
}

// TestGrafanaImportable checks what Grafana 11's import needs and what its
// provisioning relies on: the schema fields, a unique uid, unique panel
// ids, a sane grid and data source references that deploy/grafana provisions.
func TestGrafanaImportable(t *testing.T) {
	uidOK := regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`)
	dsTypes := provisioned(t)
	uids := map[string]string{}
	for _, d := range loadAll(t) {
		t.Run(d.File, func(t *testing.T) {
			raw, err := FS.ReadFile(d.File)
			if err != nil {
				t.Fatal(err)
			}
			var generic map[string]any
			if err := json.Unmarshal(raw, &generic); err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"uid", "title", "tags", "schemaVersion", "panels", "templating", "time", "editable", "version"} {
				if _, ok := generic[key]; !ok {
					t.Errorf("missing %q", key)
				}
			}
			if _, ok := generic["id"]; ok {
				t.Error("has an \"id\": provisioned dashboards must leave it out (Grafana assigns it)")
			}
			if !uidOK.MatchString(d.UID) {
				t.Errorf("uid %q: Grafana wants 1–40 of [a-zA-Z0-9_-]", d.UID)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = d.File
			if d.SchemaVersion < 39 || d.SchemaVersion > 41 {
				t.Errorf("schemaVersion %d, want 39–41 (Grafana 11)", d.SchemaVersion)
			}
			if len(d.Tags) == 0 {
				t.Error("no tags")
			}
			checkRef := func(where string, ref *DatasourceRef) {
				if ref == nil {
					t.Errorf("%s: no datasource reference", where)
					return
				}
				typ, ok := dsTypes[ref.UID]
				if !ok {
					t.Errorf("%s: datasource uid %q is not provisioned by deploy/grafana", where, ref.UID)
				} else if typ != ref.Type {
					t.Errorf("%s: datasource %q has type %q, provisioned as %q", where, ref.UID, ref.Type, typ)
				}
			}
			ids := map[int]bool{}
			occupied := map[[2]int]int{}
			for _, p := range d.AllPanels() {
				where := p.Title
				if p.ID <= 0 || ids[p.ID] {
					t.Errorf("panel %q: id %d missing or repeated", where, p.ID)
				}
				ids[p.ID] = true
				if !corePanelTypes[p.Type] {
					t.Errorf("panel %q: type %q is not a core Grafana 11 panel", where, p.Type)
				}
				if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
					t.Errorf("panel %q: bad gridPos %+v", where, p.GridPos)
				} else {
					for x := g.X; x < g.X+g.W; x++ {
						for y := g.Y; y < g.Y+g.H; y++ {
							if other, ok := occupied[[2]int{x, y}]; ok {
								t.Errorf("panel %q overlaps panel id %d at (%d,%d)", where, other, x, y)
								x, y = 1<<30, 1<<30
							}
							occupied[[2]int{x, y}] = p.ID
						}
					}
				}
				if p.Type == "row" {
					continue
				}
				checkRef("panel "+where, p.Datasource)
				if len(p.Targets) == 0 {
					t.Errorf("panel %q: no targets", where)
				}
				refIDs := map[string]bool{}
				for _, tg := range p.Targets {
					if tg.RefID == "" || refIDs[tg.RefID] {
						t.Errorf("panel %q: refId %q missing or repeated", where, tg.RefID)
					}
					refIDs[tg.RefID] = true
					checkRef("panel "+where+" target "+tg.RefID, TargetDatasource(p, tg))
				}
			}
			for _, v := range d.Templating.List {
				checkRef("variable "+v.Name, v.Datasource)
			}
		})
	}
}

// staticValues gives each variable a value for parsing: its allValue when
// it includes All, else its saved selection, else a placeholder.
func staticValues(d Dashboard) map[string][]string {
	vals := map[string][]string{}
	for _, v := range d.Templating.List {
		switch cur := v.CurrentValues(); {
		case v.IncludeAll && v.AllValue != nil && (len(cur) == 0 || cur[0] == "$__all"):
			vals[v.Name] = []string{*v.AllValue}
		case len(cur) > 0 && cur[0] != "$__all":
			vals[v.Name] = cur
		default:
			vals[v.Name] = []string{"placeholder"}
		}
	}
	return vals
}

// TestQueriesParse parses every PromQL target with Prometheus's parser and
// every LogQL target with ours, after Grafana's variable interpolation
// (single values, several values and All), and checks that every variable
// a query names is defined.
func TestQueriesParse(t *testing.T) {
	for _, d := range loadAll(t) {
		t.Run(d.File, func(t *testing.T) {
			defined := map[string]bool{"__interval": true, "__rate_interval": true, "__range": true, "__auto": true}
			for _, v := range d.Templating.List {
				defined[v.Name] = true
			}
			base := staticValues(d)
			multi := map[string][]string{}
			for k := range base {
				multi[k] = []string{"nx-a", "b.c"}
			}
			for _, p := range d.AllPanels() {
				for _, tg := range p.Targets {
					ds := TargetDatasource(p, tg)
					if ds.Type == "tempo" {
						if tg.QueryType != "serviceMap" {
							t.Errorf("panel %q: tempo query type %q, want serviceMap", p.Title, tg.QueryType)
						}
						continue
					}
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("panel %q target %s: empty expr", p.Title, tg.RefID)
						continue
					}
					for _, r := range Refs(tg.Expr) {
						if !defined[r] {
							t.Errorf("panel %q target %s: variable $%s is not defined", p.Title, tg.RefID, r)
						}
					}
					for _, vals := range []map[string][]string{base, multi} {
						q := Interpolate(tg.Expr, DefaultGlobals(), vals)
						var err error
						switch ds.Type {
						case "prometheus":
							_, err = parser.NewParser(parser.Options{}).ParseExpr(q)
						case "loki":
							_, err = logql.ParseExpr(q)
						default:
							t.Fatalf("panel %q: unexpected datasource type %q", p.Title, ds.Type)
						}
						if err != nil {
							t.Errorf("panel %q target %s: %s\n  query: %s", p.Title, tg.RefID, err, q)
						}
					}
				}
			}
		})
	}
}

// TestVariablesResolve checks every template variable: a label_values query
// whose selector parses (with the variables defined before it) and whose
// label is a valid label name, and a saved selection Grafana can use.
func TestVariablesResolve(t *testing.T) {
	for _, d := range loadAll(t) {
		t.Run(d.File, func(t *testing.T) {
			vals := staticValues(d)
			seen := map[string]bool{}
			for _, v := range d.Templating.List {
				if v.Type != "query" {
					t.Errorf("variable %s: type %q, want query", v.Name, v.Type)
					continue
				}
				q := v.QueryString()
				sel, label, ok := LabelValuesQuery(q)
				if !ok {
					t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q)
					continue
				}
				if !regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`).MatchString(label) {
					t.Errorf("variable %s: bad label %q", v.Name, label)
				}
				for _, r := range Refs(sel) {
					if !seen[r] {
						t.Errorf("variable %s: refers to $%s, which is not defined before it", v.Name, r)
					}
				}
				if sel != "" {
					if _, err := parser.NewParser(parser.Options{}).ParseMetricSelector(Interpolate(sel, DefaultGlobals(), vals)); err != nil {
						t.Errorf("variable %s: selector %q: %v", v.Name, sel, err)
					}
				}
				if !v.IncludeAll && len(v.CurrentValues()) == 0 {
					t.Errorf("variable %s: no All and no saved value", v.Name)
				}
				seen[v.Name] = true
			}
		})
	}
}

func TestInterpolate(t *testing.T) {
	vals := map[string][]string{"one": {"a"}, "many": {"x.y", "z"}}
	for in, want := range map[string]string{
		`rate(m{s=~"$many"}[$__rate_interval])`: `rate(m{s=~"(x\\.y|z)"}[1m])`,
		`m{a="${one}", b="[[one]]"}`:            `m{a="a", b="a"}`,
		`increase(m[$__range]) $unknown`:        `increase(m[1h]) $unknown`,
		`count_over_time({a="$one"}[$__auto])`:  `count_over_time({a="a"}[1m])`,
	} {
		if got := Interpolate(in, DefaultGlobals(), vals); got != want {
			t.Errorf("Interpolate(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzInterpolate(f *testing.F) {
	for _, s := range []string{`rate(m{s=~"$many"}[$__rate_interval])`, `${one:regex} [[one]]`, `$`, `${`, `[[x`, `$__range$__auto`} {
		f.Add(s)
	}
	vals := map[string][]string{"one": {"a"}, "many": {"x.y", `z\`}}
	f.Fuzz(func(t *testing.T, s string) {
		out := Interpolate(s, DefaultGlobals(), vals)
		if len(Refs(s)) == 0 && out != s {
			t.Fatalf("no variables in %q but Interpolate changed it to %q", s, out)
		}
		_, _, _ = LabelValuesQuery(s)
	})
}
