package docs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/agent"
	"github.com/nx-watcher/nxwatcher/internal/app"
	"github.com/nx-watcher/nxwatcher/internal/config"
	"github.com/nx-watcher/nxwatcher/internal/ruler"
	"github.com/nx-watcher/nxwatcher/internal/testbin"
)

const tourSection = "A five-minute tour"

// TestReadmeTourRuns plays the README's tour as a reader would, against an
// in-process `nxwatcher serve` on 127.0.0.1:0:
//
//   - it starts as `go run ./cmd/nxwatcher serve` does: no config file;
//   - a ```yaml block whose first line is "# NAME" is saved as the file NAME;
//   - curl commands run with sh and the real curl, localhost:9090 / :4317 /
//     :4318 pointed at the test server; reads must answer 200 with data
//     (polled while the self-scrape fills in), writes must answer 2xx;
//   - `nxwatcher serve --config.file=F [--web.enable-lifecycle]` restarts
//     the server with F,
//     `check config|rules`, `test rules` and `kill -HUP` run in-process,
//     amtool runs when installed.
//
// Any other command fails the test unless its block is marked
// <!-- not-runnable: reason -->.
func TestReadmeTourRuns(t *testing.T) {
	curl := testbin.Require(t, "curl", "curl")
	sh := testbin.Require(t, "sh", "dash")
	var blocks []fence
	for _, f := range fences(t, "README.md") {
		if f.section == tourSection {
			blocks = append(blocks, f)
		}
	}
	if len(blocks) < 4 {
		t.Fatalf("found %d code blocks in the README section %q; did the heading change?", len(blocks), tourSection)
	}
	tr := &tour{dir: t.TempDir(), files: map[string]string{}, curl: curl, sh: sh}
	tr.start(t, "", false) // the README's first command: go run ./cmd/nxwatcher serve
	t.Cleanup(func() { tr.stop(t) })
	ran := 0
	for _, b := range blocks {
		if b.skip != "" {
			t.Logf("%s: not run: %s", b.where(), b.skip)
			continue
		}
		switch b.lang {
		case "yaml":
			name, ok := fileName(b.body)
			if !ok {
				continue // loaded by TestConfigExamplesLoad; the tour does not use it
			}
			p := filepath.Join(tr.dir, name)
			if err := os.WriteFile(p, []byte(b.body), 0o600); err != nil {
				t.Fatal(err)
			}
			tr.files[name] = p
		case "sh", "bash", "shell":
			for _, c := range commands(b.body) {
				name := c.text
				if len(name) > 60 {
					name = name[:60]
				}
				t.Run(name, func(t *testing.T) {
					tr.run(t, b, c.text)
				})
				ran++
			}
		default:
			t.Errorf("%s: a ```%s block in the tour; mark it <!-- not-runnable: reason --> or make it sh/yaml", b.where(), b.lang)
		}
	}
	if ran < 8 {
		t.Errorf("ran only %d tour commands", ran)
	}
}

// fileName reads "# NAME" on the first line of a yaml block.
func fileName(body string) (string, bool) {
	first, _, _ := strings.Cut(body, "\n")
	first = strings.TrimSpace(first)
	if !strings.HasPrefix(first, "# ") {
		return "", false
	}
	name := strings.TrimSpace(strings.TrimPrefix(first, "# "))
	if strings.ContainsAny(name, " /") || !strings.HasSuffix(name, ".yml") && !strings.HasSuffix(name, ".yaml") {
		return "", false
	}
	return name, true
}

type command struct{ text string }

// commands splits a shell block into commands: "\" continues a line, blank
// lines and comments are dropped, a trailing "# comment" is cut.
func commands(body string) []command {
	var (
		out []command
		cur strings.Builder
	)
	for _, l := range strings.Split(body, "\n") {
		if strings.HasSuffix(strings.TrimRight(l, " "), `\`) {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(l, " "), `\`))
			continue
		}
		cur.WriteString(l)
		text := strings.TrimSpace(stripComment(cur.String()))
		cur.Reset()
		if text != "" {
			out = append(out, command{text: text})
		}
	}
	return out
}

// stripComment cuts a shell comment: a "#" at the start of a word, outside
// quotes.
func stripComment(l string) string {
	var quote byte
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
			return l[:i]
		}
	}
	return l
}

// tour is the state of one run through the README.
type tour struct {
	dir   string
	files map[string]string // files saved from yaml blocks, by name
	curl  string
	sh    string
	srv   *tourServer
	n     int
}

type tourServer struct {
	app    *app.App
	url    string // http://127.0.0.1:port
	otlp   [2]string
	cancel context.CancelFunc
	done   chan error
}

// noKeepAlive keeps the test's own polling from leaving idle connections
// (and their goroutines) behind.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// fastScrape keeps the tour's timing short: the OTLP listeners move to
// 127.0.0.1:0 and every scrape job scrapes each second, so the README's
// queries find data within seconds instead of after 15 s scrape intervals.
func fastScrape(c *config.Config) {
	c.OTLP.GRPCEndpoint = "127.0.0.1:0"
	c.OTLP.HTTPEndpoint = "127.0.0.1:0"
	if c.Alerting.ListenAddress != "" {
		c.Alerting.ListenAddress = "127.0.0.1:0"
	}
	if p := c.Metrics.Parsed; p != nil {
		second := model.Duration(time.Second)
		p.GlobalConfig.ScrapeInterval, p.GlobalConfig.ScrapeTimeout = second, second
		for _, sc := range p.ScrapeConfigs {
			sc.ScrapeInterval, sc.ScrapeTimeout = second, second
		}
	}
}

func (tr *tour) start(t *testing.T, configFile string, lifecycle bool) {
	t.Helper()
	tr.n++
	data := filepath.Join(tr.dir, fmt.Sprintf("data-%d", tr.n))
	a, err := app.New(app.Options{
		ConfigFile:      configFile,
		StoragePath:     data,
		ListenAddress:   "127.0.0.1:0",
		EnableLifecycle: lifecycle,
		Flags:           map[string]string{"config.file": configFile, "storage.path": data},
	}, app.Deps{Logger: promslog.NewNopLogger(), AdjustConfig: fastScrape})
	if err != nil {
		t.Fatalf("serve --config.file=%q: %v", configFile, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &tourServer{app: a, url: "http://" + a.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	if g, h := a.OTLPAddrs(); g != nil && h != nil {
		s.otlp = [2]string{g.String(), h.String()}
	}
	go func() { s.done <- a.Run(ctx) }()
	tr.srv = s
	poll(t, 60*time.Second, "/-/ready", func() (bool, string) {
		resp, err := noKeepAlive.Get(s.url + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

func (tr *tour) stop(t *testing.T) {
	s := tr.srv
	if s == nil {
		return
	}
	tr.srv = nil
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop within 30s")
	}
	if err := s.app.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// poll retries cond until it holds or the timeout passes.
func poll(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not there after %v; last answer: %s", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var nxwatcherCmd = regexp.MustCompile(`^(?:go run \./cmd/nxwatcher|nxwatcher)\s+(.*)$`)

func (tr *tour) run(t *testing.T, b fence, cmd string) {
	words := strings.Fields(cmd)
	if tr.srv == nil && !nxwatcherCmd.MatchString(cmd) {
		t.Fatalf("%s: no server is running (an earlier serve failed)", b.where())
	}
	switch {
	case words[0] == "curl":
		tr.runCurl(t, cmd)
	case nxwatcherCmd.MatchString(cmd):
		tr.runNxwatcher(t, strings.Fields(nxwatcherCmd.FindStringSubmatch(cmd)[1]))
	case len(words) >= 2 && words[0] == "kill" && words[1] == "-HUP":
		if err := tr.srv.app.Reload(); err != nil {
			t.Errorf("reload: %v", err)
		}
	case words[0] == "amtool":
		tr.runProgram(t, testbin.Require(t, "amtool", "prometheus-alertmanager"), cmd)
	default:
		t.Errorf("%s: the tour test cannot run %q; teach docs/tour_test.go or mark the block <!-- not-runnable: reason -->", b.where(), cmd)
	}
}

// local points the README's addresses at the test server.
func (tr *tour) local(cmd string) string {
	host := strings.TrimPrefix(tr.srv.url, "http://")
	r := []string{"localhost:9090", host}
	if tr.srv.otlp[0] != "" {
		r = append(r, "localhost:4317", tr.srv.otlp[0], "localhost:4318", tr.srv.otlp[1])
	}
	return strings.NewReplacer(r...).Replace(cmd)
}

var (
	curlGet  = regexp.MustCompile(`(^|\s)-[a-zA-Z]*G(\s|$)`)
	curlData = regexp.MustCompile(`(^|\s)(-d|--data[a-z-]*)\s`)
	curlPost = regexp.MustCompile(`(^|\s)-X\s*POST(\s|$)`)
)

// runCurl runs one curl command with sh, the way a reader's shell would
// ($(date …) and quoting included), and checks the answer.
func (tr *tour) runCurl(t *testing.T, cmd string) {
	write := curlPost.MatchString(cmd) || (curlData.MatchString(cmd) && !curlGet.MatchString(cmd))
	// A wrapper adds the status code after the body and bounds each call.
	// -q (first) ignores a reader's ~/.curlrc.
	script := fmt.Sprintf("curl() { command %q -q -m 10 -w '\\n%%{http_code}\\n' \"$@\"; }\n%s\n", tr.curl, tr.local(cmd))
	attempt := func() (code, body string, err error) {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, tr.sh, "-c", script)
		c.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*") // the test server is local
		out, err := c.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, ee.Stderr)
			}
			return "", string(out), err
		}
		s := strings.TrimRight(string(out), "\n")
		i := strings.LastIndex(s, "\n")
		return s[i+1:], s[:max(i, 0)], nil
	}
	if write {
		code, body, err := attempt()
		if err != nil || !strings.HasPrefix(code, "2") {
			t.Fatalf("%s\nwant a 2xx answer, got status %q err %v body %s", cmd, code, err, body)
		}
		return
	}
	// Reads are polled: the self-scrape and the trace store fill in over
	// the first seconds, as they do for a reader.
	poll(t, 30*time.Second, cmd, func() (bool, string) {
		code, body, err := attempt()
		if err != nil {
			return false, err.Error()
		}
		if code != "200" {
			return false, "status " + code + ": " + body
		}
		if why := noData(body); why != "" {
			return false, why + ": " + body
		}
		return true, ""
	})
}

// noData says why a JSON answer carries no data, "" when it does.
func noData(body string) string {
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return "not a JSON object"
	}
	if s, ok := v["status"]; ok && s != "success" {
		return "status is not success"
	}
	// Tempo: a search lists traces; a trace by ID has batches (v1) or a
	// trace (v2).
	for _, key := range []string{"traces", "batches", "trace"} {
		if x, ok := v[key]; ok {
			if empty(x) {
				return "empty " + key
			}
			return ""
		}
	}
	if d, ok := v["data"]; ok {
		if m, ok := d.(map[string]any); ok {
			if r, ok := m["result"]; ok {
				if empty(r) {
					return "empty data.result"
				}
				return ""
			}
		}
		if empty(d) {
			return "empty data"
		}
		return ""
	}
	for _, x := range v {
		if !empty(x) {
			return ""
		}
	}
	return "empty answer"
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	case string:
		return x == ""
	}
	return false
}

// resolve finds a file a command names: one saved from the tour, else a
// path of the repository.
func (tr *tour) resolve(name string) string {
	if p, ok := tr.files[name]; ok {
		return p
	}
	return filepath.Join(repoRoot, name)
}

func (tr *tour) runNxwatcher(t *testing.T, args []string) {
	switch {
	case args[0] == "serve":
		configFile, lifecycle := "", false
		for i, a := range args[1:] {
			switch {
			case a == "--web.enable-lifecycle":
				lifecycle = true
			case strings.HasPrefix(a, "--config.file="):
				configFile = strings.TrimPrefix(a, "--config.file=")
			case a == "--config.file" && i+2 < len(args):
				configFile = args[i+2]
			}
		}
		if configFile != "" {
			configFile = tr.resolve(configFile)
		}
		tr.stop(t)
		tr.start(t, configFile, lifecycle) // --storage.path and the listen address stay the test's
	case len(args) >= 3 && args[0] == "check" && args[1] == "config":
		for _, f := range args[2:] {
			if kind, err := config.CheckFile(tr.resolve(f), promslog.NewNopLogger()); err != nil {
				t.Errorf("check config %s (%s): %v", f, kind, err)
			}
		}
	case len(args) >= 3 && args[0] == "check" && args[1] == "agent-config":
		for _, f := range args[2:] {
			if _, err := agent.LoadFile(tr.resolve(f), false); err != nil {
				t.Errorf("check agent-config %s: %v", f, err)
			}
		}
	case len(args) >= 3 && args[0] == "check" && args[1] == "rules":
		files := make([]string, len(args)-2)
		for i, f := range args[2:] {
			files[i] = tr.resolve(f)
		}
		var out strings.Builder
		if err := ruler.CheckRuleFiles(&out, files...); err != nil {
			t.Errorf("check rules: %v\n%s", err, out.String())
		}
	case len(args) >= 3 && args[0] == "test" && args[1] == "rules":
		files := make([]string, len(args)-2)
		for i, f := range args[2:] {
			files[i] = tr.resolve(f)
		}
		var out strings.Builder
		if ruler.TestRuleFiles(&out, files...) {
			t.Errorf("test rules failed:\n%s", out.String())
		}
	default:
		t.Errorf("the tour test cannot run `nxwatcher %s`", strings.Join(args, " "))
	}
}

// runProgram runs another tool (amtool) with sh against the test server.
func (tr *tour) runProgram(t *testing.T, path, cmd string) {
	words := strings.SplitN(tr.local(cmd), " ", 2)
	script := fmt.Sprintf("%q %s\n", path, words[1])
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tr.sh, "-c", script).CombinedOutput()
	if err != nil {
		t.Errorf("%s: %v\n%s", cmd, err, out)
	}
}

// TestNoData pins what the tour counts as an answer with data.
func TestNoData(t *testing.T) {
	for body, wantEmpty := range map[string]bool{
		`{"status":"success","data":{"resultType":"matrix","result":[]}}`:              true,
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}`: false,
		`{"status":"error","errorType":"bad_data","error":"x"}`:                        true,
		`{"status":"success","data":[]}`:                                               true,
		`{"status":"success","data":["job"]}`:                                          false,
		`{"traces":[],"metrics":{"inspectedBytes":"0"}}`:                               true,
		`{"traces":[{"traceID":"1"}],"metrics":{}}`:                                    false,
		`{"batches":[{"resource":{}}]}`:                                                false,
		`{}`:                                                                           true,
		`not json`:                                                                     true,
	} {
		if got := noData(body) != ""; got != wantEmpty {
			t.Errorf("noData(%s) = %q, want empty=%v", body, noData(body), wantEmpty)
		}
	}
}
