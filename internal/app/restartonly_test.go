package app

import (
	"slices"
	"testing"

	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/config"
)

func TestRestartOnlyChanges(t *testing.T) {
	parse := func(text string) *config.Config {
		t.Helper()
		c, err := config.Parse([]byte(text), t.TempDir(), promslog.NewNopLogger())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := parse("metrics:\n  retention: 30d\n")
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"nothing", "metrics:\n  retention: 30d\n", nil},
		{"reloadable only", "metrics:\n  retention: 10d\n  prometheus:\n    global: {scrape_interval: 5s}\nlogs:\n  limits:\n    max_line_size: 1KiB\n", nil},
		{"listeners and stores", "otlp:\n  grpc_endpoint: 127.0.0.1:5317\nui:\n  listen_address: :3000\ntraces:\n  search:\n    default_limit: 7\nmetrics:\n  query:\n    timeout: 10s\n",
			[]string{"metrics.query.timeout", "traces.search.default_limit", "otlp.grpc_endpoint", "ui.listen_address"}},
		{"an inline section's key", "traces:\n  enabled: false\n", []string{"traces.enabled"}},
		{"ui accounts reload, its port does not", "ui:\n  admin_user: root\n  anonymous: {enabled: true}\n  listen_address: :3000\n", []string{"ui.listen_address"}},
	} {
		got := restartOnlyChanges(base, parse(tc.text))
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: restart-only changes %v, want %v", tc.name, got, want)
		}
	}
}
