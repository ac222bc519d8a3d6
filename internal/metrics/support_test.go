package metrics

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"

	"github.com/nx-watcher/nxwatcher/internal/config/native"
)

// TestEveryPrometheusKeyHasAnEffect walks every YAML key of Prometheus's
// Config struct (descending into Prometheus's own config structs until a
// key is listed as consumed whole) and fails when one is not listed in
// prometheusKeys: a new upstream key must be wired or refused, never
// accepted and ignored. It also fails on listed keys upstream dropped.
func TestEveryPrometheusKeyHasAnEffect(t *testing.T) {
	seen := map[string]bool{}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || name == "" {
				if f.Anonymous {
					walk(prefix, deref(f.Type))
				}
				continue
			}
			path := prefix + name
			if _, ok := prometheusKeys[path]; ok {
				seen[path] = true
				continue
			}
			ft := deref(f.Type)
			if ft.Kind() == reflect.Struct && ft.PkgPath() == reflect.TypeFor[promconfig.Config]().PkgPath() {
				walk(path+".", ft)
				continue
			}
			t.Errorf("prometheus.yml key %s (%s) is accepted but prometheusKeys does not say what puts it in force: wire it or refuse it", path, f.Type)
		}
	}
	walk("", reflect.TypeFor[promconfig.Config]())
	for k := range prometheusKeys {
		if !seen[k] {
			t.Errorf("prometheusKeys lists %s, which Prometheus's Config no longer has", k)
		}
	}
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

// TestUnsupportedPrometheusKeysAreRefused sets each key listed as
// unsupported and checks Resolve refuses it, naming the key.
func TestUnsupportedPrometheusKeysAreRefused(t *testing.T) {
	examples := map[string]string{
		"global.rule_query_offset":      "global: {rule_query_offset: 1m}",
		"global.query_max_series":       "global: {query_max_series: 10}",
		"global.query_max_samples_read": "global: {query_max_samples_read: 10}",
		"global.query_max_duration":     "global: {query_max_duration: 1m}",
		"runtime.log_level":             "runtime: {log_level: debug}",
		"tracing":                       "tracing: {endpoint: 127.0.0.1:4317}",
	}
	for key, why := range prometheusKeys {
		if !strings.HasPrefix(why, "unsupported: ") {
			continue
		}
		body, ok := examples[key]
		if !ok {
			t.Errorf("no example config for unsupported key %s", key)
			continue
		}
		cfg := DefaultConfig()
		cfg.Prometheus = native.Section{Text: body, Line: 1}
		err := cfg.Resolve(t.TempDir(), promslog.NewNopLogger())
		if err == nil || !strings.Contains(err.Error(), key+" is not supported") {
			t.Errorf("%s: Resolve(%q) = %v, want it refused", key, body, err)
		}
	}
	// The defaults, spelled out, are accepted.
	cfg := DefaultConfig()
	cfg.Prometheus = native.Section{Text: "global: {query_max_series: 0}\nruntime: {log_level: info}\n", Line: 1}
	if err := cfg.Resolve(t.TempDir(), promslog.NewNopLogger()); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

// TestResolveRefusesBadRemoteEndpoints: a URL Prometheus cannot parse is
// refused with the parser's message, as Prometheus's own config load does;
// so are clients that cannot be built and duplicates, which Prometheus
// only finds when it applies the config.
func TestResolveRefusesBadRemoteEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unparseable url", "remote_write: [{url: 'http://a b/write'}]", `parse "http://a b/write": invalid character " " in host name`},
		{"no url", "remote_write: [{name: a}]", "url for remote_write is empty"},
		{"empty url", "remote_write: [{url: ''}]", `remote_write "": url scheme must be http or https`},
		{"no scheme", "remote_write: [{url: 'localhost:9090/api/v1/write'}]", `url scheme must be http or https, not "localhost"`},
		{"bad protobuf_message", "remote_write: [{url: 'http://x/w', protobuf_message: foo}]", "invalid protobuf_message value"},
		{"missing ca file", "remote_write: [{url: 'https://x/w', tls_config: {ca_file: /nonexistent/ca.pem}}]", "/nonexistent/ca.pem"},
		{"duplicate", "remote_write: [{url: 'http://x/w'}, {url: 'http://x/w'}]", "duplicate remote write configs are not allowed"},
		{"unparseable read url", "remote_read: [{url: 'http://a b/read'}]", `parse "http://a b/read"`},
		{"duplicate read", "remote_read: [{url: 'http://x/r'}, {url: 'http://x/r'}]", "duplicate remote read configs are not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Prometheus = native.Section{Text: tc.body, Line: 1}
			err := cfg.Resolve(t.TempDir(), promslog.NewNopLogger())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Resolve = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestAgentModeRefusesWhatPrometheusAgentRefuses uses upstream's messages.
func TestAgentModeRefusesWhatPrometheusAgentRefuses(t *testing.T) {
	for body, want := range map[string]string{
		"rule_files: [a.yml]":                "field rule_files is not allowed in agent mode",
		"remote_read: [{url: 'http://x/r'}]": "field remote_read is not allowed in agent mode",
		"alerting: {alertmanagers: [{static_configs: [{targets: ['x:9093']}]}]}": "field alerting is not allowed in agent mode",
	} {
		cfg := DefaultConfig()
		cfg.Mode = ModeAgent
		cfg.Prometheus = native.Section{Text: body, Line: 1}
		err := cfg.Resolve(t.TempDir(), promslog.NewNopLogger())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Resolve = %v, want %q", body, err, want)
		}
		cfg.Mode = ModeServer
		if err := cfg.Resolve(t.TempDir(), promslog.NewNopLogger()); err != nil {
			t.Errorf("%s: refused in server mode: %v", body, err)
		}
	}
}

// TestQueryLogFileIsApplied: global.query_log_file gets one JSON line per
// query once applied, and none after it is removed.
func TestQueryLogFileIsApplied(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "queries.log")
	deps := Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()}
	e, err := NewEngine(DefaultConfig().Query, "", deps)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	db, err := OpenTSDB(t.TempDir(), DefaultConfig(), deps)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	run := func() {
		q, err := e.NewInstantQuery(t.Context(), db, nil, "vector(1)", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if r := q.Exec(t.Context()); r.Err != nil {
			t.Fatal(r.Err)
		}
		q.Close()
	}
	cfg := resolveConfig(t, "global: {query_log_file: "+logFile+"}")
	if err := e.ApplyConfig(cfg.Parsed); err != nil {
		t.Fatal(err)
	}
	run()
	if err := e.ApplyConfig(resolveConfig(t, "").Parsed); err != nil {
		t.Fatal(err)
	}
	run()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 1 || !strings.Contains(string(b), `"query":"vector(1)"`) {
		t.Fatalf("query log has %d lines, want 1 with the query:\n%s", n, b)
	}
}
