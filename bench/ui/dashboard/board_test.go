package main

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/nx-watcher/nxwatcher/deploy/dashboards"
)

var update = flag.Bool("update", false, "rewrite "+BoardFile+" from deploy/dashboards")

// TestBoardIsGenerated keeps the committed board equal to what build makes
// of the eight dashboards, and checks it: 20 panels, no rows, unique ids,
// every variable a panel or variable uses is defined, 24 h range.
func TestBoardIsGenerated(t *testing.T) {
	got, err := build(dashboards.FS)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(BoardFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(BoardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: go test ./bench/ui/dashboard -update", BoardFile)
	}

	ds, err := dashboards.Load(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboards.Dashboard
	for _, x := range ds {
		if x.File == BoardFile {
			d = x
		}
	}
	if d.UID != BoardUID || d.Time == nil || d.Time.From != "now-24h" {
		t.Fatalf("board %s: uid %q time %+v", BoardFile, d.UID, d.Time)
	}
	ps := d.AllPanels()
	if len(ps) != 20 {
		t.Fatalf("%d panels, want 20", len(ps))
	}
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		if defined[v.Name] {
			t.Errorf("variable %s defined twice", v.Name)
		}
		defined[v.Name] = true
		for _, r := range dashboards.Refs(v.QueryString()) {
			if !defined[r] {
				t.Errorf("variable %s uses %s, not defined before it", v.Name, r)
			}
		}
	}
	ids := map[int]bool{}
	types := map[string]int{}
	for _, p := range ps {
		if ids[p.ID] || p.Type == "row" || p.GridPos == nil || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %d %s %+v", p.ID, p.Type, p.GridPos)
		}
		ids[p.ID] = true
		types[p.Type]++
		for _, tg := range p.Targets {
			for _, r := range dashboards.Refs(tg.Expr) {
				if len(r) > 2 && r[:2] == "__" {
					continue
				}
				if !defined[r] {
					t.Errorf("panel %d %q uses $%s, not defined", p.ID, p.Title, r)
				}
			}
		}
	}
	for _, typ := range []string{"stat", "gauge", "bargauge", "timeseries", "table", "logs", "nodeGraph"} {
		if types[typ] == 0 {
			t.Errorf("no %s panel", typ)
		}
	}
}
