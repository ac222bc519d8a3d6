package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/promslog"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/agent"
	"github.com/nx-watcher/nxwatcher/internal/config"
	"github.com/nx-watcher/nxwatcher/internal/ruler"
)

// Kinds of YAML example.
const (
	exampleServe        = "serve config"
	examplePrometheus   = "prometheus.yml"
	exampleAlertmanager = "alertmanager.yml"
	examplePromtail     = "promtail.yaml"
)

// exampleKind tells what file a ```yaml block is by its top-level keys:
// clients/positions make a promtail.yaml (for `nxwatcher agent`),
// route/receivers make an alertmanager.yml, keys only prometheus.yml has make
// a prometheus.yml, anything else is read as a serve config, so that a serve
// config with a wrong key fails with the loader's own message.
func exampleKind(top map[string]yaml.Node) string {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := top[k]; ok {
				return true
			}
		}
		return false
	}
	switch {
	case has("clients", "client", "positions"):
		return examplePromtail
	case has("route", "receivers", "inhibit_rules", "mute_time_intervals", "time_intervals", "templates"):
		return exampleAlertmanager
	case has("global", "scrape_configs", "scrape_config_files", "rule_files", "remote_write", "remote_read", "storage", "runtime", "tracing"):
		return examplePrometheus
	}
	return exampleServe
}

// TestConfigExamplesLoad loads every ```yaml block of README.md and docs/
// with the real loader: a serve config with config.CheckFile as `nxwatcher
// check config` does (it must be a serve config), a prometheus.yml the same
// way (it must be one), an alertmanager.yml as the file of
// alerting.alertmanager_config_file, a promtail.yaml with the agent's
// loader. Blocks marked
// <!-- not-runnable: reason --> are left out.
func TestConfigExamplesLoad(t *testing.T) {
	loaded := 0
	for _, file := range docFiles(t) {
		for _, b := range fences(t, file) {
			if b.lang != "yaml" && b.lang != "yml" {
				continue
			}
			if b.skip != "" {
				if b.skip == "(no reason given)" {
					t.Errorf("%s: a not-runnable mark needs a reason", b.where())
				}
				t.Logf("%s: not loaded: %s", b.where(), b.skip)
				continue
			}
			t.Run(b.where(), func(t *testing.T) {
				loadExample(t, b)
			})
			loaded++
		}
	}
	if loaded < 3 {
		t.Errorf("loaded only %d yaml examples; is the fence parser broken?", loaded)
	}
}

func loadExample(t *testing.T, b fence) {
	if err := exampleLoads(t, b); err != nil {
		t.Errorf("%s: %v", b.where(), err)
	}
}

// exampleLoads loads one yaml example with the loader its kind has.
func exampleLoads(t *testing.T, b fence) error {
	var top map[string]yaml.Node
	if err := yaml.Unmarshal([]byte(b.body), &top); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	dir := t.TempDir()
	logger := promslog.NewNopLogger()
	switch kind := exampleKind(top); kind {
	case examplePromtail:
		if _, err := agent.Parse([]byte(b.body), false); err != nil {
			return fmt.Errorf("the promtail.yaml example does not load (nxwatcher agent -check-syntax says): %w", err)
		}
	case exampleAlertmanager:
		writeFile(t, filepath.Join(dir, "alertmanager.yml"), b.body)
		serve := filepath.Join(dir, "serve.yml")
		writeFile(t, serve, "alerting:\n  alertmanager_config_file: alertmanager.yml\n")
		if _, err := config.CheckFile(serve, logger); err != nil {
			return fmt.Errorf("the alertmanager.yml example does not load: %w", err)
		}
	default:
		p := filepath.Join(dir, "example.yml")
		writeFile(t, p, b.body)
		got, err := config.CheckFile(p, logger)
		if err != nil {
			return fmt.Errorf("the %s example does not load (nxwatcher check config says): %w", kind, err)
		}
		if want := map[string]string{exampleServe: config.KindServe, examplePrometheus: config.KindPrometheus}[kind]; got != want {
			return fmt.Errorf("loaded as a %s, want a %s", got, want)
		}
	}
	return nil
}

// TestExampleLoaders runs each kind of example through its loader, good and
// broken, so a loader that accepts anything cannot make the docs look green.
func TestExampleLoaders(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"serve", "logs:\n  retention: 15d\n", true},
		{"serve with a prometheus.yml key at the top", "prometheus:\n  global: {scrape_interval: 15s}\n", false},
		{"serve with a bad value", "metrics:\n  retention: soon\n", false},
		{"prometheus.yml", "global: {scrape_interval: 15s}\nscrape_configs: [{job_name: a, static_configs: [{targets: ['localhost:9090']}]}]\n", true},
		{"broken prometheus.yml", "global: {scrape_interval: 15s}\nscrape_configs: [{job_name: a}, {job_name: a}]\n", false},
		{"alertmanager.yml", "route: {receiver: a}\nreceivers: [{name: a}]\n", true},
		{"alertmanager.yml with an unknown receiver", "route: {receiver: b}\nreceivers: [{name: a}]\n", false},
		{"promtail.yaml", "positions: {filename: /tmp/positions.yaml}\nclients: [{url: 'http://localhost:9090/loki/api/v1/push'}]\nscrape_configs: [{job_name: a, static_configs: [{targets: [localhost], labels: {__path__: /var/log/*.log}}]}]\n", true},
		{"promtail.yaml with an unknown key", "positions: {filename: /tmp/p.yaml}\nclients: [{url: 'http://localhost:9090/loki/api/v1/push', colour: red}]\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := exampleLoads(t, fence{file: "test.md", line: 1, lang: "yaml", body: tc.body})
			if (err == nil) != tc.ok {
				t.Errorf("exampleLoads = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDocsCheckCommandsRun runs the `nxwatcher check …` and `nxwatcher test
// rules …` commands of the shell blocks under docs/ in-process, with paths
// relative to the repository root (the README's run in TestReadmeTourRuns).
// Other commands of those blocks (amtool, promtool) are not run here.
func TestDocsCheckCommandsRun(t *testing.T) {
	for _, file := range docFiles(t) {
		if file == "README.md" {
			continue
		}
		for _, b := range fences(t, file) {
			if b.skip != "" || !slices.Contains([]string{"sh", "bash", "shell"}, b.lang) {
				continue
			}
			for _, c := range commands(b.body) {
				m := nxwatcherCmd.FindStringSubmatch(c.text)
				if m == nil {
					continue
				}
				args := strings.Fields(m[1])
				if len(args) < 3 || !(args[0] == "check" || args[0] == "test") {
					continue
				}
				t.Run(b.where()+" "+c.text, func(t *testing.T) {
					files := make([]string, len(args)-2)
					for i, f := range args[2:] {
						files[i] = filepath.Join(repoRoot, f)
					}
					var out strings.Builder
					switch args[0] + " " + args[1] {
					case "check config":
						for _, f := range files {
							if _, err := config.CheckFile(f, promslog.NewNopLogger()); err != nil {
								t.Errorf("%s: %v", c.text, err)
							}
						}
					case "check agent-config":
						for _, f := range files {
							if _, err := agent.LoadFile(f, false); err != nil {
								t.Errorf("%s: %v", c.text, err)
							}
						}
					case "check rules":
						if err := ruler.CheckRuleFiles(&out, files...); err != nil {
							t.Errorf("%s: %v\n%s", c.text, err, out.String())
						}
					case "test rules":
						if ruler.TestRuleFiles(&out, files...) {
							t.Errorf("%s failed:\n%s", c.text, out.String())
						}
					default:
						t.Errorf("%s: unknown nxwatcher command", c.text)
					}
				})
			}
		}
	}
}

// TestNotRunnableMark pins the convention the docs use to leave a block
// out, and the shell splitting the tour relies on.
func TestNotRunnableMark(t *testing.T) {
	md := "## Demo\n\n<!-- not-runnable: needs a cluster -->\n\n```yaml\nx: 1\n```\n\ntext\n\n```sh\n" +
		"curl -s 'a#b' \\\n  -d x=1   # comment\n# only a comment\n\nkill -HUP <pid>\n```\n"
	fs := parseFences("demo.md", md)
	if len(fs) != 2 {
		t.Fatalf("got %d fences, want 2", len(fs))
	}
	if fs[0].skip != "needs a cluster" || fs[0].section != "Demo" || fs[0].line != 5 {
		t.Errorf("first fence: %+v", fs[0])
	}
	if fs[1].skip != "" {
		t.Errorf("the mark leaked to the second fence: %+v", fs[1])
	}
	got := commands(fs[1].body)
	want := []command{{text: "curl -s 'a#b'   -d x=1"}, {text: "kill -HUP <pid>"}}
	if !slices.Equal(got, want) {
		t.Errorf("commands = %q, want %q", got, want)
	}
	if k := exampleKind(map[string]yaml.Node{"route": {}, "global": {}}); k != exampleAlertmanager {
		t.Errorf("route+global is %s", k)
	}
	if k := exampleKind(map[string]yaml.Node{"scrape_configs": {}, "alerting": {}}); k != examplePrometheus {
		t.Errorf("scrape_configs+alerting is %s", k)
	}
	if k := exampleKind(map[string]yaml.Node{"clients": {}, "scrape_configs": {}, "positions": {}}); k != examplePromtail {
		t.Errorf("clients+scrape_configs+positions is %s", k)
	}
	if k := exampleKind(map[string]yaml.Node{"prometheus": {}, "alerting": {}}); k != exampleServe {
		t.Errorf("prometheus+alerting is %s", k)
	}
}
