package main

import (
	"testing"

	"github.com/prometheus/common/promslog"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
	"github.com/nx-watcher/nxwatcher/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The config the bench gives serve still loads, without warnings, so the
// bench does not rot when the embedded default changes.
func TestServeConfigLoads(t *testing.T) {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path, err := defaultConfig(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kind, warnings, err := config.Check(path, promslog.NewNopLogger())
	if err != nil || kind != config.KindServe || len(warnings) > 0 {
		t.Fatalf("check %s: %s %v %v", path, kind, warnings, err)
	}
}

func TestStat(t *testing.T) {
	s := stat([]sample{{rss: 10}, {rss: 30}, {rss: 20}}, func(s sample) float64 { return s.rss })
	if s.mean != 20 || s.min != 10 || s.max != 30 {
		t.Errorf("stat = %+v", s)
	}
}
